// The demand the fleet is actually seeing: the shapes of recent requests (device
// class and selectors as a match set, count, capacity asked for), learned online
// with exponential decay, so placement can weigh what a choice leaves for the
// work that keeps arriving (in the spirit of FGD, USENIX ATC'23).
import type { AltPlan } from './plan.js';

export interface DemandShape {
  readonly setId: number;
  readonly count: number;
  readonly all: boolean;
  readonly shareable: boolean;
  readonly capacity: Readonly<Record<string, string>> | undefined;
  readonly capacityKey: string;
  /** CPU the pods asking this way take (millicores, the mean of the shape's CPU band). */
  readonly cpuMilli: number;
  /** Share of recent demand (weights sum to 1 over shapes()). */
  readonly weight: number;
}

interface Entry {
  setId: number;
  count: number;
  all: boolean;
  shareable: boolean;
  capacity: Readonly<Record<string, string>> | undefined;
  capacityKey: string;
  /** Sum of the pods' CPU, weighted as raw is. */
  cpuRaw: number;
  /** Weight in units of the current scale (decay is applied by growing the scale). */
  raw: number;
}

/** Half of the weight is gone after about 700 requests. */
const DECAY = 0.999;
const MAX_SHAPES = 32;
/**
 * Pods asking for the same devices with very different CPU are different demand:
 * a node short of CPU can host one and not the other. Upper bounds of the CPU
 * bands (millicores) shapes are told apart by.
 */
const CPU_BANDS = [0, 2000, 4000, 6000, 8000, 12000, 16000, 24000, 32000, 64000, Infinity];

function cpuBand(milli: number): number {
  return CPU_BANDS.findIndex((b) => milli <= b);
}

export class DemandModel {
  private readonly entries = new Map<string, Entry>();
  private scale = 1;
  private total = 0;
  private cached: readonly DemandShape[] | undefined;

  /** Records one request's first choice (later firstAvailable entries are fallbacks, not demand). */
  observe(alt: AltPlan, podCpuMilli = 0): void {
    if (alt.adminAccess) return;
    const key = `${alt.set.id}|${alt.all ? 'all' : alt.count}|${alt.capacityKey}|${cpuBand(podCpuMilli)}`;
    this.scale /= DECAY;
    let e = this.entries.get(key);
    if (e === undefined) {
      e = { setId: alt.set.id, count: alt.count, all: alt.all, shareable: alt.set.shareable, capacity: alt.capacity, capacityKey: alt.capacityKey, cpuRaw: 0, raw: 0 };
      this.entries.set(key, e);
    }
    e.raw += this.scale;
    e.cpuRaw += this.scale * podCpuMilli;
    this.total += this.scale;
    this.cached = undefined;
    // Keep the numbers finite: fold the scale back in now and then.
    if (this.scale > 1e12) this.renormalise();
  }

  private renormalise(): void {
    for (const [k, e] of this.entries) {
      e.raw /= this.scale;
      e.cpuRaw /= this.scale;
      if (e.raw < 1e-6) this.entries.delete(k);
    }
    this.total /= this.scale;
    this.scale = 1;
  }

  /** The heaviest recent shapes with their share of demand; empty before the first request. */
  shapes(): readonly DemandShape[] {
    if (this.cached !== undefined) return this.cached;
    if (this.total <= 0) return (this.cached = []);
    const top = [...this.entries.values()].sort((a, b) => b.raw - a.raw).slice(0, MAX_SHAPES);
    let sum = 0;
    for (const e of top) sum += e.raw;
    this.cached = top.map((e) => ({
      setId: e.setId,
      count: e.count,
      all: e.all,
      shareable: e.shareable,
      capacity: e.capacity,
      capacityKey: e.capacityKey,
      cpuMilli: e.raw > 0 ? e.cpuRaw / e.raw : 0,
      weight: e.raw / sum,
    }));
    return this.cached;
  }
}
