// The node plugin's durable memory: which claims are being or have been
// prepared, which MIG instances Cascade created for them, and the CDI IDs
// handed to the kubelet. Pure state transitions first, file I/O (CheckpointStore)
// at the end.
//
// File format (JSON, mode 0600, directory 0700):
//   { "version": 4, "checksum": "sha256:<hex>", "payload": { "bootId": ..., "writtenBy": ..., "claims": { <uid>: ClaimCheckpoint }, "stranded": { <pci address>: reason } } }
// Versions: 1 had no writtenBy and no migCreated[].confirmed; 2 had no
// passthrough (intended type "vfio", claims' vfioTaken, stranded); 3 did not
// say which plugin prepared each claim, nor when (preparedBy, preparedAt), so
// after a rolling upgrade nobody could tell which claims the old build set up.
// An older file is converted on load (decodeCheckpoint) and written back as
// version 4.
// A file of a version newer than this code is refused, never guessed at: a
// version-2 node plugin would not know which PCI functions it must return to
// their drivers.
// checksum = sha256 of the canonical JSON of payload (object keys sorted, no
// whitespace), so a torn or hand-edited file is detected rather than trusted.
import { createHash } from 'node:crypto';
import { copyFile, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, ensureDir, hasErrorCode, syncDir, writeFileAtomic } from '../kubeletplugin/atomic-file.js';
import type { ClaimRef, PreparedDevice } from '../kubeletplugin/preparer.js';

export const CHECKPOINT_VERSION = 4;
/** Who wrote a checkpoint, kept in it for whoever debugs an upgrade. */
export const CHECKPOINT_WRITER = 'cascade-node-plugin (checkpoint v4)';
export const BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id';

/** A MIG placement: first memory slice and number of memory slices. */
export interface MigPlacement {
  readonly start: number;
  readonly size: number;
}

/** What prepare is about to set up for one allocated device, recorded before touching the GPU. */
export interface IntendedDevice {
  /** The allocation result's request, "req" or "req/sub". */
  readonly request: string;
  readonly poolName: string;
  readonly deviceName: string;
  readonly type: 'gpu' | 'mig' | 'shared' | 'vfio';
  /** -1 for a passthrough GPU nvidia-smi did not see. */
  readonly gpuIndex: number;
  readonly gpuUuid: string;
  /** For type "mig": the instance prepare will create. */
  readonly mig?: {
    readonly profile: string;
    readonly profileId: number;
    readonly placement: MigPlacement;
  };
  readonly shareId?: string;
  /** For a whole or shared GPU set up for sharing: how, so the last sharer can undo it. */
  readonly sharing?: IntendedSharing;
  /** For type "vfio": the GPU's PCI address and how the node holds it. */
  readonly vfio?: { readonly address: string; readonly mode: 'pool' | 'switchable' };
}

/** A PCI function prepare moved to vfio-pci, recorded before the move, and where it goes back. */
export interface VfioTakenRecord {
  readonly address: string;
  /** The driver it returns to on unprepare or roll-back (vfio-pci for a pool GPU); null: none. */
  readonly returnTo: string | null;
}

/** MPS or a time slice on a GPU, with what one claim was given. */
export interface IntendedSharing {
  readonly strategy: 'MPS' | 'TimeSlicing';
  /** Time slice 0-3 (TimeSlicing). */
  readonly timeSlice?: number;
  /** The claim's MPS memory limit in MiB and active-thread percentage, from consumedCapacity. */
  readonly memoryMiB?: number;
  readonly computePercent?: number;
  /** A pre-existing MIG device shared through MPS: its UUID, which names its daemon. */
  readonly deviceUuid?: string;
}

/** A MIG instance Cascade created (GPU instance + compute instance). */
export interface MigInstanceRecord {
  readonly deviceName: string;
  readonly gpuIndex: number;
  readonly gpuUuid: string;
  readonly gpuInstanceId: number;
  readonly computeInstanceId: number;
  readonly migUuid: string;
  readonly profile: string;
  readonly profileId: number;
  readonly placement: MigPlacement;
  /**
   * False while only nvidia-smi's "created" line has been seen (the record is
   * written before anything else can fail); true once the device's UUID was read.
   */
  readonly confirmed: boolean;
}

interface ClaimCheckpointBase {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly intended: readonly IntendedDevice[];
  /** Instances created so far; recovery destroys these if the claim is rolled back. */
  readonly migCreated: readonly MigInstanceRecord[];
  /** PCI functions taken for passthrough so far; unprepare and roll-back return them. */
  readonly vfioTaken?: readonly VfioTakenRecord[];
}

