// The in-memory device health board and its translation to the kubelet's messages.
import { DeviceHealthBoard, healthResponse, toWireHealth } from '../../../pkg/kubeletplugin/health.js';

describe('the device health board', () => {
  it('announces a change only when a device\u2019s health or message changed', () => {
    const board = new DeviceHealthBoard();
    let changes = 0;
    board.on('change', () => (changes += 1));
    board.set({ poolName: 'p', deviceName: 'gpu-0', health: 'HEALTHY', lastUpdatedTime: 1 });
    board.set({ poolName: 'p', deviceName: 'gpu-0', health: 'HEALTHY', lastUpdatedTime: 2 });
    expect(changes).toBe(1);
    board.set({ poolName: 'p', deviceName: 'gpu-0', health: 'UNHEALTHY', lastUpdatedTime: 3, message: 'uncorrectable ECC errors: 2' });
    board.remove('p', 'gpu-0');
    board.remove('p', 'gpu-0');
    expect(changes).toBe(3);
  });

  it('lists devices in a stable order with the latest entry of each', () => {
    const board = new DeviceHealthBoard();
    board.replaceAll([
      { poolName: 'p', deviceName: 'gpu-1', health: 'HEALTHY', lastUpdatedTime: 1 },
      { poolName: 'p', deviceName: 'gpu-0', health: 'UNKNOWN', lastUpdatedTime: 1 },
    ]);
    expect(healthResponse(board).devices?.map((d) => d.device?.device_name)).toEqual(['gpu-0', 'gpu-1']);
  });

  it('cuts messages to the 1024 characters the kubelet keeps', () => {
    const wire = toWireHealth({ poolName: 'p', deviceName: 'gpu-0', health: 'UNHEALTHY', lastUpdatedTime: 5, message: 'x'.repeat(2000) });
    expect(wire.message).toHaveLength(1024);
    expect(wire.message?.endsWith('...')).toBe(true);
  });
});
