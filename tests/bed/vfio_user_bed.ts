/**
 * Test bed 2: QEMU as a vfio-user server, no VM. Each port is one
 * `qemu-system-x86_64 -machine x-remote,vfio-user=on` process serving one virtio-net-pci
 * function on a multi-queue tap, all taps in one private network namespace (from
 * {@link ./netns.ts}), each server's socket in a temporary directory. The driver runs in
 * this process and reaches the device over the socket; the host side of the traffic is
 * the tap, inside the namespace ({@link ./traffic.ts} works with this bed).
 *
 * Facts this bed relies on (checked with QEMU 7.2 built by tools/build_bed_qemu.sh):
 * - the server takes one client and QEMU exits when that client disconnects, so every
 *   open of a port needs a fresh bed (or a fresh server: {@linkcode VfioUserBed.restart});
 * - `disable-legacy=on` is needed for `iommu_platform=on` (the x-remote machine has no
 *   PCIe root port, so the default would be a transitional device);
 * - with `iommu_platform=on` the device offers VIRTIO_F_ACCESS_PLATFORM and DMAs through
 *   the per-device address space that DMA_MAP fills; without it, it would DMA into the
 *   remote machine's own (empty) memory.
 *
 * The QEMU binary: {@linkcode bedQemu} (built once by tools/build_bed_qemu.sh).
 *
 * @module
 */

import { bedQemu } from "./bed_qemu.ts";
import { Netns } from "./netns.ts";
import type { TrafficBed } from "./traffic.ts";

/** Options of {@linkcode VfioUserBed.start}. */
export interface VfioUserBedOptions {
  /** Number of ports (servers), default 1. */
  ports?: number;
  /** Queue pairs per port (tap queues, virtio-net mq), default 2. */
  queues?: number;
  /** Extra virtio-net-pci properties, e.g. "rss=on,hash=on". */
  nicProps?: string;
  /** Give the device iommu_platform=on (default true; the driver requires it). */
  iommuPlatform?: boolean;
  /** How long to wait for a server's socket (default 20 s). */
  startTimeoutMs?: number;
}

/** One running server. */
interface Server {
  child: Deno.ChildProcess;
  status: Promise<Deno.CommandStatus>;
  /** What it has printed so far (read as it comes, so a running server's errors show). */
  log: { text: string };
  /** Resolves with the whole of its stderr once it exited. */
  stderr: Promise<string>;
  exited: boolean;
}

/** Reads `stream` into `log.text` as it arrives; resolves with all of it at the end. */
async function collect(stream: ReadableStream<Uint8Array>, log: { text: string }): Promise<string> {
  const dec = new TextDecoder();
  for await (const chunk of stream) log.text += dec.decode(chunk, { stream: true });
  return log.text;
}

/**
 * A running bed: namespace, taps, one QEMU vfio-user server per port.
 *
 * @example
 * ```ts ignore
 * import { VfioUserBed } from "./vfio_user_bed.ts";
 * await using bed = await VfioUserBed.start({ ports: 1, queues: 2 });
 * console.log(bed.socketPath(0)); // /tmp/vfu-…/net0.sock
 * ```
 */
export class VfioUserBed implements TrafficBed {
  /** The namespace holding the taps (and the QEMU processes). */
  readonly netns: string;
  /** Temporary directory of the sockets. */
  readonly dir: string;
  /** The QEMU binary. */
  readonly qemu: string;
  readonly #ns: Netns;
  readonly #opts: Required<VfioUserBedOptions>;
  readonly #servers: (Server | null)[];
  #closed = false;

  private constructor(ns: Netns, dir: string, qemu: string, opts: Required<VfioUserBedOptions>) {
    this.#ns = ns;
    this.netns = ns.name;
    this.dir = dir;
    this.qemu = qemu;
    this.#opts = opts;
    this.#servers = new Array(opts.ports).fill(null);
  }

  /** Builds (if needed) QEMU, creates namespace and taps and starts one server per port. */
  static async start(options: VfioUserBedOptions = {}): Promise<VfioUserBed> {
    const opts: Required<VfioUserBedOptions> = {
      ports: options.ports ?? 1,
      queues: options.queues ?? 2,
      iommuPlatform: options.iommuPlatform ?? true,
      nicProps: options.nicProps ?? "",
      startTimeoutMs: options.startTimeoutMs ?? 20000,
    };
    const qemu = await bedQemu();
    const ns = await Netns.create({
      tapQueues: new Array(opts.ports).fill(opts.queues),
      prefix: "vdvfu",
    });
    let dir = "";
    try {
      dir = await Deno.makeTempDir({ prefix: "vfu-" });
      const bed = new VfioUserBed(ns, dir, qemu, opts);
      try {
        for (let i = 0; i < opts.ports; i++) await bed.restart(i);
      } catch (e) {
        await bed.close();
        throw e;
      }
      return bed;
    } catch (e) {
      ns.closeSync();
      if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw e;
    }
  }

