// A stateful stand-in for the part of Linux sysfs that vfio passthrough uses:
// PCI functions with their driver links, driver_override, IOMMU groups, the
// bind/unbind/drivers_probe control files and the /dev/vfio nodes.
//
// The tree is ordinary files and links under a root, so the node plugin reads
// and writes it exactly as it does /sys on a real node (--sysfs-root). The
// control files are FIFOs that this process reads, and it applies each write
// the way the kernel's PCI core does:
//   drivers/<drv>/unbind   detaches the function, if <drv> drives it
//   drivers/<drv>/bind     attaches it, if it has no driver and <drv> may take it
//   drivers_probe          attaches it to driver_override, else to its own driver
// One difference from the kernel: a write to a FIFO returns before the write is
// applied, so the caller sees the effect shortly after, not at once; the node
// plugin waits for the driver link it expects either way. Errors the kernel
// would return from write() (EBUSY, ENODEV) leave the tree unchanged here.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync, constants, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

/** One PCI function the stand-in models. */
export interface FakePciFunction {
  /** "0000:1b:00.0". */
  readonly address: string;
  /** "0x10de". */
  readonly vendor: string;
  /** "0x2330". */
  readonly device: string;
  /** "0x030200" for a 3D controller, "0x040300" audio, "0x060400" PCI bridge, "0x020000" Ethernet. */
  readonly class: string;
  /** The driver the function gets when probed without an override ("nvidia", "snd_hda_intel", "pcieport", "mlx5_core"). */
  readonly nativeDriver: string;
  /** Driver bound at start; default nativeDriver. Undefined-as-"none" is written as null. */
  readonly boundAtStart?: string | null;
  /** IOMMU group number; null: the IOMMU is off for this function. */
  readonly iommuGroup: number | null;
  readonly numaNode: number;
  /** PCIe root complex the function hangs off, "pci0000:15". */
  readonly pcieRoot: string;
  /**
   * Bridges between the root complex and the function, root port first (a GPU
   * behind a switch: root port, switch upstream port, switch downstream port).
   * Default none: the function sits right on the root bus.
   */
  readonly bridges?: readonly string[];
}

export interface FakeSysfsConfig {
  readonly functions: readonly FakePciFunction[];
  /** Whether the vfio-pci module is loaded (its driver directory and /dev/vfio/vfio exist). Default true. */
  readonly vfioPci?: boolean;
}

/** What a test can see and change while the stand-in runs. */
export interface FakeSysfs {
  readonly root: string;
  readonly devRoot: string;
  /** The driver bound to a function now, or undefined. */
  driverOf(address: string): string | undefined;
  /** Every write applied so far, "<file> <value>", oldest first (for tests that check the order). */
  readonly writes: readonly string[];
  /** Resolves once every write made before this call has been applied. */
  settled(): Promise<void>;
  /** Loads or unloads the vfio-pci module (unloading needs no function bound to it, as rmmod does). */
  setVfioModule(loaded: boolean): void;
  stop(): void;
}

const PCI = ['bus', 'pci'];

function normalise(address: string): string {
  return address.trim().toLowerCase();
}

/** The fake's own record of each function (the kernel's struct pci_dev). */
interface Fn {
  readonly spec: FakePciFunction;
  driver: string | undefined;
}

class Tree {
  readonly fns = new Map<string, Fn>();
  readonly drivers = new Set<string>();
  readonly writes: string[] = [];
  private readonly sockets = new Map<string, { socket: net.Socket; fd: number }>();

  constructor(
    readonly root: string,
    readonly devRoot: string,
    config: FakeSysfsConfig,
  ) {
    for (const f of config.functions) {
      const address = normalise(f.address);
      if (!/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(address)) throw new Error(`fake sysfs: ${f.address} is not a PCI address`);
      const bound = f.boundAtStart === undefined ? f.nativeDriver : (f.boundAtStart ?? undefined);
      this.fns.set(address, { spec: { ...f, address }, driver: bound });
      this.drivers.add(f.nativeDriver);
    }
    if (config.vfioPci ?? true) this.drivers.add('vfio-pci');
  }

  p(...parts: string[]): string {
    return path.join(this.root, ...parts);
  }

