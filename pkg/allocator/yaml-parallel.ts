// Large YAML inputs read on several cores. A dump of a fleet is either many
// documents ("---" lines) or one `kubectl get -o yaml` List whose items start
// with "- " in the first column; both split into pieces that parse on their
// own. Worker threads parse the pieces with js-yaml and hand back JSON text,
// which the main thread turns into objects at JSON.parse speed. Anything that
// does not split cleanly, and any parse error, goes to the one-thread reader,
// so the result and the error messages are the same either way.
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { parseDocuments } from './cli.js';

/** Below this, threads cost more than they save. */
const PARALLEL_FROM = 16 * 2 ** 20;

export interface YamlPieces {
  /** Texts that each hold whole documents (multi-document input), or for a List one item as a one-item sequence. */
  readonly pieces: readonly string[];
  /** For a List: the text of the List without its items ("items: []" in their place). */
  readonly listShell?: string;
}

/** Lines that are exactly "---": document starts that carry nothing else. */
const DOC_START = /^---[ \t]*$/gm;

/**
 * Splits a YAML text into pieces that parse on their own, or undefined when it
 * does not split (one document that is not a List in kubectl's layout).
 */
export function splitYaml(text: string): YamlPieces | undefined {
  const starts = [...text.matchAll(DOC_START)].map((m) => m.index);
  if (starts.length > 1) {
    const pieces: string[] = [];
    let from = 0;
    for (const at of starts) {
      // What comes before the first "---" is a document only if it has content, not just comments.
      const piece = text.slice(from, at);
      if (from > 0 || piece.replace(/^[ \t]*#.*$/gm, '').trim() !== '') pieces.push(piece);
      from = at;
    }
    pieces.push(text.slice(from));
    return { pieces };
  }
  return splitList(text);
}

function splitList(text: string): YamlPieces | undefined {
  const head = /^items:[ \t]*\n(?=- )/m.exec(text);
  if (head === null) return undefined;
  const itemsFrom = head.index + head[0].length;
  // The items end at the next line that starts in the first column with anything but "- ".
  const end = /^(?!- |[ \t]|$)/m;
  const rest = text.slice(itemsFrom);
  const stop = end.exec(rest);
  const itemsText = stop === null ? rest : rest.slice(0, stop.index);
  // Each item's text, "- " line and all, is a YAML sequence of that one item.
  const pieces = itemsText.split(/^(?=- )/m).filter((chunk) => chunk.trim() !== '');
  const listShell = text.slice(0, head.index) + 'items: []\n' + (stop === null ? '' : rest.slice(stop.index));
  return { pieces, listShell };
}

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { loadAll, CORE_SCHEMA } = require(workerData.jsYaml);
parentPort.on('message', (m) => {
  try {
    const out = [];
    for (const p of m.pieces) for (const d of loadAll(p, undefined, { json: true, schema: CORE_SCHEMA })) out.push(d);
    parentPort.postMessage({ id: m.id, ok: true, json: JSON.stringify(out) });
  } catch (err) {
    parentPort.postMessage({ id: m.id, ok: false });
  }
});
`;

/** Pieces per message: small batches keep each thread's objects and JSON text small, so memory stays near the one-thread reader's. */
const BATCH_BYTES = 4 * 2 ** 20;

function batchesOf(pieces: readonly string[]): string[][] {
  const out: string[][] = [];
  let cur: string[] = [];
  let size = 0;
  for (const p of pieces) {
    cur.push(p);
    size += p.length;
    if (size >= BATCH_BYTES) {
      out.push(cur);
      cur = [];
      size = 0;
    }
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Parses batches on `threads` workers; undefined when any batch does not parse. */
async function parseOnWorkers(batches: readonly (readonly string[])[], threads: number): Promise<unknown[][] | undefined> {
  const jsYaml = createRequire(import.meta.url).resolve('js-yaml');
  const results: (unknown[] | undefined)[] = new Array<unknown[] | undefined>(batches.length);
  let next = 0;
  let failed = false;
  const run = (): Promise<void> =>
    new Promise((resolve) => {
      const w = new Worker(WORKER, { eval: true, workerData: { jsYaml } });
      const send = (): void => {
        if (failed || next >= batches.length) {
          void w.terminate().then(() => resolve());
          return;
        }
        const id = next++;
        w.postMessage({ id, pieces: batches[id] });
      };
      w.on('message', (m: { id: number; ok: boolean; json?: string }) => {
        if (!m.ok || m.json === undefined) failed = true;
        else results[m.id] = JSON.parse(m.json) as unknown[];
        send();
      });
      w.once('error', () => {
        failed = true;
        resolve();
      });
      send();
    });
  await Promise.all(Array.from({ length: Math.min(threads, batches.length) }, run));
  if (failed || results.some((r) => r === undefined)) return undefined;
  return results as unknown[][];
}

/**
 * The documents of a file, as parseDocuments reads them, using up to `threads`
 * worker threads (default: the cores there are) for a YAML text of at least
 * `minBytes` (default 16 MiB) that splits.
 */
export async function parseDocumentsParallel(text: string, file: string, opts: { readonly threads?: number; readonly minBytes?: number } = {}): Promise<unknown[]> {
  const threads = opts.threads ?? availableParallelism();
  const first = text[/\S/.exec(text)?.index ?? 0];
  if (threads < 2 || text.length < (opts.minBytes ?? PARALLEL_FROM) || first === '{' || first === '[') return parseDocuments(text, file);
  const split = splitYaml(text);
  if (split === undefined || split.pieces.length < 2) return parseDocuments(text, file);
  const parts = await parseOnWorkers(batchesOf(split.pieces), threads);
  // A piece that did not parse: the one-thread reader names the file and the line.
  if (parts === undefined) return parseDocuments(text, file);
  const docs = parts.flat();
  if (split.listShell === undefined) return docs;
  const items = docs.flatMap((d) => (Array.isArray(d) ? (d as unknown[]) : [d]));
  const shell = parseDocuments(split.listShell, file);
  const list = shell[0];
  if (shell.length !== 1 || typeof list !== 'object' || list === null) return parseDocuments(text, file);
  return [{ ...(list as Record<string, unknown>), items }];
}
