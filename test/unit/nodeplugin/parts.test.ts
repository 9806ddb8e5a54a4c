// Pure pieces of the node plugin: taints merged from lost-GPU and health
// checks, the health stream's entries, and the claim's status.devices merge.
import { unhealthyTaint } from '../../../pkg/inventory/index.js';
import { mergeDeviceStatuses, readyStatus } from '../../../pkg/nodeplugin/claims.js';
import { healthEntries, mergeTaints } from '../../../pkg/nodeplugin/inventory-loop.js';
import { buildDesiredSlices } from '../../../pkg/inventory/index.js';
import { h100x8 } from '../inventory/nodes.js';
import { DRIVER, NODE } from './fakes.js';

describe('node plugin parts', () => {
  it('keeps one unhealthy taint per GPU when the lost-GPU carry-over and the health check both report it', () => {
    const lost = { 'GPU-1': [unhealthyTaint(DRIVER, 'gpu-lost')] };
    const health = { 'GPU-1': [unhealthyTaint(DRIVER, 'nvidia-smi cannot reach the GPU')], 'GPU-2': [unhealthyTaint(DRIVER, '3 ECC errors')] };
    expect(mergeTaints(lost, health)).toEqual({ 'GPU-1': [unhealthyTaint(DRIVER, 'gpu-lost')], 'GPU-2': [unhealthyTaint(DRIVER, '3 ECC errors')] });
  });

  it('reports every published device on the health stream, unhealthy exactly where the slices carry our taint', () => {
    const d = h100x8('Disabled');
    const slices = buildDesiredSlices({ nodeName: NODE, driverName: DRIVER, discovery: d, taints: { [d.gpus[2]?.uuid ?? '']: [unhealthyTaint(DRIVER, 'gpu-lost')] } });
    const entries = healthEntries(DRIVER, slices, 100);
    const unhealthy = entries.filter((e) => e.health === 'UNHEALTHY');
    // The whole GPU, its shared form and its 25 partitions (published with MIG off: Hopper switches at prepare time).
    expect(unhealthy).toHaveLength(27);
    expect(unhealthy.every((e) => (e.deviceName === 'gpu-2' || e.deviceName.startsWith('gpu-2-')) && e.message === 'gpu-lost')).toBe(true);
    expect(entries).toHaveLength(8 * 27);
  });

  it('replaces only our own entries in a claim status that other drivers also write', () => {
    const other = { driver: 'net.example.com', pool: NODE, device: 'eth1' };
    const stale = { driver: DRIVER, pool: NODE, device: 'gpu-0' };
    const mine = readyStatus(DRIVER, NODE, { device: 'gpu-1', data: { uuid: 'GPU-1' } }, '2026-01-01T00:00:00Z');
    expect(mergeDeviceStatuses([other, stale], DRIVER, NODE, [mine])).toEqual([other, mine]);
    expect(mergeDeviceStatuses([other, stale], DRIVER, NODE, [])).toEqual([other]);
    expect(mine.conditions).toEqual([expect.objectContaining({ type: 'Ready', status: 'True', lastTransitionTime: '2026-01-01T00:00:00Z' })]);
  });
});
