// Checks over claims that tests and the probe share.
import type { ResourceClaim } from '../../pkg/api/resource.js';

/** Devices held by more than one claim right now, as "pool/device held by <uid> and <uid>". */
export function doubleBooked(claims: readonly ResourceClaim[]): string[] {
  const holder = new Map<string, string>();
  const doubles: string[] = [];
  for (const c of claims) {
    for (const r of c.status?.allocation?.devices?.results ?? []) {
      const key = `${r.pool}/${r.device}`;
      const prev = holder.get(key);
      if (prev && prev !== c.metadata.uid) doubles.push(`${key} held by ${prev} and ${c.metadata.uid ?? ''}`);
      holder.set(key, c.metadata.uid ?? '');
    }
  }
  return doubles;
}
