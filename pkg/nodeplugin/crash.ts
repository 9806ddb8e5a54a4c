// Crash points for the crash-recovery tests, and nothing else: when
// CASCADE_TEST_CRASH_POINT names a point, the process kills itself there with
// SIGKILL, as a node losing power or an OOM kill would.
//   after-mig-create         the MIG instance exists, the checkpoint does not know it
//   before-prepare-complete  instances recorded, CDI written, claim not completed
//   after-mps-start          a shared GPU's MPS daemon runs, the claim is not completed
//   after-vfio-bind          a GPU function was moved to vfio-pci, the claim is not completed
//   after-vfio-return        unprepare returned a GPU function to its driver, the claim is still recorded
export type CrashPoint = 'after-mig-create' | 'before-prepare-complete' | 'after-mps-start' | 'after-vfio-bind' | 'after-vfio-return';

export const CRASH_POINT_ENV = 'CASCADE_TEST_CRASH_POINT';

export function crashPoint(point: CrashPoint): void {
  if (process.env[CRASH_POINT_ENV] !== point) return;
  process.stderr.write(`cascade node plugin: ${CRASH_POINT_ENV}=${point} reached; killing myself\n`);
  process.kill(process.pid, 'SIGKILL');
}
