// Puts claim CDI specs on disk where the container runtime looks for them
// (/var/run/cdi by default): atomic writes, one file per claim, deleted on unprepare.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PRIVATE_FILE_MODE, ensureDir, hasErrorCode, removeFileDurably, writeFileAtomicIfChanged } from './atomic-file.js';
import { type CdiSpec, cdiSpecFileName, cdiVendor, CDI_CLASS, renderCdiSpec } from './cdi.js';

export const DEFAULT_CDI_DIR = '/var/run/cdi';

export class CdiSpecWriter {
  constructor(
    private readonly driver: string,
    readonly dir: string = DEFAULT_CDI_DIR,
  ) {}

  /** Path of a claim's spec file. */
  pathFor(claimUid: string): string {
    return join(this.dir, cdiSpecFileName(this.driver, claimUid));
  }

  /**
   * Writes a claim's spec atomically (0600: only the root-run container
   * runtime reads it). Idempotent: an identical file is left untouched.
   * Returns the file's path.
   */
  async write(claimUid: string, spec: CdiSpec): Promise<string> {
    // /var/run/cdi is shared with other CDI producers: create it if missing, never chmod it.
    await ensureDir(this.dir, 0o755);
    const path = this.pathFor(claimUid);
    await writeFileAtomicIfChanged(path, renderCdiSpec(spec), PRIVATE_FILE_MODE);
    return path;
  }

  /** Deletes a claim's spec; a missing file is fine. Returns whether it existed. */
  async remove(claimUid: string): Promise<boolean> {
    return removeFileDurably(this.pathFor(claimUid));
  }

  /** The spec currently on disk for a claim, or undefined. */
  async read(claimUid: string): Promise<CdiSpec | undefined> {
    try {
      return JSON.parse(await readFile(this.pathFor(claimUid), 'utf8')) as CdiSpec;
    } catch (err) {
      if (hasErrorCode(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  /** Claim UIDs that have a spec file of this driver, for start-up clean-up of orphans. */
  async listClaimUids(): Promise<string[]> {
    const prefix = `${cdiVendor(this.driver)}-${CDI_CLASS}_`;
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (hasErrorCode(err, 'ENOENT')) return [];
      throw err;
    }
    return names
      .filter((n) => n.startsWith(prefix) && n.endsWith('.json'))
      .map((n) => n.slice(prefix.length, -'.json'.length))
      .sort();
  }
}
