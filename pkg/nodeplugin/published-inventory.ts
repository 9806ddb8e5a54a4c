// What the node last published, shared by the two halves of the node plugin:
// the inventory loop writes it after each discovery, prepare validates claims
// against it and reports a MIG mode it switched. Both are built around this
// one object, so neither needs the other.
import type { MigMode } from '../nvidia/types.js';
import type { InventorySnapshot } from './plan.js';

export class PublishedInventory {
  private snapshot: InventorySnapshot | undefined;
  private readonly changeListeners: (() => void)[] = [];

  /** The inventory last built; undefined until the first discovery. */
  get current(): InventorySnapshot | undefined {
    return this.snapshot;
  }

  set(snapshot: InventorySnapshot): void {
    this.snapshot = snapshot;
  }

  /** Prepare switched a GPU's MIG mode: remember it at once and ask for a republish. */
  migModeChanged(gpuUuid: string, mode: MigMode): void {
    const snap = this.snapshot;
    if (snap) {
      const gpus = snap.discovery.gpus.map((g) => (g.uuid === gpuUuid ? { ...g, migMode: { current: mode, pending: mode } } : g));
      this.snapshot = { ...snap, discovery: { ...snap.discovery, gpus } };
    }
    for (const listener of this.changeListeners) listener();
  }

  /** Prepare or unprepare changed the node's GPUs (a GPU bound to or returned from vfio-pci): republish. */
  changed(): void {
    for (const listener of this.changeListeners) listener();
  }

  /** Called whenever the node's GPUs changed under the inventory (the loop republishes). */
  onChange(listener: () => void): void {
    this.changeListeners.push(listener);
  }
}