export interface PrepareStartedClaim extends ClaimCheckpointBase {
  readonly state: 'PrepareStarted';
}

export interface PrepareCompletedClaim extends ClaimCheckpointBase {
  readonly state: 'PrepareCompleted';
  /** Exactly what was answered to the kubelet, replayed on a repeated prepare. */
  readonly devices: readonly PreparedDevice[];
  readonly cdiDeviceIds: readonly string[];
  /** The plugin that prepared it (CHECKPOINT_WRITER of its build); from a version-3 file, that file's writer. */
  readonly preparedBy: string;
  /** When it was prepared (ISO 8601); unknown for claims prepared before version 4. */
  readonly preparedAt?: string;
}

export type ClaimCheckpoint = PrepareStartedClaim | PrepareCompletedClaim;

export interface CheckpointState {
  readonly bootId: string;
  /** The writer of the file this state was read from (CHECKPOINT_WRITER for new state). */
  readonly writtenBy: string;
  readonly claims: Readonly<Record<string, ClaimCheckpoint>>;
  /** GPUs that did not come back to the nvidia driver after passthrough, by PCI address: published unhealthy until they do. */
  readonly stranded?: Readonly<Record<string, string>>;
}

// ---- pure transitions ----

export function emptyCheckpoint(bootId: string): CheckpointState {
  return { bootId, writtenBy: CHECKPOINT_WRITER, claims: {} };
}

function withClaim(state: CheckpointState, claim: ClaimCheckpoint): CheckpointState {
  return { ...state, claims: { ...state.claims, [claim.uid]: claim } };
}

function requireClaim(state: CheckpointState, uid: string): ClaimCheckpoint {
  const claim = state.claims[uid];
  if (!claim) throw new Error(`checkpoint has no claim ${uid}`);
  return claim;
}

/**
 * Records the intent to prepare a claim. A claim already PrepareStarted is
 * restarted with the new intent but keeps its created instances (they must
 * still be accounted for); a completed claim cannot be started again.
 */
export function startPrepare(state: CheckpointState, claim: ClaimRef, intended: readonly IntendedDevice[]): CheckpointState {
  const existing = state.claims[claim.uid];
  if (existing?.state === 'PrepareCompleted') {
    throw new Error(`claim ${claim.uid} is already prepared; unprepare it first`);
  }
  return withClaim(state, {
    state: 'PrepareStarted',
    uid: claim.uid,
    namespace: claim.namespace,
    name: claim.name,
    intended,
    migCreated: existing?.migCreated ?? [],
    ...(existing?.vfioTaken?.length ? { vfioTaken: existing.vfioTaken } : {}),
  });
}

/** Records a PCI function about to be moved to vfio-pci; the first record of an address keeps its driver to return to. */
export function recordVfioTaken(state: CheckpointState, uid: string, record: VfioTakenRecord): CheckpointState {
  const claim = requireClaim(state, uid);
  const taken = claim.vfioTaken ?? [];
  if (taken.some((t) => t.address === record.address)) return state;
  return withClaim(state, { ...claim, vfioTaken: [...taken, record] });
}

/** Forgets a PCI function once it is back where it belongs. */
export function forgetVfioTaken(state: CheckpointState, uid: string, address: string): CheckpointState {
  const claim = requireClaim(state, uid);
  return withClaim(state, { ...claim, vfioTaken: (claim.vfioTaken ?? []).filter((t) => t.address !== address) });
}

/** Marks a GPU as not back with the nvidia driver (reason), or clears it (undefined). */
export function setStranded(state: CheckpointState, address: string, reason: string | undefined): CheckpointState {
  const stranded = { ...(state.stranded ?? {}) };
  if (reason === undefined) delete stranded[address];
  else stranded[address] = reason;
  return { ...state, stranded };
}

/** Records one MIG instance created for a claim that is being prepared. */
export function recordMigCreated(state: CheckpointState, uid: string, instance: MigInstanceRecord): CheckpointState {
  const claim = requireClaim(state, uid);
  if (claim.state !== 'PrepareStarted') throw new Error(`claim ${uid} is ${claim.state}; MIG instances are recorded while preparing`);
  const others = claim.migCreated.filter((m) => !(m.gpuUuid === instance.gpuUuid && m.gpuInstanceId === instance.gpuInstanceId));
  return withClaim(state, { ...claim, migCreated: [...others, instance] });
}

