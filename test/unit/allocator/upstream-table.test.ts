// The upstream allocator's whole test table is ported: every case name of
// k8s.io/dynamic-resource-allocation v0.36.2 (listed in
// test/fixtures/upstream/allocator-cases.txt) is a test case in exactly one of
// the files that port it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const here = join(process.cwd(), 'test', 'unit', 'allocator');
const FILES = ['upstream-basic', 'upstream-requests', 'upstream-partitionable', 'upstream-pools', 'capacity', 'list-attributes'].map((f) => `${f}.test.ts`);

const names = readFileSync(join(process.cwd(), 'test', 'fixtures', 'upstream', 'allocator-cases.txt'), 'utf8')
  .split('\n')
  .filter((l) => l !== '' && !l.startsWith('#'));

describe('the upstream allocator test table', () => {
  it('lists the 215 cases of the 1.36 table', () => {
    expect(names).toHaveLength(215);
    expect(new Set(names).size).toBe(215);
  });

  it.each(names.map((n) => [n]))('%s is ported in exactly one file', (name) => {
    const quoted = `'${name}'`;
    const holders = FILES.filter((f) => readFileSync(join(here, f), 'utf8').includes(quoted));
    expect(holders).toHaveLength(1);
  });
});