  /** The function's real directory, under its root complex and bridges (bus/pci/devices links to it). */
  dirOf(s: FakePciFunction): string {
    return this.p('devices', s.pcieRoot, ...(s.bridges ?? []), s.address);
  }

  build(): void {
    mkdirSync(this.p(...PCI, 'devices'), { recursive: true });
    mkdirSync(this.p(...PCI, 'drivers'), { recursive: true });
    mkdirSync(this.p('kernel', 'iommu_groups'), { recursive: true });
    mkdirSync(path.join(this.devRoot, 'vfio'), { recursive: true });
    for (const fn of this.fns.values()) {
      const s = fn.spec;
      // The real device directory sits under its root complex; bus/pci/devices links to it.
      const dir = this.dirOf(s);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'vendor'), `${s.vendor}\n`);
      writeFileSync(path.join(dir, 'device'), `${s.device}\n`);
      writeFileSync(path.join(dir, 'class'), `${s.class}\n`);
      writeFileSync(path.join(dir, 'numa_node'), `${s.numaNode}\n`);
      writeFileSync(path.join(dir, 'driver_override'), '(null)\n');
      symlinkSync(path.relative(this.p(...PCI, 'devices'), dir), this.p(...PCI, 'devices', s.address));
      if (s.iommuGroup !== null) {
        const group = this.p('kernel', 'iommu_groups', String(s.iommuGroup), 'devices');
        mkdirSync(group, { recursive: true });
        symlinkSync(path.relative(group, dir), path.join(group, s.address));
        symlinkSync(path.relative(dir, path.dirname(group)), path.join(dir, 'iommu_group'));
      }
    }
    for (const d of this.drivers) this.addDriver(d);
    this.mkfifo(this.p(...PCI, 'drivers_probe'));
    for (const fn of this.fns.values()) this.linkDriver(fn);
    this.refreshDevNodes();
  }

  private addDriver(name: string): void {
    const dir = this.p(...PCI, 'drivers', name);
    mkdirSync(dir, { recursive: true });
    this.mkfifo(path.join(dir, 'bind'));
    this.mkfifo(path.join(dir, 'unbind'));
    if (name === 'vfio-pci') mkdirSync(this.p('module', 'vfio_pci'), { recursive: true });
  }

  private removeDriver(name: string): void {
    const dir = this.p(...PCI, 'drivers', name);
    for (const f of ['bind', 'unbind']) this.closeFifo(path.join(dir, f));
    rmSync(dir, { recursive: true, force: true });
    if (name === 'vfio-pci') rmSync(this.p('module', 'vfio_pci'), { recursive: true, force: true });
  }

  private mkfifo(file: string): void {
    const made = spawnSync('mkfifo', ['-m', '0200', file], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`fake sysfs: mkfifo ${file}: ${made.stderr || made.error?.message}`);
    // Held open for reading and writing, so writers never block and never meet ENXIO while we run.
    const fd = openSync(file, constants.O_RDWR | constants.O_NONBLOCK);
    const socket = new net.Socket({ fd, readable: true, writable: false });
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) this.apply(file, line);
    });
    socket.on('error', () => undefined);
    this.sockets.set(file, { socket, fd });
  }

  private closeFifo(file: string): void {
    const s = this.sockets.get(file);
    if (!s) return;
    s.socket.destroy();
    this.sockets.delete(file);
  }

  /** Resolves after the event loop has drained every FIFO once more. */
  settled(): Promise<void> {
    return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
  }

  private linkDriver(fn: Fn): void {
    const link = path.join(this.p(...PCI, 'devices', fn.spec.address), 'driver');
    rmSync(link, { force: true });
    if (fn.driver === undefined) return;
    const dir = this.dirOf(fn.spec);
    symlinkSync(path.relative(dir, this.p(...PCI, 'drivers', fn.driver)), path.join(dir, 'driver'));
    const back = this.p(...PCI, 'drivers', fn.driver, fn.spec.address);
    rmSync(back, { force: true });
    symlinkSync(path.relative(path.dirname(back), dir), back);
  }

  private unlinkDriver(fn: Fn, driver: string): void {
    rmSync(path.join(this.dirOf(fn.spec), 'driver'), { force: true });
    rmSync(this.p(...PCI, 'drivers', driver, fn.spec.address), { force: true });
  }

  private override(fn: Fn): string | undefined {
    const text = readFileSync(path.join(this.dirOf(fn.spec), 'driver_override'), 'utf8').trim();
    return text === '' || text === '(null)' ? undefined : text;
  }

  /** May `driver` take this function? The override, when set, is the only driver that may. */
  private mayBind(fn: Fn, driver: string): boolean {
    if (!this.drivers.has(driver)) return false;
    const override = this.override(fn);
    if (override !== undefined) return override === driver;
    return driver === fn.spec.nativeDriver;
  }

  private bind(fn: Fn, driver: string): void {
    fn.driver = driver;
    this.linkDriver(fn);
    this.refreshDevNodes();
  }

  apply(file: string, raw: string): void {
    const value = normalise(raw);
    const rel = path.relative(this.p(...PCI), file);
    this.writes.push(`${rel} ${value}`);
    const fn = this.fns.get(value);
    if (!fn) return; // ENODEV: no such device
    if (rel === 'drivers_probe') {
      if (fn.driver !== undefined) return;
      const target = this.override(fn) ?? fn.spec.nativeDriver;
      if (this.mayBind(fn, target)) this.bind(fn, target);
      return;
    }
    const [, driver, action] = rel.split(path.sep);
    if (driver === undefined) return;
    if (action === 'unbind') {
      if (fn.driver !== driver) return; // ENODEV: not bound to this driver
      fn.driver = undefined;
      this.unlinkDriver(fn, driver);
      this.refreshDevNodes();
    } else if (action === 'bind') {
      if (fn.driver !== undefined) return; // EBUSY
      if (this.mayBind(fn, driver)) this.bind(fn, driver);
    }
  }

  /**
   * /dev/vfio/vfio while the module is loaded; /dev/vfio/<group> while any
   * function of the group is bound to vfio-pci. Regular files stand in for the
   * character devices.
   */
  private refreshDevNodes(): void {
    const dir = path.join(this.devRoot, 'vfio');
    const want = new Set<string>();
    if (this.drivers.has('vfio-pci')) want.add('vfio');
    for (const fn of this.fns.values()) if (fn.driver === 'vfio-pci' && fn.spec.iommuGroup !== null) want.add(String(fn.spec.iommuGroup));
    for (const name of existsSync(dir) ? readdirSync(dir) : []) if (!want.has(name)) unlinkSync(path.join(dir, name));
    for (const name of want) if (!existsSync(path.join(dir, name))) closeSync(openSync(path.join(dir, name), 'w', 0o600));
  }

  setVfioModule(loaded: boolean): void {
    if (loaded === this.drivers.has('vfio-pci')) return;
    if (loaded) {
      this.drivers.add('vfio-pci');
      this.addDriver('vfio-pci');
    } else {
      if ([...this.fns.values()].some((f) => f.driver === 'vfio-pci')) throw new Error('fake sysfs: rmmod vfio_pci: Module vfio_pci is in use');
      this.drivers.delete('vfio-pci');
      this.removeDriver('vfio-pci');
    }
    this.refreshDevNodes();
  }

  stop(): void {
    for (const file of [...this.sockets.keys()]) this.closeFifo(file);
  }

  /** The driver link as a reader of the tree sees it. */
  driverOf(address: string): string | undefined {
    try {
      return path.basename(readlinkSync(path.join(this.p(...PCI, 'devices', normalise(address)), 'driver')));
    } catch {
      return undefined;
    }
  }
}

/** Builds the tree under `root` (and device nodes under `devRoot`) and starts serving its control files. */
export function startFakeSysfs(root: string, devRoot: string, config: FakeSysfsConfig): FakeSysfs {
  const tree = new Tree(root, devRoot, config);
  tree.build();
  return {
    root,
    devRoot,
    driverOf: (a) => tree.driverOf(a),
    get writes() {
      return tree.writes;
    },
    settled: () => tree.settled(),
    setVfioModule: (loaded) => tree.setVfioModule(loaded),
    stop: () => tree.stop(),
  };
}
