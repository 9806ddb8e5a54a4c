// The simulator's -L, --query-gpu, -q -x and topo -m output compared with the
// real captures: same line formats, same CSV header cells and value shapes,
// XML elements that exist in the captures in the captures' order.
import { XMLParser } from 'fast-xml-parser';
import { parseQueryXml } from '../../../pkg/nvidia/parse-xml.js';
import { CAPTURES, captureOutput, ownFixture, realCapture, splitCapture } from '../nvidia/fixtures.js';
import { sim } from './sim.js';

const captureFleet = {
  driverVersion: '590.48.01',
  cudaVersion: '13.1',
  gpus: [
    {
      model: 'H100-80GB',
      migMode: 'Enabled' as const,
      numaNode: 0,
      uuid: 'GPU-00000000-0000-0000-0000-000000000000',
      pciBusId: '00000000:00:09.0',
      migInstances: [
        { profile: '3g.40gb', start: 4 },
        { profile: '2g.20gb', start: 0 },
        { profile: '1g.10gb', start: 2 },
        { profile: '1g.10gb', start: 3 },
      ],
    },
  ],
};

const mig = realCapture(CAPTURES.h100Mig);

describe('simulated -L', () => {
  it('prints the same lines as the H100 MIG capture, UUIDs aside', () => {
    const scrub = (s: string): string => s.replace(/\(UUID: (GPU|MIG)-[0-9a-fA-F-]+\)/g, '(UUID: $1-x)');
    expect(scrub(sim(captureFleet).call('-L').stdout)).toBe(scrub(captureOutput(mig, 'nvidia-smi -L')));
  });
});

describe('simulated --query-gpu', () => {
  const section = splitCapture(mig).find((s) => s.command.startsWith('nvidia-smi --query-gpu=') && s.title.startsWith('idle'))!;
  const capturedFields = /--query-gpu=([^ ]+)/.exec(section.command)![1]!.split(',');
  const [capturedHeader = '', capturedRow = ''] = section.output.split('\n');
  const headerCells = capturedHeader.split(', ');
  const valueCells = capturedRow.split(', ');
  const supported = [
    'timestamp',
    'driver_version',
    'count',
    'name',
    'uuid',
    'pci.bus_id',
    'index',
    'persistence_mode',
    'pstate',
    'memory.total',
    'memory.reserved',
    'memory.used',
    'memory.free',
    'compute_mode',
    'compute_cap',
    'mig.mode.current',
    'mig.mode.pending',
  ];
  const shape = (v: string): string => v.replace(/[0-9]/g, '9');

  it('has the header cells of the capture, units included', () => {
    const out = sim(captureFleet).call(`--query-gpu=${supported.join(',')}`, '--format=csv').stdout;
    const header = out.split('\n')[0]!.split(', ');
    expect(header).toEqual(supported.map((f) => headerCells[capturedFields.indexOf(f)]));
  });

  it('has values of the same shape as the capture', () => {
    const out = sim(captureFleet).call(`--query-gpu=${supported.join(',')}`, '--format=csv').stdout;
    const values = out.split('\n')[1]!.split(', ');
    expect(values.map(shape)).toEqual(supported.map((f) => shape(valueCells[capturedFields.indexOf(f)]!)));
  });

  it('drops header and units with noheader,nounits', () => {
    expect(sim(captureFleet).call('--query-gpu=index,memory.total,mig.mode.current', '--format=csv,noheader,nounits').stdout).toBe('0, 81559, Enabled\n');
  });
});

type Tree = { [key: string]: Tree | Tree[] | string };

