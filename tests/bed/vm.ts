/**
 * `VmBed`: a QEMU guest with virtio-net NICs behind a virtual Intel IOMMU, for testing the
 * driver against real (emulated) hardware through kernel VFIO.
 *
 * The guest runs the host's Debian kernel with the host's root shared read-only over 9p, so
 * every host tool (deno, tcpdump, python3 + scapy, modprobe) exists in the guest. A second,
 * writable 9p share (a per-bed temp dir) is mounted at {@linkcode GUEST_SHARE_DIR} and is
 * the command channel: the host drops a command file, the guest agent (PID 1, a shell loop)
 * runs it with `sh` in its own session and writes stdout, stderr and the exit status back.
 *
 * Fixed guest PCI addresses (see {@linkcode VmBed.nicAddress}):
 * - 0000:00:02.0 / 0000:00:03.0: the 9p devices (host root, bed share);
 * - 0000:00:1e.0: virtio-serial with the guest agent's doorbell port;
 * - 0000:00:(04+i).0: NIC i, for i < `nics` (at most 16);
 * - `sharedGroup`: a pcie-pci-bridge at 0000:00:1c.0 with two more NICs behind it at
 *   0000:01:01.0 and 0000:01:02.0 (NICs `nics` and `nics + 1`); the guest puts the bridge
 *   and both NICs into one IOMMU group (conventional PCI: no ACS, shared requester ID).
 *
 * The NICs stay bound to `virtio-pci` as booted; virtio_net and vfio-pci are not loaded.
 *
 * @example
 * ```ts
 * import { VmBed } from "./vm.ts";
 * await using bed = await VmBed.start({ nics: 2 });
 * const r = await bed.exec("uname -r");
 * console.log(r.stdout, bed.nicAddress(0)); // "6.1.0-…", "0000:00:04.0"
 * ```
 *
 * @module
 */

import { bedQemu } from "./bed_qemu.ts";
import { buildInitramfs, GUEST_SHARE_DIR } from "./initramfs.ts";
import { cleanupStaleNetns, Netns } from "./netns.ts";
import {
  agentScript,
  DOORBELL_PORT,
  type ExecOptions,
  type ExecResult,
  GuestProcess,
  readText,
  sleep,
  startJob,
} from "./guest_agent.ts";

export { type ExecOptions, type ExecResult, GUEST_SHARE_DIR, GuestProcess };
export { shellQuote } from "./guest_agent.ts";

/** Options of {@linkcode VmBed.start}. */
export interface VmBedOptions {
  /** Number of NICs at 0000:00:04.0 onwards (default 1, at most 16). */
  nics?: number;
  /** Queue pairs per NIC: one number for all, or one per NIC (default 1). */
  queuePairs?: number | number[];
  /**
   * Legacy-only NICs (virtio 0.9.5: `disable-modern=on,disable-legacy=off`, no
   * iommu_platform, so they DMA around the IOMMU): one flag for all, or per NIC.
   */
  legacy?: boolean | boolean[];
  /** Extra virtio-net-pci properties, e.g. "rss=on,hash=on": one string for all, or per NIC. */
  nicProps?: string | string[];
  /** Guest memory in MiB (default 2048). */
  memoryMiB?: number;
  /** 2 MiB huge pages reserved at boot (kernel argument `hugepages=N`, default 0). */
  hugepages?: number;
  /** Add two NICs behind a pcie-pci-bridge that share one IOMMU group. */
  sharedGroup?: boolean;
  /** Guest CPUs (default 2). */
  cpus?: number;
  /** Accelerator (default "tcg"; KVM only where the CPU has vmx/svm and KVM works). */
  accel?: "tcg" | "kvm";
  /** Give up booting after this long (default 90 s). */
  bootTimeoutMs?: number;
  /** Kernel version to boot (default: the newest under /boot). */
  kernelVersion?: string;
  /** Extra kernel command line arguments. */
  kernelArgs?: string;
  /** Extra environment variables of every guest command. */
  guestEnv?: Record<string, string>;
  /**
   * Steer the host's receive processing of every tap to CPU 0, so captures see each NIC's
   * frames in order (default true; see {@linkcode Netns}).
   */
  steerRxToCpu0?: boolean;
}

const liveBeds = new Set<VmBed>();
let handlersInstalled = false;