/** Forgets one MIG instance of a claim (after it was destroyed during a roll-back). */
export function forgetMigInstance(state: CheckpointState, uid: string, gpuUuid: string, gpuInstanceId: number): CheckpointState {
  const claim = requireClaim(state, uid);
  const migCreated = claim.migCreated.filter((m) => !(m.gpuUuid === gpuUuid && m.gpuInstanceId === gpuInstanceId));
  return withClaim(state, { ...claim, migCreated });
}

/**
 * Marks a claim prepared. migCreated, when given, replaces the instances
 * recorded so far (a preparer that records them only at the end passes them here).
 */
export function completePrepare(
  state: CheckpointState,
  uid: string,
  result: { readonly devices: readonly PreparedDevice[]; readonly migCreated?: readonly MigInstanceRecord[] },
  now: Date = new Date(),
): CheckpointState {
  const claim = requireClaim(state, uid);
  if (claim.state !== 'PrepareStarted') throw new Error(`claim ${uid} is already prepared`);
  return withClaim(state, {
    state: 'PrepareCompleted',
    uid: claim.uid,
    namespace: claim.namespace,
    name: claim.name,
    intended: claim.intended,
    migCreated: result.migCreated ?? claim.migCreated,
    ...(claim.vfioTaken?.length ? { vfioTaken: claim.vfioTaken } : {}),
    devices: result.devices,
    cdiDeviceIds: result.devices.flatMap((d) => d.cdiDeviceIds),
    preparedBy: CHECKPOINT_WRITER,
    preparedAt: now.toISOString(),
  });
}

/** Drops a claim (unprepared, or rolled back). Unknown claims are fine. */
export function removeClaim(state: CheckpointState, uid: string): CheckpointState {
  if (!(uid in state.claims)) return state;
  const claims = { ...state.claims };
  delete claims[uid];
  return { ...state, claims };
}

/**
 * The devices answered for a completed claim, so a repeated prepare returns
 * the same CDI IDs without touching the GPU; undefined when not completed.
 */
export function preparedDevices(state: CheckpointState, uid: string): readonly PreparedDevice[] | undefined {
  const claim = state.claims[uid];
  return claim?.state === 'PrepareCompleted' ? claim.devices : undefined;
}

/** Every MIG instance some checkpointed claim owns: recovery must not destroy these. */
export function ownedMigInstances(state: CheckpointState): readonly (MigInstanceRecord & { readonly claimUid: string })[] {
  return Object.values(state.claims).flatMap((c) => c.migCreated.map((m) => ({ ...m, claimUid: c.uid })));
}

/** Claims a crash left half prepared, for start-up recovery to finish or roll back. */
export function halfPreparedClaims(state: CheckpointState): readonly PrepareStartedClaim[] {
  return Object.values(state.claims).filter((c): c is PrepareStartedClaim => c.state === 'PrepareStarted');
}

// ---- encoding ----

