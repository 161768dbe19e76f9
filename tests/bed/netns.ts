/**
 * A private network namespace holding the taps of one test bed.
 *
 * - The namespace is named `PREFIX-PID-SEQ`, so beds of one process and of concurrent
 *   processes do not collide, and leftovers of a crashed run (its PID is gone) can be found
 *   and removed ({@linkcode cleanupStaleNetns}, run by {@linkcode Netns.create}).
 * - IPv6 is disabled in the namespace before the taps exist and the taps get no IPv4
 *   address, so the host kernel sends nothing on them on its own (no router/neighbour
 *   solicitations, no MLD): every frame on a tap comes from the test or from the guest.
 * - Receive processing of the taps (frames from the guest) is steered to CPU 0 by default, so
 *   that the host sees each NIC's frames in order (QEMU writes them from several threads).
 * - Taps are named `vb-PID36-SEQ36-I` (base 36, at most 15 characters), have txqueuelen
 *   20000 (the tun ring size: a burst of 10,000 frames to a slow TCG guest is queued, not
 *   dropped) and are up. A tap is created `multi_queue` only when it gets more than one queue:
 *   the kernel refuses a single-queue open of a multi-queue tap (TUNSETIFF: EINVAL).
 * - Frames are injected through a veth bridged with the tap, not written to the tap itself
 *   (see {@linkcode injectionNames}): an 802.1Q frame sent on the tap with AF_PACKET keeps
 *   protocol 0x8100 while its network header points past the tag, so the flow hash of a
 *   multi-queue tap takes the IPv4 total length and spreads one tagged flow over the queues
 *   by frame size. Through veth and bridge the frame is parsed on receive like any other.
 *
 * @module
 */

/** Default name prefix of bed namespaces. */
export const NETNS_PREFIX = "vdbed";

/** Result of a command run to completion. */
export interface CmdResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

const dec = new TextDecoder();