function closeAllSync(): void {
  for (const bed of [...liveBeds]) bed.closeSync();
}

function onSignal(): void {
  closeAllSync();
  Deno.exit(130);
}

function trackBed(bed: VmBed, live: boolean): void {
  if (live) liveBeds.add(bed);
  else liveBeds.delete(bed);
  if (liveBeds.size > 0 && !handlersInstalled) {
    globalThis.addEventListener("unload", closeAllSync);
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);
    handlersInstalled = true;
  } else if (liveBeds.size === 0 && handlersInstalled) {
    globalThis.removeEventListener("unload", closeAllSync);
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    handlersInstalled = false;
  }
}

/** Removes bed temp dirs (/tmp/vdbed-PID-*) of processes that no longer exist. */
function cleanupStaleTempDirs(): void {
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  for (const e of Deno.readDirSync(tmp)) {
    const m = /^vdbed-(\d+)-/.exec(e.name);
    if (!m || Number(m[1]) === Deno.pid) continue;
    try {
      Deno.statSync(`/proc/${m[1]}`);
    } catch {
      Deno.removeSync(`${tmp}/${e.name}`, { recursive: true });
    }
  }
}

const SHARED_BRIDGE_SLOT = 0x1c;
const MAX_NICS = 16;

/** The QEMU guest test bed. Create with {@linkcode VmBed.start}; always close it. */
export class VmBed {
  /** Name of the network namespace QEMU and the taps live in. */
  readonly netns: string;
  /** The namespace itself (taps, rx steering). */
  readonly ns: Netns;
  /** The bed's temp dir on the host (console.log, qemu.log, share/). */
  readonly dir: string;
  /** The host side of the writable share (guest: {@linkcode GUEST_SHARE_DIR}). */
  readonly shareDir: string;
  /** Total number of NICs, including the two of `sharedGroup`. */
  readonly nicCount: number;
  /** Indices of the NICs that share an IOMMU group (empty without `sharedGroup`). */
  readonly sharedGroupNics: readonly number[];
  /** Queue pairs of each NIC. */
  readonly queuePairs: readonly number[];
  /** Kernel version the guest runs. */
  readonly kernelVersion: string;
  /** Milliseconds from starting QEMU until the guest agent was ready. */
  bootMs = 0;
  #child?: Deno.ChildProcess;
  #qemuLog: string[] = [];
  #stderrDone?: Promise<void>;
  #exited?: Deno.CommandStatus;
  #closed = false;
  #jobs = 0;
  #bell?: Deno.UnixConn;
  #bellChain: Promise<unknown> = Promise.resolve();