/** JSON with object keys sorted at every level and no whitespace. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value);
    if (text === undefined) throw new Error(`cannot encode ${typeof value} in a checkpoint`);
    return text;
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function checkpointChecksum(state: CheckpointState): string {
  return `sha256:${createHash('sha256').update(canonicalJson(state)).digest('hex')}`;
}

export function encodeCheckpoint(state: CheckpointState): string {
  const payload: CheckpointState = { ...state, writtenBy: CHECKPOINT_WRITER };
  return `${JSON.stringify({ version: CHECKPOINT_VERSION, checksum: checkpointChecksum(payload), payload }, null, 2)}\n`;
}

/** The file is unreadable, fails its checksum or has the wrong shape. */
export class CheckpointCorruptError extends Error {
  constructor(
    message: string,
    readonly path?: string,
  ) {
    super(message);
    this.name = 'CheckpointCorruptError';
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkShape(payload: unknown): asserts payload is CheckpointState {
  if (!isObject(payload)) throw new CheckpointCorruptError('payload is not an object');
  if (typeof payload.bootId !== 'string') throw new CheckpointCorruptError('payload.bootId is not a string');
  if (typeof payload.writtenBy !== 'string') throw new CheckpointCorruptError('payload.writtenBy is not a string');
  if (!isObject(payload.claims)) throw new CheckpointCorruptError('payload.claims is not an object');
  if (payload.stranded !== undefined && !isObject(payload.stranded)) throw new CheckpointCorruptError('payload.stranded is not an object');
  for (const [uid, claim] of Object.entries(payload.claims)) {
    const where = `payload.claims[${JSON.stringify(uid)}]`;
    if (!isObject(claim)) throw new CheckpointCorruptError(`${where} is not an object`);
    if (claim.uid !== uid) throw new CheckpointCorruptError(`${where}.uid does not match its key`);
    if (claim.state !== 'PrepareStarted' && claim.state !== 'PrepareCompleted') {
      throw new CheckpointCorruptError(`${where}.state is ${JSON.stringify(claim.state)}`);
    }
    if (!Array.isArray(claim.intended) || !Array.isArray(claim.migCreated)) {
      throw new CheckpointCorruptError(`${where} lacks intended or migCreated`);
    }
    if (claim.migCreated.some((m: unknown) => !isObject(m) || typeof m.confirmed !== 'boolean')) {
      throw new CheckpointCorruptError(`${where}.migCreated has a record without confirmed`);
    }
    if (claim.vfioTaken !== undefined && (!Array.isArray(claim.vfioTaken) || claim.vfioTaken.some((t: unknown) => !isObject(t) || typeof t.address !== 'string'))) {
      throw new CheckpointCorruptError(`${where}.vfioTaken is not a list of PCI functions`);
    }
    if (claim.state === 'PrepareCompleted' && (!Array.isArray(claim.devices) || !Array.isArray(claim.cdiDeviceIds))) {
      throw new CheckpointCorruptError(`${where} is PrepareCompleted without devices`);
    }
    if (claim.state === 'PrepareCompleted' && typeof claim.preparedBy !== 'string') {
      throw new CheckpointCorruptError(`${where} is PrepareCompleted without preparedBy`);
    }
  }
}

/**
 * Version 1 to 2: the writer was not recorded, and every MIG record was
 * written only after its UUID was known (so each is confirmed).
 */
function fromVersion1(payload: unknown): unknown {
  if (!isObject(payload) || !isObject(payload.claims)) return payload;
  const claims: Record<string, unknown> = {};
  for (const [uid, claim] of Object.entries(payload.claims)) {
    claims[uid] =
      isObject(claim) && Array.isArray(claim.migCreated)
        ? { ...claim, migCreated: claim.migCreated.map((m: unknown) => (isObject(m) ? { ...m, confirmed: typeof m.migUuid === 'string' && m.migUuid !== '' } : m)) }
        : claim;
  }
  return { ...payload, writtenBy: 'cascade-node-plugin (checkpoint v1)', claims };
}

/** Version 2 to 3: nothing was passed through, so nothing is taken or stranded. */
function fromVersion2(payload: unknown): unknown {
  if (!isObject(payload)) return payload;
  return { ...payload, stranded: {} };
}

/** Version 3 to 4: every prepared claim was prepared by the writer of that file, at a time nobody recorded. */
function fromVersion3(payload: unknown): unknown {
  if (!isObject(payload) || !isObject(payload.claims)) return payload;
  const writer = typeof payload.writtenBy === 'string' ? payload.writtenBy : 'cascade-node-plugin (checkpoint v3)';
  const claims: Record<string, unknown> = {};
  for (const [uid, claim] of Object.entries(payload.claims)) claims[uid] = isObject(claim) && claim.state === 'PrepareCompleted' ? { ...claim, preparedBy: writer } : claim;
  return { ...payload, claims };
}

/** Converters from each older version to the next. */
const UPGRADES: Readonly<Record<number, (payload: unknown) => unknown>> = { 1: fromVersion1, 2: fromVersion2, 3: fromVersion3 };

export interface DecodedCheckpoint {
  readonly state: CheckpointState;
  /** The file's version when it was older than CHECKPOINT_VERSION and was converted. */
  readonly convertedFrom?: number;
}

/** Parses, verifies and (from an older version) converts a checkpoint file's text. */
export function decodeCheckpointFile(text: string): DecodedCheckpoint {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new CheckpointCorruptError(`not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!isObject(doc)) throw new CheckpointCorruptError('not a JSON object');
  const version = doc.version;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) throw new CheckpointCorruptError(`version ${JSON.stringify(version)} is not a checkpoint version`);
  if (version > CHECKPOINT_VERSION) {
    throw new CheckpointCorruptError(`version ${version} was written by a newer Cascade than this one (which reads up to ${CHECKPOINT_VERSION}); run the newer node plugin again`);
  }
  if (typeof doc.checksum !== 'string') throw new CheckpointCorruptError('checksum is missing');
  let payload = doc.payload;
  if (payload === undefined) throw new CheckpointCorruptError('payload is missing');
  const actual = `sha256:${createHash('sha256').update(canonicalJson(payload)).digest('hex')}`;
  if (actual !== doc.checksum) throw new CheckpointCorruptError(`checksum mismatch: file says ${doc.checksum}, content hashes to ${actual}`);
  for (let v = version; v < CHECKPOINT_VERSION; v++) {
    const upgrade = UPGRADES[v];
    if (!upgrade) throw new CheckpointCorruptError(`no conversion from version ${v}`);
    payload = upgrade(payload);
  }
  checkShape(payload);
  return version < CHECKPOINT_VERSION ? { state: payload, convertedFrom: version } : { state: payload };
}

/** Parses and verifies a checkpoint file's text (older versions converted). */
export function decodeCheckpoint(text: string): CheckpointState {
  return decodeCheckpointFile(text).state;
}

// ---- file I/O ----

export async function readBootIdFromProc(): Promise<string> {
  return (await readFile(BOOT_ID_PATH, 'utf8')).trim();
}

export interface CheckpointStoreOptions {
  /** The checkpoint file, e.g. /var/lib/kubelet/plugins/<driver>/checkpoint.json. */
  readonly path: string;
  /** The node's boot ID; tests inject one. Default: /proc/sys/kernel/random/boot_id. */
  readonly readBootId?: () => Promise<string>;
  /**
   * What to do with a corrupt file: "fail" (default) keeps it in place, saves a
   * copy next to it and throws, so the plugin does not start and forget MIG
   * instances it owns; "start-empty" moves it aside and starts with no claims.
   */
  readonly onCorrupt?: 'fail' | 'start-empty';
}

export type LoadOutcome =
  | { readonly kind: 'missing'; readonly state: CheckpointState }
  | { readonly kind: 'loaded'; readonly state: CheckpointState; readonly convertedFrom?: number }
  | { readonly kind: 'rebooted'; readonly state: CheckpointState; readonly previous: CheckpointState }
  | { readonly kind: 'corrupt-discarded'; readonly state: CheckpointState; readonly corruptCopy: string; readonly reason: string };

export class CheckpointStore {
  readonly path: string;
  private readonly readBootId: () => Promise<string>;
  private readonly onCorrupt: 'fail' | 'start-empty';

  constructor(options: CheckpointStoreOptions) {
    this.path = options.path;
    this.readBootId = options.readBootId ?? readBootIdFromProc;
    this.onCorrupt = options.onCorrupt ?? 'fail';
  }

  /** Where a corrupt checkpoint is copied to. */
  get corruptPath(): string {
    return `${this.path}.corrupt`;
  }

  /**
   * Reads the checkpoint. After a reboot (boot ID changed) the old state is
   * discarded: MIG instances and /var/run/cdi do not survive a reboot, so the
   * claims it lists are not prepared any more; the previous state is returned
   * for logging.
   */
  async load(): Promise<LoadOutcome> {
    const bootId = await this.readBootId();
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if (hasErrorCode(err, 'ENOENT')) return { kind: 'missing', state: emptyCheckpoint(bootId) };
      throw err;
    }
    let decoded: DecodedCheckpoint;
    try {
      decoded = decodeCheckpointFile(text);
    } catch (err) {
      if (!(err instanceof CheckpointCorruptError)) throw err;
      return this.handleCorrupt(err, bootId);
    }
    const { state, convertedFrom } = decoded;
    if (state.bootId !== bootId) return { kind: 'rebooted', state: emptyCheckpoint(bootId), previous: state };
    if (convertedFrom !== undefined) {
      // Written back at once in this version, so a crash later never meets the old format again.
      await this.save(state);
      return { kind: 'loaded', state, convertedFrom };
    }
    return { kind: 'loaded', state };
  }

  private async handleCorrupt(err: CheckpointCorruptError, bootId: string): Promise<LoadOutcome> {
    const copy = this.corruptPath;
    if (this.onCorrupt === 'start-empty') {
      await rename(this.path, copy);
      await syncDir(dirname(this.path));
      return { kind: 'corrupt-discarded', state: emptyCheckpoint(bootId), corruptCopy: copy, reason: err.message };
    }
    await copyFile(this.path, copy);
    throw new CheckpointCorruptError(
      `checkpoint ${this.path} is corrupt: ${err.message}. A copy was saved as ${copy}. ` +
        'Check the node for MIG instances Cascade created (nvidia-smi mig -lgi), then delete the file or start the node plugin with --on-corrupt-checkpoint=start-empty.',
      this.path,
    );
  }

  /** Writes the state durably (temp file, fsync, rename, fsync dir), mode 0600 in a 0700 directory. */
  async save(state: CheckpointState): Promise<void> {
    await ensureDir(dirname(this.path), PRIVATE_DIR_MODE, true);
    await writeFileAtomic(this.path, encodeCheckpoint(state), PRIVATE_FILE_MODE);
  }
}
