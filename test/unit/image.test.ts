// The production image's file tree, assembled exactly as the Dockerfile's
// production stage copies it, runs both programs, and carries none of the
// development tree (hack/, bench/, the simulator, tests). No container
// builder runs on these machines, so this is the image check CI can make.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { FLEETS, createFakeNvidiaSmi, fakeNvidiaSmiBuilt } from '../../hack/fake-nvidia-smi/testing.js';

const run = promisify(execFile);
const repo = process.cwd();

interface Copy {
  readonly from: string;
  readonly to: string;
}

/** The COPY lines of a stage and of the stages it is built FROM, in order. */
function stageCopies(dockerfile: string, stage: string): Copy[] {
  const stages = new Map<string, { base: string; copies: Copy[] }>();
  let current: { base: string; copies: Copy[] } | undefined;
  for (const line of dockerfile.split('\n')) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) {
      current = { base: from[1] ?? '', copies: [] };
      stages.set(from[2] ?? from[1] ?? '', current);
      continue;
    }
    const copy = /^COPY\s+(?:--from=build\s+\/src\/)?(\S+)\s+(\S+)$/.exec(line);
    if (copy && current) current.copies.push({ from: copy[1] ?? '', to: copy[2] ?? '' });
  }
  const s = stages.get(stage);
  if (!s) throw new Error(`Dockerfile has no stage ${stage}`);
  return [...(stages.has(s.base) ? stageCopies(dockerfile, s.base) : []), ...s.copies];
}

describe('the production image', () => {
  let app: string;
  const dockerfile = readFileSync(join(repo, 'Dockerfile'), 'utf8');

  beforeAll(() => {
    if (!fakeNvidiaSmiBuilt()) throw new Error('dist/ is missing: run "npm run build" first');
    app = join(mkdtempSync(join(tmpdir(), 'cascade-image-')), 'app');
    for (const c of stageCopies(dockerfile, 'production')) {
      const to = join(app, c.to);
      mkdirSync(dirname(to), { recursive: true });
      // The image has `npm prune --omit=dev`; a link to the repo's modules is enough to run --help and a dry run.
      if (c.from === 'node_modules') symlinkSync(join(repo, 'node_modules'), to, 'dir');
      else cpSync(join(repo, c.from), to, { recursive: true });
    }
  });
  afterAll(() => rmSync(join(app, '..'), { recursive: true, force: true }));

  it('copies only the programs, their libraries, the protos and the dependencies', () => {
    expect(
      stageCopies(dockerfile, 'production')
        .map((c) => c.from)
        .sort(),
    ).toEqual(['dist/cmd', 'dist/pkg', 'node_modules', 'package.json', 'proto']);
    for (const dev of ['hack', 'bench', 'test', 'dist/hack', 'dist/bench', 'dist/test']) expect([dev, existsSync(join(app, dev))]).toEqual([dev, false]);
  });

  it('runs the controller from that tree', async () => {
    const { stdout } = await run(process.execPath, [join(app, 'dist/cmd/controller/main.js'), '--help'], { cwd: app, env: { ...process.env, CASCADE_PROTO_DIR: join(app, 'proto') } });
    expect(stdout).toContain('--webhook-client-ca');
  });

  it('runs the node plugin from that tree against an nvidia-smi outside it', async () => {
    const smi = createFakeNvidiaSmi(FLEETS.a100('Enabled'));
    try {
      const { stdout } = await run(process.execPath, [join(app, 'dist/cmd/node-plugin/main.js'), '--dry-run', '--node-name=image-test', `--nvidia-smi=${smi.path}`], {
        cwd: app,
        env: { ...process.env, ...smi.env, CASCADE_PROTO_DIR: join(app, 'proto') },
      });
      const list = JSON.parse(stdout) as { kind: string; items: { spec: { pool: { name: string } } }[] };
      expect(list.kind).toBe('List');
      expect(list.items[0]?.spec.pool.name).toBe('image-test');
    } finally {
      smi.cleanup();
    }
  });

  it('keeps the simulator in the dev stage only', () => {
    const dev = stageCopies(dockerfile, 'dev').map((c) => c.from);
    expect(dev).toContain('dist/hack');
    expect(dev).toContain('hack/fake-nvidia-smi/nvidia-smi');
  });
});
