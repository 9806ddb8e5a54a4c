// Large YAML on several threads: the same documents, in the same order, as the
// one-thread reader gives, for many-document files and kubectl's List layout;
// the same error, naming the file and line, when a piece does not parse.
import { readFileSync } from 'node:fs';
import { dump } from 'js-yaml';
import { parseDocuments } from '../../../pkg/allocator/cli.js';
import { parseDocumentsParallel, splitYaml } from '../../../pkg/allocator/yaml-parallel.js';

const FLEET = readFileSync('examples/allocate/fleet.yaml', 'utf8');
const CLAIMS = readFileSync('examples/allocate/claims.yaml', 'utf8');
const docs = (text: string): unknown[] => parseDocuments(text, 'x').filter((d) => d !== null && d !== undefined);
const asList = (items: unknown[]): string => dump({ apiVersion: 'v1', items, kind: 'List', metadata: { resourceVersion: '' } }, { noArrayIndent: true, lineWidth: -1 });

describe('reading large YAML on several threads', () => {
  it('splits many-document text at its "---" lines into pieces that parse to the same documents', () => {
    const split = splitYaml(FLEET + '\n---\n' + CLAIMS);
    expect(split?.listShell).toBeUndefined();
    expect(split?.pieces.length).toBeGreaterThan(10);
    expect((split?.pieces ?? []).flatMap(docs)).toEqual(docs(FLEET + '\n---\n' + CLAIMS));
  });

  it('splits a kubectl get -o yaml List into its items and the List around them', () => {
    const items = [...docs(FLEET), ...docs(CLAIMS)];
    const split = splitYaml(asList(items));
    expect(split?.pieces).toHaveLength(items.length);
    expect((split?.pieces ?? []).map((p) => (docs(p)[0] as unknown[])[0])).toEqual(items);
    expect(docs(split?.listShell ?? '')).toEqual([{ apiVersion: 'v1', items: [], kind: 'List', metadata: { resourceVersion: '' } }]);
  });

  it('does not split one document that is not a List', () => {
    expect(splitYaml('kind: Node\nmetadata:\n  name: a\n')).toBeUndefined();
  });

  it('gives what the one-thread reader gives, on two threads', async () => {
    const many = FLEET + '\n---\n' + CLAIMS;
    expect(await parseDocumentsParallel(many, 'many.yaml', { threads: 2, minBytes: 0 })).toEqual(parseDocuments(many, 'many.yaml'));
    const list = asList([...docs(FLEET), ...docs(CLAIMS)]);
    expect(await parseDocumentsParallel(list, 'list.yaml', { threads: 2, minBytes: 0 })).toEqual(parseDocuments(list, 'list.yaml'));
  });

  it('reports a broken piece as the one-thread reader does, naming the file and the line', async () => {
    const broken = FLEET + '\n---\nkind: Node\nmetadata: {name: [unclosed\n---\n' + CLAIMS;
    let serial = '';
    try {
      parseDocuments(broken, 'broken.yaml');
    } catch (err: unknown) {
      serial = String(err);
    }
    expect(serial).toMatch(/broken\.yaml: invalid YAML: .*\(\d+:\d+\)/);
    await expect(parseDocumentsParallel(broken, 'broken.yaml', { threads: 2, minBytes: 0 })).rejects.toThrow(serial.replace(/^InputError: /, ''));
  });
});
