// Cascade's stand-in for nvidia-cuda-mps-control, so the node plugin's real MPS
// code path runs in tests: `-d` starts a detached control daemon for the pipe
// directory in CUDA_MPS_PIPE_DIRECTORY; without arguments it reads control
// commands from stdin and answers them if that daemon is alive. It keeps state
// across calls (the daemon is a real process) and fails as the real tool does
// when no daemon runs. Messages are modelled on NVIDIA's MPS documentation,
// not captured from a machine. Fault: FAKE_MPS_CONTROL_FAIL_START=1 makes -d fail.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { livePid } from './files.js';

const pipeDir = process.env.CUDA_MPS_PIPE_DIRECTORY ?? '/tmp/nvidia-mps';
const logDir = process.env.CUDA_MPS_LOG_DIRECTORY ?? '/var/log/nvidia-mps';

async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

async function startDaemon(): Promise<number> {
  if (process.env.FAKE_MPS_CONTROL_FAIL_START === '1') {
    process.stderr.write('Cannot start MPS control daemon: simulated failure\n');
    return 1;
  }
  if (livePid(pipeDir) !== undefined) {
    process.stderr.write('An instance of this daemon is already running\n');
    return 1;
  }
  if (!existsSync(pipeDir) || !existsSync(logDir)) {
    process.stderr.write(`Cannot open ${existsSync(pipeDir) ? logDir : pipeDir}: No such file or directory\n`);
    return 1;
  }
  const daemon = fileURLToPath(new URL('./daemon.js', import.meta.url));
  const child = spawn(process.execPath, [daemon, pipeDir, logDir, process.env.CUDA_VISIBLE_DEVICES ?? ''], { detached: true, stdio: 'ignore' });
  child.unref();
  // The real -d returns once the daemon has forked; here, once it is up.
  return (await waitFor(() => livePid(pipeDir) !== undefined, 10_000)) ? 0 : 1;
}

async function readStdin(): Promise<string> {
  let text = '';
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) text += String(chunk);
  return text;
}

async function control(): Promise<number> {
  const commands = (await readStdin())
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const pid = livePid(pipeDir);
  if (pid === undefined) {
    process.stderr.write('Cannot find MPS control daemon process\n');
    return 1;
  }
  for (const cmd of commands) {
    const [verb] = cmd.split(/\s+/);
    switch (verb) {
      case 'quit':
        process.kill(pid, 'SIGTERM');
        if (!(await waitFor(() => livePid(pipeDir) === undefined, 10_000))) return 1;
        return 0;
      case 'get_default_active_thread_percentage':
        process.stdout.write('100.0\n');
        break;
      case 'get_server_list':
        break;
      default:
        process.stdout.write(`Unrecognized command ${JSON.stringify(cmd)}\n`);
        return 1;
    }
  }
  return 0;
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === '-d') return startDaemon();
  if (argv[0] === '-h' || argv[0] === '--help') {
    process.stdout.write('nvidia-cuda-mps-control -- simulated by Cascade\n');
    return 0;
  }
  if (argv.length > 0) {
    process.stderr.write(`Unrecognized option ${argv[0] ?? ''}\n`);
    return 1;
  }
  return control();
}

mkdirSync(path.dirname(pipeDir), { recursive: true });
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`fake nvidia-cuda-mps-control: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 255;
  },
);
