// The previous release of Cascade, built from this repository's own history,
// for the upgrade test: the commit is fixed, its sources come out of git (git
// archive, never a checked-out copy), and it is compiled with this checkout's
// node_modules, which the previous release's lock file matches.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../../pkg/cluster/binaries.js';

const run = promisify(execFile);

/**
 * The last commit whose node plugin writes checkpoint version 3 (the release
 * before per-claim provenance, checkpoint version 4).
 */
export const PREVIOUS_RELEASE = '8c4e78d39ca5315a912bf6beabccc6a5c63b35f5';

/** Builds the previous release under `dir` once and returns its dist/ directory. */
export async function buildPreviousRelease(dir: string): Promise<string> {
  const root = repoRoot();
  const dist = join(dir, 'dist');
  if (existsSync(join(dist, 'cmd', 'node-plugin', 'main.js'))) return dist;
  rmSync(dir, { recursive: true, force: true });
  const commit = await resolveCommit(root);
  mkdirSync(dir, { recursive: true });
  const archive = join(dir, 'source.tar');
  await run('git', ['-C', root, 'archive', '--format=tar', `--output=${archive}`, commit, 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'cmd', 'pkg', 'proto', 'hack', 'manifests']);
  await run('tar', ['-xf', archive, '-C', dir]);
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  // Only the two programs and what they import: the previous release's demo, tests and benchmarks are not needed.
  writeFileSync(join(dir, 'tsconfig.programs.json'), JSON.stringify({ extends: './tsconfig.build.json', include: ['cmd', 'pkg'] }));
  await run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.programs.json')], { cwd: dir, maxBuffer: 16 << 20 });
  return dist;
}

async function resolveCommit(root: string): Promise<string> {
  try {
    const { stdout } = await run('git', ['-C', root, 'rev-parse', '--verify', `${PREVIOUS_RELEASE}^{commit}`]);
    return stdout.trim();
  } catch {
    throw new Error(
      `the upgrade test builds the previous release from commit ${PREVIOUS_RELEASE.slice(0, 12)} of this repository's history, which this clone lacks (a shallow clone?): run "git fetch --unshallow"`,
    );
  }
}
