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
  /** Weight in units of the current scale (decay is applied by growing the scale). */
  raw: number;
}

/** Half of the weight is gone after about 700 requests. */
const DECAY = 0.999;
const MAX_SHAPES = 24;

export class DemandModel {
  private readonly entries = new Map<string, Entry>();
  private scale = 1;
  private total = 0;
  private cached: readonly DemandShape[] | undefined;

  /** Records one request's first choice (later firstAvailable entries are fallbacks, not demand). */
  observe(alt: AltPlan): void {
    if (alt.adminAccess) return;
    const key = `${alt.set.id}|${alt.all ? 'all' : alt.count}|${alt.capacityKey}`;
    this.scale /= DECAY;
    let e = this.entries.get(key);
    if (e === undefined) {
      e = { setId: alt.set.id, count: alt.count, all: alt.all, shareable: alt.set.shareable, capacity: alt.capacity, capacityKey: alt.capacityKey, raw: 0 };
      this.entries.set(key, e);
    }
    e.raw += this.scale;
    this.total += this.scale;
    this.cached = undefined;
    // Keep the numbers finite: fold the scale back in now and then.
    if (this.scale > 1e12) this.renormalise();
  }

  private renormalise(): void {
    for (const [k, e] of this.entries) {
      e.raw /= this.scale;
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
    this.cached = top.map((e) => ({ setId: e.setId, count: e.count, all: e.all, shareable: e.shareable, capacity: e.capacity, capacityKey: e.capacityKey, weight: e.raw / sum }));
    return this.cached;
  }
}