  /** PID of the QEMU process (`ip netns exec` and setpriv exec it in place). */
  get qemuPid(): number {
    if (!this.#child) throw new Error("VmBed: QEMU is not running");
    return this.#child.pid;
  }

  private constructor(ns: Netns, dir: string, queuePairs: number[], shared: boolean, kv: string) {
    this.ns = ns;
    this.netns = ns.name;
    this.dir = dir;
    this.shareDir = `${dir}/share`;
    this.queuePairs = queuePairs;
    this.nicCount = queuePairs.length;
    this.sharedGroupNics = shared ? [queuePairs.length - 2, queuePairs.length - 1] : [];
    this.kernelVersion = kv;
  }

  /** Boots a guest (building the bed's QEMU first if needed) and waits until its agent answers. */
  static async start(opts: VmBedOptions = {}): Promise<VmBed> {
    const nics = opts.nics ?? 1;
    if (nics < 0 || nics > MAX_NICS) throw new Error(`nics must be 0..${MAX_NICS}`);
    const qp = Array.from({ length: nics }, (_, i) => {
      const q = opts.queuePairs ?? 1;
      return typeof q === "number" ? q : q[i] ?? 1;
    });
    if (opts.sharedGroup) qp.push(1, 1);
    cleanupStaleNetns();
    cleanupStaleTempDirs();
    const qemu = await bedQemu();
    const initramfs = await buildInitramfs({ kernelVersion: opts.kernelVersion });
    const dir = await Deno.makeTempDir({ prefix: `vdbed-${Deno.pid}-` });
    let ns: Netns | undefined;
    let bed: VmBed | undefined;
    try {
      ns = await Netns.create({ tapQueues: qp, steerRxToCpu0: opts.steerRxToCpu0 });
      bed = new VmBed(ns, dir, qp, !!opts.sharedGroup, initramfs.kernel.version);
      trackBed(bed, true);
      await Deno.mkdir(`${bed.shareDir}/jobs`, { recursive: true });
      await Deno.writeTextFile(
        `${bed.shareDir}/agent.sh`,
        agentScript({
          PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
          HOME: "/run/home",
          DENO_DIR: "/run/deno",
          TMPDIR: "/run/tmp",
          DENO_NO_UPDATE_CHECK: "1",
          LANG: "C.UTF-8",
          TERM: "dumb",
          ...opts.guestEnv,
        }),
      );
      const args = bed.#qemuArgs(opts, initramfs.path, initramfs.kernel.image);
      await Deno.writeTextFile(`${dir}/qemu.cmdline`, [qemu, ...args].join(" ") + "\n");
      await bed.#boot(qemu, args, opts.bootTimeoutMs ?? 90000);
      return bed;
    } catch (e) {
      if (bed) bed.closeSync();
      else {
        ns?.closeSync();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
      throw e;
    }
  }

  #qemuArgs(opts: VmBedOptions, initrd: string, kernel: string): string[] {
    const props = (i: number) => {
      const p = opts.nicProps;
      const s = typeof p === "string" ? p : p?.[i];
      return s ? "," + s : "";
    };
    const cmdline = [
      "console=ttyS0",
      "quiet",
      "intel_iommu=on",
      "iommu=pt",
      "panic=-1",
      // A TCG guest on a busy host can miss the ticks of the boot-time IO-APIC timer check
      // and panic ("timer doesn't work through Interrupt-remapped IO-APIC"): skip it.
      "no_timer_check",
      ...(opts.hugepages ? [`hugepages=${opts.hugepages}`] : []),
      ...(opts.kernelArgs ? [opts.kernelArgs] : []),
    ].join(" ");
    const kvm = opts.accel === "kvm";
    const a = [
      // The bed's QEMU runs from its build tree and the source package has no firmware:
      // Debian's SeaBIOS, linuxboot and the virtio option ROM.
      ...["/usr/share/seabios", "/usr/share/qemu", "/usr/lib/ipxe/qemu"].flatMap((d) => ["-L", d]),
      "-nodefaults",
      "-no-user-config",
      "-display",
      "none",
      "-no-reboot",
      "-machine",
      "q35,kernel-irqchip=split",
      ...(kvm ? ["-accel", "kvm", "-cpu", "host"] : ["-accel", "tcg,thread=multi", "-cpu", "max"]),
      "-smp",
      String(opts.cpus ?? 2),
      "-m",
      String(opts.memoryMiB ?? 2048),
      "-device",
      "intel-iommu,intremap=on,caching-mode=on",
      "-kernel",
      kernel,
      "-initrd",
      initrd,
      "-append",
      cmdline,
      "-monitor",
      `unix:${this.dir}/monitor.sock,server=on,wait=off`,
      "-chardev",
      `file,id=con,path=${this.dir}/console.log`,
      "-serial",
      "chardev:con",
      "-fsdev",
      "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
      "-device",
      "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot,addr=0x2",
      "-fsdev",
      `local,id=bed,path=${this.shareDir},security_model=none,multidevs=remap`,
      "-device",
      "virtio-9p-pci,fsdev=bed,mount_tag=bed,addr=0x3",
      "-device",
      "virtio-serial-pci,id=vser,addr=0x1e",
      "-chardev",
      `socket,id=bell,path=${this.dir}/bell.sock,server=on,wait=off`,
      "-device",
      `virtserialport,bus=vser.0,chardev=bell,name=${DOORBELL_PORT}`,
    ];
    if (this.sharedGroupNics.length) {
      a.push(
        "-device",
        `pcie-pci-bridge,id=sgbr,bus=pcie.0,addr=0x${SHARED_BRIDGE_SLOT.toString(16)}`,
      );
    }
    for (let i = 0; i < this.nicCount; i++) {
      const q = this.queuePairs[i];
      const shared = this.sharedGroupNics.indexOf(i);
      const legacy = typeof opts.legacy === "boolean" ? opts.legacy : opts.legacy?.[i] ?? false;
      const kind = legacy
        ? "disable-modern=on,disable-legacy=off"
        : "disable-legacy=on,iommu_platform=on";
      const where = shared >= 0
        ? `bus=sgbr,addr=0x${shared + 1}`
        : `addr=0x${(4 + i).toString(16)}`;
      a.push(
        "-netdev",
        `tap,id=n${i},ifname=${this.tapName(i)},queues=${q},vhost=off,script=no,downscript=no`,
        "-device",
        `virtio-net-pci,netdev=n${i},mq=on,vectors=${2 * q + 2},${kind},` +
          `${where},mac=${this.nicMac(i)}${shared >= 0 ? "" : props(i)}`,
      );
    }
    return a;
  }

  async #boot(qemu: string, args: string[], timeoutMs: number): Promise<void> {
    const t0 = performance.now();
    this.#child = new Deno.Command("ip", {
      args: this.ns.wrap(["setpriv", "--pdeathsig", "KILL", qemu, ...args])
        .slice(1),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#child.status.then((s) => (this.#exited = s));
    this.#stderrDone = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of this.#child!.stderr) this.#qemuLog.push(dec.decode(chunk));
      await Deno.writeTextFile(`${this.dir}/qemu.log`, this.#qemuLog.join("")).catch(() => {});
    })();
    const ready = `${this.shareDir}/ready`;
    while (!(await readText(ready))?.endsWith("\n")) {
      if (!this.#bell) {
        this.#bell = await Deno.connect({ transport: "unix", path: `${this.dir}/bell.sock` })
          .catch(() => undefined);
      }
      if (this.#exited) throw new Error(await this.#bootFailure("QEMU exited during boot"));
      if (performance.now() - t0 > timeoutMs) {
        throw new Error(await this.#bootFailure(`guest not ready within ${timeoutMs} ms`));
      }
      await sleep(50);
    }
    this.bootMs = Math.round(performance.now() - t0);
  }

  async #bootFailure(what: string): Promise<string> {
    await sleep(100);
    const status = this.#exited ? ` (exit ${this.#exited.code})` : "";
    return `VmBed: ${what}${status}\n--- qemu stderr ---\n${this.#qemuLog.join("").trim()}\n` +
      `--- console tail (${this.dir}/console.log; VDBED_KEEP=1 keeps it) ---\n` +
      (await this.consoleTail());
  }

