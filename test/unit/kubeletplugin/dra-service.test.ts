// The DRA service answers the kubelet before the kubelet gives up: a prepare
// that outlasts the deadline is answered with a reason, goes on, and the
// kubelet's retry gets its result.
import { DraService } from '../../../pkg/kubeletplugin/dra-service.js';
import type { ClaimPreparer, ClaimRef, PrepareResult, UnprepareResult } from '../../../pkg/kubeletplugin/preparer.js';
import { logger } from '../../../pkg/log/logger.js';

/** A preparer whose first prepare waits until the test releases it (a slow nvidia-smi). */
class SlowPreparer implements ClaimPreparer {
  release!: () => void;
  private readonly gate = new Promise<void>((r) => (this.release = r));
  prepared = new Map<string, PrepareResult>();
  calls = 0;

  async prepare(claims: readonly ClaimRef[]): Promise<ReadonlyMap<string, PrepareResult>> {
    this.calls++;
    const out = new Map<string, PrepareResult>();
    for (const c of claims) {
      const done = this.prepared.get(c.uid);
      if (done) {
        out.set(c.uid, done);
        continue;
      }
      await this.gate;
      const r: PrepareResult = { devices: [{ requestNames: ['gpu'], poolName: 'n', deviceName: 'gpu-0', cdiDeviceIds: [`gpu.cascade.dev/claim=${c.uid}-gpu-0`] }] };
      this.prepared.set(c.uid, r);
      out.set(c.uid, r);
    }
    return out;
  }

  async unprepare(claims: readonly ClaimRef[]): Promise<ReadonlyMap<string, UnprepareResult>> {
    return new Map(claims.map((c) => [c.uid, {}]));
  }
}

describe('the DRA service deadline', () => {
  it('answers a prepare that outlasts the deadline with a retryable reason, and the retry gets the devices', async () => {
    const preparer = new SlowPreparer();
    const service = new DraService({ preparer, log: logger('test'), deadlineMs: 50 });
    const claim = { namespace: 'ns', name: 'slow', uid: 'u-1' };
    const first = await service.prepare([claim]);
    expect(first.get('u-1')).toEqual({ error: expect.stringMatching(/^prepare claim ns\/slow \(u-1\): still running after 0 s \(the device setup is slow/) as unknown });
    // The work went on: once nvidia-smi answers, the kubelet's retry finds the claim prepared.
    preparer.release();
    const second = await service.prepare([claim]);
    expect(second.get('u-1')).toEqual({ devices: [expect.objectContaining({ deviceName: 'gpu-0' })] });
    expect(preparer.calls).toBe(2);
  });

  it('answers at once when the work is quick', async () => {
    const preparer = new SlowPreparer();
    preparer.release();
    const service = new DraService({ preparer, log: logger('test'), deadlineMs: 60_000 });
    const r = await service.prepare([{ namespace: 'ns', name: 'quick', uid: 'u-2' }]);
    expect(r.get('u-2')).toEqual({ devices: [expect.objectContaining({ deviceName: 'gpu-0' })] });
  });
});
