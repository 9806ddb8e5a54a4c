// Files the MPS control stand-in keeps in the pipe directory (its own layout;
// the real daemon's sockets are not simulated).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export const PID_FILE = 'stand-in-daemon.pid';

/** The daemon's PID when it is alive (and really the stand-in, not a reused PID). */
export function livePid(pipeDir: string): number | undefined {
  const file = path.join(pipeDir, PID_FILE);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes('fake-mps-control')) return undefined;
  } catch {
    // No /proc: trust the signal check.
  }
  return pid;
}
