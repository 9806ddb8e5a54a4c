// The stand-in's control daemon: a real, detached process per pipe directory,
// so it outlives the node plugin that started it exactly as MPS's does. It
// records itself in <pipe>/stand-in-daemon.pid and leaves on SIGTERM.
import { appendFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PID_FILE } from './files.js';

const [pipeDir, logDir, gpu] = process.argv.slice(2);
if (pipeDir === undefined || logDir === undefined) process.exit(2);
const pidFile = path.join(pipeDir, PID_FILE);
const log = (line: string): void => appendFileSync(path.join(logDir, 'control.log'), `${new Date().toISOString()} ${line}\n`);
writeFileSync(pidFile, `${process.pid}\n`);
log(`[stand-in] control daemon ${process.pid} started for ${gpu ?? '(all GPUs)'}`);
const stop = (): void => {
  log(`[stand-in] control daemon ${process.pid} exiting`);
  rmSync(pidFile, { force: true });
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setInterval(() => undefined, 1 << 30);