  /** Number of ports. */
  get ports(): number {
    return this.#opts.ports;
  }

  /** Tap of port `nic` (for traffic.ts). */
  tapName(nic: number): string {
    return this.#ns.taps[nic];
  }

  /** A counter of port `nic`'s tap, e.g. "rx_dropped" (frames the host dropped on receive). */
  tapStat(nic: number, counter: string): Promise<number> {
    return this.#ns.stat(this.#ns.taps[nic], counter);
  }

  /** MAC address of port `nic`'s device. */
  nicMac(nic: number): string {
    return `52:54:00:12:34:${(0x56 + nic).toString(16).padStart(2, "0")}`;
  }

  /** Socket path of port `nic`'s server. */
  socketPath(nic: number): string {
    return `${this.dir}/net${nic}.sock`;
  }

  /** Port name for the driver: `vfio-user:` + socket path. */
  portName(nic: number): string {
    return `vfio-user:${this.socketPath(nic)}`;
  }

  /** PID of port `nic`'s QEMU (inside the namespace), or null when not running. */
  pid(nic: number): number | null {
    const s = this.#servers[nic];
    return s && !s.exited ? s.child.pid : null;
  }

  /**
   * What port `nic`'s QEMU has printed so far (its errors, e.g. "virtio: bogus
   * descriptor"); "" when it printed nothing or is not running.
   */
  serverLog(nic: number): string {
    return this.#servers[nic]?.log.text.trim() ?? "";
  }

  /** The QEMU command line of port `nic` (run inside the namespace). */
  qemuArgs(nic: number): string[] {
    const q = this.#opts.queues;
    const dev = [
      "virtio-net-pci",
      `netdev=n${nic}`,
      `id=net${nic}`,
      "romfile=",
      "disable-legacy=on",
      `mq=${q > 1 ? "on" : "off"}`,
      `vectors=${2 * q + 2}`,
      `iommu_platform=${this.#opts.iommuPlatform ? "on" : "off"}`,
      `mac=${this.nicMac(nic)}`,
      ...(this.#opts.nicProps ? [this.#opts.nicProps] : []),
    ];
    return [
      "-machine",
      "x-remote,vfio-user=on",
      "-accel",
      "tcg",
      "-nodefaults",
      "-display",
      "none",
      "-netdev",
      `tap,id=n${nic},ifname=${this.tapName(nic)},queues=${q},vhost=off,script=no,downscript=no`,
      "-device",
      dev.join(","),
      "-object",
      `x-vfio-user-server,id=vfu${nic},type=unix,path=${this.socketPath(nic)},device=net${nic}`,
    ];
  }

  /**
   * (Re)starts port `nic`'s server: kills a running one, removes its socket, starts QEMU in
   * the namespace and waits until the socket exists. QEMU's server takes one client and
   * exits when it leaves, so a test that opens a port twice restarts it in between.
   */
  async restart(nic: number): Promise<void> {
    await this.kill(nic);
    const sock = this.socketPath(nic);
    await Deno.remove(sock).catch(() => {});
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", this.netns, this.qemu, ...this.qemuArgs(nic)],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const log = { text: "" };
    const server: Server = {
      child,
      status: child.status,
      log,
      stderr: collect(child.stderr, log),
      exited: false,
    };
    server.status.then(() => server.exited = true);
    this.#servers[nic] = server;
    const deadline = performance.now() + this.#opts.startTimeoutMs;
    for (;;) {
      try {
        if ((await Deno.stat(sock)).isSocket) return;
      } catch { /* not yet */ }
      if (server.exited || performance.now() > deadline) {
        const why = server.exited
          ? `exited with ${(await server.status).code}`
          : `made no socket within ${this.#opts.startTimeoutMs} ms`;
        await this.kill(nic);
        throw new Error(`QEMU vfio-user server ${nic} ${why}: ${(await server.stderr).trim()}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Kills port `nic`'s QEMU (SIGKILL) and waits until it is gone; its stderr is returned. */
  async kill(nic: number): Promise<string> {
    const s = this.#servers[nic];
    if (!s) return "";
    this.#servers[nic] = null;
    if (!s.exited) {
      try {
        s.child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
    }
    await s.status;
    return await s.stderr;
  }

  /** Waits until port `nic`'s QEMU exited on its own (e.g. after its client left). */
  async waitExit(nic: number, timeoutMs = 5000): Promise<boolean> {
    const s = this.#servers[nic];
    if (!s) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const t = new Promise<false>((r) => timer = setTimeout(() => r(false), timeoutMs));
    const done = await Promise.race([s.status.then(() => true), t]);
    clearTimeout(timer);
    return done;
  }

  /** Kills every QEMU, removes namespace, taps and the socket directory. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (let i = 0; i < this.#servers.length; i++) await this.kill(i);
    this.#ns.closeSync();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /** Same as {@linkcode VfioUserBed.close} (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
