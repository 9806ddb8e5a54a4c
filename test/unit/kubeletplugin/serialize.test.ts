// The per-node queue and the small helpers the preparer relies on.
import { baseRequestName, claimLabel, isPrepareFailure } from '../../../pkg/kubeletplugin/preparer.js';
import { SerialQueue } from '../../../pkg/kubeletplugin/serialize.js';
import { gate } from './fakes.js';

describe('the serial queue', () => {
  it('runs tasks one at a time in the order they were queued', async () => {
    const queue = new SerialQueue();
    const order: string[] = [];
    let active = 0;
    let maxActive = 0;
    const g = gate();
    const task = (name: string, wait?: Promise<void>) => async (): Promise<string> => {
      active += 1;
      maxActive = Math.max(maxActive, active);
      order.push(`start ${name}`);
      if (wait) await wait;
      order.push(`end ${name}`);
      active -= 1;
      return name;
    };
    const results = [queue.run(task('a', g.promise)), queue.run(task('b')), queue.run(task('c'))];
    expect(queue.pending).toBe(3);
    g.open();
    expect(await Promise.all(results)).toEqual(['a', 'b', 'c']);
    expect(order).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(maxActive).toBe(1);
    await queue.idle();
    expect(queue.pending).toBe(0);
  });

  it('keeps going after a task fails, returning the failure to its caller only', async () => {
    const queue = new SerialQueue();
    const failed = queue.run(() => Promise.reject(new Error('nvidia-smi exit 15')));
    const next = queue.run(() => Promise.resolve('ok'));
    await expect(failed).rejects.toThrow('nvidia-smi exit 15');
    await expect(next).resolves.toBe('ok');
  });
});

describe('preparer helpers', () => {
  it.each([
    ['gpu', 'gpu'],
    ['gpu/large', 'gpu'],
    ['gpu/large/extra', 'gpu'],
  ])('reduce request %s to base request name %s', (request, base) => {
    expect(baseRequestName(request)).toBe(base);
  });

  it('label a claim for logs and errors', () => {
    expect(claimLabel({ namespace: 'ml', name: 'train', uid: 'u1' })).toBe('ml/train (u1)');
  });

  it('tell a failure from a success', () => {
    expect(isPrepareFailure({ error: 'x' })).toBe(true);
    expect(isPrepareFailure({ devices: [] })).toBe(false);
  });
});