/** Element paths of an XML document, and the order of each element's children. */
function structure(xml: string): { paths: Set<string>; order: Map<string, string[]> } {
  const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, preserveOrder: false });
  const paths = new Set<string>();
  const order = new Map<string, string[]>();
  const walk = (node: Tree | Tree[] | string, at: string): void => {
    if (typeof node === 'string') return;
    for (const item of Array.isArray(node) ? node : [node]) {
      if (typeof item !== 'object') continue;
      const keys = Object.keys(item).filter((k) => k !== '#text');
      if (!order.has(at)) order.set(at, keys);
      for (const k of keys) {
        paths.add(`${at}/${k}`);
        walk(item[k]!, `${at}/${k}`);
      }
    }
  };
  walk(parser.parse(xml) as Tree, '');
  return { paths, order };
}

function isSubsequence(small: readonly string[], big: readonly string[]): boolean {
  let i = 0;
  for (const x of big) if (x === small[i]) i++;
  return i === small.length;
}

describe('simulated -q -x', () => {
  const h100 = structure(realCapture(CAPTURES.h100x8));
  const a100 = structure(realCapture(CAPTURES.a100));
  const derivedMig = structure(ownFixture('q-x__h100-80gb-hbm3-mig__derived.xml'));

  it.each([
    ['MIG disabled', { gpus: [{ model: 'H100-80GB' }] }],
    ['MIG enabled with instances', captureFleet],
  ])('uses only elements the captures have (%s)', (_name, fleet) => {
    const got = structure(sim(fleet).call('-q', '-x').stdout);
    const known = new Set([...h100.paths, ...a100.paths, ...derivedMig.paths]);
    expect(got.paths.size).toBeGreaterThan(80);
    expect([...got.paths].filter((p) => !known.has(p))).toEqual([]);
  });

  it('orders the elements of each GPU as the 8x H100 capture does', () => {
    const got = structure(sim({ gpus: [{ model: 'H100-80GB' }] }).call('-q', '-x').stdout);
    let compared = 0;
    for (const [at, children] of got.order) {
      const reference = h100.order.get(at);
      if (!reference) continue;
      compared++;
      expect({ at, ordered: isSubsequence(children, reference) }).toEqual({ at, ordered: true });
    }
    expect(got.order.get('/nvidia_smi_log/gpu')?.length).toBeGreaterThan(40);
    expect(compared).toBeGreaterThan(10);
  });

  it('carries every element the parser reads, with the values of the capture for the same board', () => {
    const captured = parseQueryXml(realCapture(CAPTURES.h100x8)).gpus[0]!;
    const simulated = parseQueryXml(sim({ gpus: [{ model: 'H100-80GB' }] }).call('-q', '-x').stdout).gpus[0]!;
    for (const key of ['productName', 'brand', 'architecture', 'memoryMiB', 'migMode', 'uncorrectableEccErrors', 'recoveryAction'] as const) {
      expect({ key, value: simulated[key] }).toEqual({ key, value: captured[key] });
    }
  });

  it('starts with the declaration and DOCTYPE of the v13 capture and indents with tabs', () => {
    const out = sim({ gpus: [{ model: 'H100-80GB' }] }).call('-q', '-x').stdout;
    expect(out.split('\n').slice(0, 3)).toEqual(realCapture(CAPTURES.h100x8).split('\n').slice(0, 3));
    expect(out).toContain('\n\t<gpu id="00000000:18:00.0">\n\t\t<product_name>');
    expect(out).toContain('<mig_devices>\n\t\t\tNone\n\t\t</mig_devices>');
  });
});

describe('simulated topo -m', () => {
  it('has the ANSI-underlined header and the row cells of the capture', () => {
    const captured = captureOutput(mig, 'nvidia-smi topo -m').split('\n');
    const simulated = sim({ gpus: [{ model: 'H100-80GB', numaNode: 0 }] })
      .call('topo', '-m')
      .stdout.split('\n');
    expect(simulated[0]).toBe(captured[0]);
    const cells = (l: string): string[] => l.split('\t').map((c, i) => (i === 2 ? 'cpus' : c));
    expect(cells(simulated[1]!)).toEqual(cells(captured[1]!));
  });
});
