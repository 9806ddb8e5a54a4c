// Test helpers: locate the real captures (test/fixtures/nvidia-smi/captures,
// see its README for where each came from) and our own fixtures, and
// split the multi-command capture into the output of each command.
import { readFileSync } from 'node:fs';
import path from 'node:path';

const CAPTURE_DIR = path.resolve(process.cwd(), 'test/fixtures/nvidia-smi/captures');
const OWN = path.resolve(process.cwd(), 'test/fixtures/nvidia-smi');

export const CAPTURES = {
  a100: 'q-x__a100-sxm4-40gb__570.148.08.xml',
  h100x8: 'q-x__8x-h100-80gb-hbm3__580.105.08.xml',
  h100Mig: 'capture__h100-80gb-hbm3-mig__590.48.01.txt',
} as const;

export function realCapture(name: string): string {
  return readFileSync(path.join(CAPTURE_DIR, name), 'utf8');
}

export function ownFixture(name: string): string {
  return readFileSync(path.join(OWN, name), 'utf8');
}

export interface CaptureSection {
  readonly title: string;
  readonly command: string;
  readonly output: string;
}

/**
 * Splits an nvidia_gpu_exporter capture: each section starts with a block of
 * "#" lines between two rules, whose last "# $ " line is the command; the
 * output runs until the next rule. Some headers hold two commands (a section
 * whose output was lost); the last one owns the output.
 */
export function splitCapture(text: string): CaptureSection[] {
  const lines = text.split('\n');
  const rule = (l: string | undefined): boolean => l !== undefined && /^#{20,}$/.test(l);
  const sections: CaptureSection[] = [];
  let i = 0;
  while (i < lines.length) {
    if (!rule(lines[i])) {
      i++;
      continue;
    }
    let j = i + 1;
    let title = '';
    let command = '';
    while (j < lines.length && !rule(lines[j])) {
      const l = lines[j] ?? '';
      if (l.startsWith('# $ ')) command = l.slice(4).trim();
      else if (l.startsWith('# ') && title === '' && l.includes('::')) title = l.slice(2).trim();
      j++;
    }
    let k = j + 1;
    const body: string[] = [];
    while (k < lines.length && !rule(lines[k])) body.push(lines[k++] ?? '');
    while (body.length > 0 && body[body.length - 1]?.trim() === '') body.pop();
    if (command !== '') sections.push({ title, command, output: body.join('\n') + '\n' });
    i = k;
  }
  return sections;
}

/** The output of the first section whose command is exactly `command` (and whose title contains `title`). */
export function captureOutput(text: string, command: string, title = ''): string {
  const s = splitCapture(text).find((x) => x.command === command && x.title.includes(title));
  if (!s) throw new Error(`capture has no section for "${command}"`);
  return s.output;
}