  /** The last `lines` lines of the guest's serial console. */
  async consoleTail(lines = 40): Promise<string> {
    const text = (await readText(`${this.dir}/console.log`)) ?? "";
    return text.split("\n").slice(-lines).join("\n");
  }

  /** Throws (with the console tail) when QEMU is no longer running. */
  assertRunning(): void {
    if (this.#closed) throw new Error("VmBed: already closed");
    if (this.#exited) {
      let log: string[] = [];
      try {
        log = Deno.readTextFileSync(`${this.dir}/console.log`).split("\n").slice(-30);
      } catch { /* no console log */ }
      throw new Error(
        `VmBed: QEMU exited (code ${this.#exited.code})\n${this.#qemuLog.join("")}\n` +
          `--- console tail ---\n${log.join("\n")}`,
      );
    }
  }

  /** Guest PCI address of NIC `i`, e.g. "0000:00:04.0". */
  nicAddress(i: number): string {
    this.#checkNic(i);
    const shared = this.sharedGroupNics.indexOf(i);
    if (shared >= 0) return `0000:01:0${shared + 1}.0`;
    return `0000:00:${(4 + i).toString(16).padStart(2, "0")}.0`;
  }

  /** Guest PCI address of the sharedGroup's pcie-pci-bridge. */
  sharedBridgeAddress(): string {
    return `0000:00:${SHARED_BRIDGE_SLOT.toString(16)}.0`;
  }

  /**
   * Steers the host's receive processing of NIC `i`'s tap (frames the guest sends) to one
   * CPU, so that frames of one flow reach host captures in order. See
   * {@linkcode Netns.steerRxToOneCpu}.
   */
  steerRxToOneCpu(i: number): Promise<void> {
    return this.ns.steerRxToOneCpu(this.tapName(i));
  }

  /** Host tap (in {@linkcode VmBed.netns}) behind NIC `i`. */
  tapName(i: number): string {
    this.#checkNic(i);
    return this.ns.taps[i];
  }

  /** MAC address of NIC `i` (52:54:00:12:34:5X, X = i). */
  nicMac(i: number): string {
    this.#checkNic(i);
    return `52:54:00:12:34:${(0x50 + i).toString(16)}`;
  }

  #checkNic(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.nicCount) {
      throw new Error(`no NIC ${i} (the bed has ${this.nicCount})`);
    }
  }

  /** Host path of a guest path under {@linkcode GUEST_SHARE_DIR}. */
  hostPath(guestPath: string): string {
    if (guestPath === GUEST_SHARE_DIR) return this.shareDir;
    if (!guestPath.startsWith(GUEST_SHARE_DIR + "/")) {
      throw new Error(`${guestPath} is not under the bed share ${GUEST_SHARE_DIR}`);
    }
    return this.shareDir + guestPath.slice(GUEST_SHARE_DIR.length);
  }

  /** Guest path of a host path under {@linkcode VmBed.shareDir}. */
  guestPath(hostPath: string): string {
    if (hostPath === this.shareDir) return GUEST_SHARE_DIR;
    if (!hostPath.startsWith(this.shareDir + "/")) {
      throw new Error(`${hostPath} is not under the bed share ${this.shareDir}`);
    }
    return GUEST_SHARE_DIR + hostPath.slice(this.shareDir.length);
  }

  /** Wakes the guest agent up to look for a new job (used by the job channel). */
  ring(): void {
    const bell = this.#bell;
    if (!bell) return;
    const byte = new Uint8Array([0x21]);
    this.#bellChain = this.#bellChain.then(() => bell.write(byte)).catch(() => {});
  }

  /** Starts a shell command in the guest (its own session and process group). */
  spawn(cmd: string, opts: ExecOptions = {}): Promise<GuestProcess> {
    this.assertRunning();
    return startJob(this, this.shareDir, () => ++this.#jobs, cmd, opts);
  }

  /**
   * Runs one QEMU human-monitor command (e.g. "announce_self", "info network") and
   * returns what it printed.
   */
  async monitor(command: string, timeoutMs = 10000): Promise<string> {
    const conn = await Deno.connect({ transport: "unix", path: `${this.dir}/monitor.sock` });
    const dec = new TextDecoder();
    let text = "";
    const buf = new Uint8Array(4096);
    const deadline = Date.now() + timeoutMs;
    const until = async (prompts: number) => {
      while ((text.match(/\(qemu\) /g) ?? []).length < prompts) {
        if (Date.now() > deadline) throw new Error(`monitor: no prompt after ${command}`);
        const n = await conn.read(buf);
        if (n === null) break;
        text += dec.decode(buf.subarray(0, n));
      }
    };
    try {
      await until(1); // banner and first prompt
      await conn.write(new TextEncoder().encode(command + "\n"));
      await until(2);
      const after = text.slice(text.indexOf("(qemu) ") + 7);
      return after.slice(0, after.lastIndexOf("(qemu) ")).replace(/\r/g, "");
    } finally {
      conn.close();
    }
  }

  /** Runs a shell command in the guest and waits for it (killed and thrown at the timeout). */
  async exec(cmd: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const p = await this.spawn(cmd, opts);
    try {
      return await p.wait(opts.timeoutMs ?? 60000);
    } catch (e) {
      if (!this.#exited && !this.#closed) await p.kill("KILL", 5000).catch(() => {});
      throw e;
    }
  }

  /** Kills QEMU, removes the namespace, taps and temp files. Idempotent. */
  closeSync(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#bell?.close();
    } catch { /* closed */ }
    if (this.#child && !this.#exited) {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* gone */ }
    }
    this.ns.closeSync();
    if (!Deno.env.get("VDBED_KEEP")) {
      try {
        Deno.removeSync(this.dir, { recursive: true });
      } catch { /* gone */ }
    }
    trackBed(this, false);
  }

  /** Stops QEMU (SIGTERM, then SIGKILL), removes namespace, taps and temp files. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#child && !this.#exited) {
      try {
        this.#child.kill("SIGTERM");
      } catch { /* gone */ }
      await Promise.race([this.#child.status, sleep(3000)]);
    }
    this.closeSync();
    if (this.#child) await this.#child.status;
    await this.#stderrDone;
  }

  /** Same as {@linkcode VmBed.close} (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