/** Runs a command to completion (no shell), collecting its output. */
export async function runCmd(cmd: string, args: string[]): Promise<CmdResult> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Like {@linkcode runCmd}, but throws when the exit code is not 0. */
export async function mustRun(cmd: string, args: string[]): Promise<string> {
  const r = await runCmd(cmd, args);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}`);
  }
  return r.stdout;
}

function runSync(cmd: string, args: string[]): CmdResult {
  try {
    const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } catch (e) {
    return { code: -1, stdout: "", stderr: String(e) };
  }
}

function pidAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Lists the network namespaces known to `ip netns`. */
export function listNetns(): string[] {
  const r = runSync("ip", ["netns", "list"]);
  return r.stdout.split("\n").map((l) => l.split(" ")[0]).filter((n) => n.length > 0);
}

/**
 * Deletes a namespace for good: kills the processes inside it (e.g. a leftover QEMU holding
 * the taps), then `ip netns del`. Idempotent and synchronous, so it also works from unload
 * and signal handlers.
 */
export function destroyNetnsSync(name: string): void {
  if (!listNetns().includes(name)) return;
  const pids = runSync("ip", ["netns", "pids", name]).stdout.split(/\s+/).filter(Boolean);
  for (const p of pids) {
    try {
      Deno.kill(Number(p), "SIGKILL");
    } catch { /* already gone */ }
  }
  runSync("ip", ["netns", "del", name]);
}

/**
 * Removes namespaces named `PREFIX-PID-…` whose PID is no longer running (leftovers of a
 * crashed run). Returns their names.
 */
export function cleanupStaleNetns(prefix = NETNS_PREFIX): string[] {
  const removed: string[] = [];
  for (const name of listNetns()) {
    const m = new RegExp(`^${prefix}-(\\d+)-\\d+$`).exec(name);
    if (!m || Number(m[1]) === Deno.pid || pidAlive(Number(m[1]))) continue;
    destroyNetnsSync(name);
    removed.push(name);
  }
  return removed;
}

let seq = 0;

/** Names of the injection path of one tap (see {@linkcode injectionNames}). */
export interface InjectionNames {
  /** The veth end the host sends on (`vi-…`). */
  inject: string;
  /** Its peer, a port of the bridge (`vp-…`). */
  peer: string;
  /** The bridge holding the peer and the tap (`vr-…`). */
  bridge: string;
}

/**
 * The injection veth pair and bridge of a bed tap `vb-…`: the same name with `vi`, `vp`,
 * `vr` for `vb`, so a sender knowing only the tap finds them (and they fit in 15 bytes).
 *
 * @example
 * ```ts
 * import { injectionNames } from "./netns.ts";
 * injectionNames("vb-2s-0-1"); // { inject: "vi-2s-0-1", peer: "vp-2s-0-1", bridge: "vr-2s-0-1" }
 * ```
 */
export function injectionNames(tap: string): InjectionNames {
  if (!/^vb-[0-9a-z-]{1,12}$/.test(tap)) throw new Error(`"${tap}" is not a bed tap name (vb-…)`);
  const rest = tap.slice(2);
  return { inject: `vi${rest}`, peer: `vp${rest}`, bridge: `vr${rest}` };
}

/**
 * The shell commands (run inside the namespace) that put tap `tap` behind its injection
 * path: veth `inject` ↔ `peer`, bridge `bridge` = { peer, tap }.
 *
 * - STP off (ports forward at once, no BPDUs), no multicast snooping, learning off on both
 *   ports: every frame from the veth is flooded to the tap, whatever MACs were seen before.
 * - The peer gets no flooded unicast, multicast or broadcast, and a classic-BPF
 *   direct-action filter on the tap's ingress drops what the guest sends before the
 *   bridge (after captures on the tap saw it; reason TC_INGRESS), so guest frames never
 *   come back into the tap or out of the veth.
 * - No IPv6 on the new links and no br_netfilter in the namespace (it would drop, e.g.,
 *   IPv4 frames with a bad header checksum; it leaves tagged frames alone).
 *
 * @example
 * ```ts
 * import { bridgeSetupScript } from "./netns.ts";
 * bridgeSetupScript("vb-2s-0-0").includes("ip link set vb-2s-0-0 master vr-2s-0-0"); // true
 * ```
 */
export function bridgeSetupScript(tap: string): string {
  const { inject, peer, bridge } = injectionNames(tap);
  return [
    "set -e",
    "for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -w $f ] && echo 0 > $f || true; done",
    `ip link add ${inject} mtu 65535 type veth peer name ${peer} mtu 65535`,
    `ip link add ${bridge} type bridge stp_state 0 mcast_snooping 0`,
    ...[inject, peer, bridge].map((d) =>
      `f=/proc/sys/net/ipv6/conf/${d}/disable_ipv6; if [ -e $f ]; then echo 1 > $f; fi`
    ),
    `ip link set ${tap} master ${bridge}`,
    `ip link set ${peer} master ${bridge}`,
    `ip link set dev ${peer} type bridge_slave learning off flood off mcast_flood off bcast_flood off`,
    `ip link set dev ${tap} type bridge_slave learning off`,
    `tc qdisc add dev ${tap} clsact`,
    // One classic BPF instruction, "ret #2": TC_ACT_SHOT for every frame.
    `tc filter add dev ${tap} ingress bpf da bytecode "1,6 0 0 2,"`,
    ...[peer, inject, bridge].map((d) => `ip link set ${d} up`),
  ].join("\n");
}

/**
 * Why the bed's bridge would not pass `frame` from the veth to the tap, or null when it
 * does: a bridge forwards no frame from a multicast or all-zero source MAC, and keeps
 * IEEE link-local destinations 01:80:c2:00:00:0X (STP, pause, LACP, LLDP…) to itself.
 *
 * @example
 * ```ts
 * import { bridgeRefuses } from "./netns.ts";
 * bridgeRefuses(new Uint8Array(60)); // "its source MAC is all zeros"
 * ```
 */
export function bridgeRefuses(frame: Uint8Array): string | null {
  if (frame.length < 14) return `it is ${frame.length} bytes, shorter than an Ethernet header`;
  if (frame[6] & 1) return "its source MAC is multicast";
  if (frame.subarray(6, 12).every((b) => b === 0)) return "its source MAC is all zeros";
  const ll = [0x01, 0x80, 0xc2, 0x00, 0x00];
  if (ll.every((b, i) => frame[i] === b) && (frame[5] & 0xf0) === 0) {
    return "its destination is an IEEE link-local address (01:80:c2:00:00:0X)";
  }
  return null;
}

/** The CPU backlog the beds want (frames; Linux's default is 1,000). */
export const BED_BACKLOG = 100_000;

/**
 * Raises the host's `net.core.netdev_max_backlog` (global, not per namespace) to
 * {@linkcode BED_BACKLOG}, never lowers it. Every frame QEMU writes into a tap waits in
 * CPU 0's backlog (the namespace steers them there); a device that sends 10,000 frames at
 * once overflows the default 1,000 when CPU 0 is busy, and the host drops them (reason
 * CPU_BACKLOG) before a capture sees them (the likely loss in a fresh-clone CI run).
 */
async function raiseBacklog(): Promise<void> {
  const f = "/proc/sys/net/core/netdev_max_backlog";
  try {
    if (Number((await Deno.readTextFile(f)).trim()) < BED_BACKLOG) {
      await Deno.writeTextFile(f, `${BED_BACKLOG}\n`);
    }
  } catch { /* not root: the bed fails later, saying so */ }
}

/** Options of {@linkcode Netns.create}. */
export interface NetnsOptions {
  /** Queues per tap (one entry per tap). */
  tapQueues: number[];
  /** Name prefix (default {@linkcode NETNS_PREFIX}). */
  prefix?: string;
  /** txqueuelen of each tap (default 20000). */
  txqueuelen?: number;
  /**
   * Steer receive processing of every tap queue to CPU 0 from the start, through the
   * namespace's `net.core.rps_default_mask` (Linux 6.2+; silently skipped before). Unlike
   * {@linkcode Netns.steerRxToOneCpu}, this also covers queues QEMU attaches later (when
   * the guest driver enables more queue pairs). Default true.
   */
  steerRxToCpu0?: boolean;
  /**
   * How frames are sent into each tap: "bridge" (default) through a veth bridged with the
   * tap ({@linkcode bridgeSetupScript}), "tap" straight into the tap (tagged frames then get
   * spread over a multi-queue tap's queues by size; kept to show that).
   */
  inject?: "bridge" | "tap";
}

/**
 * A network namespace with taps.
 *
 * @example
 * ```ts
 * import { Netns } from "./netns.ts";
 * await using ns = await Netns.create({ tapQueues: [2] });
 * ns.exec(["ip", "link", "show", ns.taps[0]]);
 * ```
 */
export class Netns {
  /** Namespace name. */
  readonly name: string;
  /** Tap names, in the order of {@linkcode NetnsOptions.tapQueues}. */
  readonly taps: readonly string[];
  /** How frames are sent into the taps (see {@linkcode NetnsOptions.inject}). */
  readonly inject: "bridge" | "tap";
  #closed = false;

  private constructor(name: string, taps: string[], inject: "bridge" | "tap") {
    this.name = name;
    this.taps = taps;
    this.inject = inject;
  }

  /** Creates the namespace and its taps (and first removes stale ones of dead runs). */
  static async create(opts: NetnsOptions): Promise<Netns> {
    const prefix = opts.prefix ?? NETNS_PREFIX;
    cleanupStaleNetns(prefix);
    const n = seq++;
    const name = `${prefix}-${Deno.pid}-${n}`;
    const tag = `vb-${Deno.pid.toString(36)}-${n.toString(36)}`;
    const taps = opts.tapQueues.map((_, i) => `${tag}-${i}`);
    if (taps.some((t) => t.length > 15)) throw new Error(`tap name too long: ${taps.at(-1)}`);
    const ns = new Netns(name, taps, opts.inject ?? "bridge");
    try {
      await raiseBacklog();
      destroyNetnsSync(name);
      await mustRun("ip", ["netns", "add", name]);
      await ns.exec([
        "sh",
        "-c",
        "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; " +
        "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6" +
        (opts.steerRxToCpu0 === false ? "" : `; f=/proc/sys/net/core/rps_default_mask; ` +
          `if [ -w $f ]; then echo 1 > $f; fi`),
      ]);
      await mustRun("ip", ["-n", name, "link", "set", "lo", "up"]);
      for (const [i, tap] of taps.entries()) {
        const mq = opts.tapQueues[i] > 1 ? ["multi_queue"] : [];
        await mustRun("ip", ["-n", name, "tuntap", "add", "dev", tap, "mode", "tap", ...mq]);
        await mustRun("ip", [
          "-n",
          name,
          "link",
          "set",
          tap,
          "txqueuelen",
          String(opts.txqueuelen ?? 20000),
          "up",
        ]);
        if (ns.inject === "bridge") await ns.exec(["sh", "-c", bridgeSetupScript(tap)]);
      }
    } catch (e) {
      ns.closeSync();
      throw e;
    }
    return ns;
  }

  /** Runs a command inside the namespace (`ip netns exec`), throwing on failure. */
  exec(args: string[]): Promise<string> {
    return mustRun("ip", ["netns", "exec", this.name, ...args]);
  }

  /** The interface frames for `tap` are sent on: its injection veth, or the tap itself. */
  injectInterface(tap: string): string {
    if (!this.taps.includes(tap)) throw new Error(`${tap} is not a tap of ${this.name}`);
    return this.inject === "bridge" ? injectionNames(tap).inject : tap;
  }

  /** The argument vector that runs `args` inside the namespace. */
  wrap(args: string[]): string[] {
    return ["ip", "netns", "exec", this.name, ...args];
  }

  /**
   * Steers the tap's receive processing (frames coming from the guest) to CPU 0 by writing 1
   * to every `queues/rx-N/rps_cpus`, so the host sees one NIC's frames in order. Only the
   * queues attached right now exist: QEMU attaches a multi-queue tap's queue N only while
   * the guest driver has queue pair N enabled (just the first one until the driver sets the
   * number of queue pairs), and a re-attached queue starts with the default mask. Call it
   * after the guest driver set up its queues; on Linux 6.2+ the namespace's default mask
   * (see {@linkcode NetnsOptions.steerRxToCpu0}) already covers every queue.
   */
  async steerRxToOneCpu(tap: string): Promise<void> {
    if (!this.taps.includes(tap)) throw new Error(`${tap} is not a tap of ${this.name}`);
    await this.exec([
      "sh",
      "-c",
      `for f in /sys/class/net/${tap}/queues/rx-*/rps_cpus; do echo 1 > "$f" || exit 1; done`,
    ]);
  }

  /** A tap's statistics counter, e.g. "tx_dropped" or "rx_packets". */
  async stat(tap: string, counter: string): Promise<number> {
    const out = await this.exec(["cat", `/sys/class/net/${tap}/statistics/${counter}`]);
    return Number(out.trim());
  }

  /** Deletes the namespace, its taps and any process left inside it. Idempotent. */
  closeSync(): void {
    if (this.#closed) return;
    destroyNetnsSync(this.name);
    this.#closed = true;
  }

  /** Same as {@linkcode Netns.closeSync}. */
  close(): Promise<void> {
    this.closeSync();
    return Promise.resolve();
  }

  /** Deletes the namespace (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
