/**
 * Frames the host kernel frees without delivering them, counted from its own tracepoint
 * (skb:kfree_skb, which carries the drop location and reason), for the test beds.
 *
 * Why: when VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET lowers the pair count, QEMU detaches the tap
 * queues of the pairs taken out of use (TUNSETQUEUE IFF_DETACH_QUEUE) and the kernel frees
 * whatever those queues still hold (tun_queue_purge) without bumping any interface counter.
 * Those frames never reach the device, so no driver can count them; this trace lets a test
 * account for every frame it sent: received by the driver, dropped by the tap for want of
 * room (tx_dropped), or purged on queue detach (counted here).
 *
 * Records into a tracefs instance of its own (so other tracing is not disturbed), with the
 * thread-group id of each event so a test counts only the drops made by its own QEMU.
 *
 * @example
 * ```ts ignore
 * const trace = KernelDropTrace.start();
 * // … switch queue pairs under traffic …
 * const purged = trace.stop().tunPurged(bed.qemuPid);
 * ```
 *
 * @module
 */

const TRACEFS = "/sys/kernel/tracing";

/** One kind of drop seen: where the kernel freed the frame and the reason it gave. */
export interface KernelDrop {
  /** Thread-group id (process) that freed it. */
  tgid: number;
  /** Function that called kfree_skb, without offset (e.g. "tun_queue_purge"). */
  location: string;
  /** enum skb_drop_reason name (e.g. "NOT_SPECIFIED"). */
  reason: string;
  /** Number of frames. */
  count: number;
}

let instances = 0;

/** A running skb:kfree_skb recording (see the module comment). */
export class KernelDropTrace {
  readonly #dir: string;
  #drops: KernelDrop[] | null = null;

  private constructor(dir: string) {
    this.#dir = dir;
  }

  /**
   * Starts recording the drops of the given reasons (enum skb_drop_reason names, default
   * NOT_SPECIFIED, which a tun purge gives); throws one sentence when kernel tracing is not
   * available. E.g. `["CPU_BACKLOG", "SOCKET_RCVBUFF", "FULL_RING"]` for where the host lost
   * frames a guest sent (the numbers differ between kernels: they are read from the
   * tracepoint's format), or `{ except: ["TC_INGRESS"] }` for every reason but those.
   */
  static start(reasons: string[] | { except: string[] } = ["NOT_SPECIFIED"]): KernelDropTrace {
    try {
      Deno.statSync(`${TRACEFS}/instances`);
    } catch {
      const r = new Deno.Command("mount", { args: ["-t", "tracefs", "nodev", TRACEFS] })
        .outputSync();
      if (!r.success) {
        throw new Error(
          `Kernel tracing is not available (mount -t tracefs failed: ${
            new TextDecoder().decode(r.stderr).trim()
          }): run the tests as root on a kernel with tracefs.`,
        );
      }
    }
    const dir = `${TRACEFS}/instances/vdbed-${Deno.pid}-${instances++}`;
    Deno.mkdirSync(dir);
    const trace = new KernelDropTrace(dir);
    try {
      Deno.writeTextFileSync(`${dir}/buffer_size_kb`, "4096");
      Deno.writeTextFileSync(`${dir}/options/record-tgid`, "1");
      // A purge gives no reason (NOT_SPECIFIED); FULL_RING and the like are counted by the
      // interface already. Filtering in the kernel keeps the buffer for what matters.
      const format = Deno.readTextFileSync(`${TRACEFS}/events/skb/kfree_skb/format`);
      const codes = Array.isArray(reasons)
        ? dropReasonCodes(format, reasons)
        : dropReasonCodesExcept(format, reasons.except);
      Deno.writeTextFileSync(
        `${dir}/events/skb/kfree_skb/filter`,
        codes.map((c) => `reason == ${c}`).join(" || "),
      );
      Deno.writeTextFileSync(`${dir}/events/skb/kfree_skb/enable`, "1");
    } catch (e) {
      trace.#remove();
      throw new Error(`Could not enable the skb:kfree_skb tracepoint in ${dir}: ${e}`);
    }
    return trace;
  }

  /** Stops recording (idempotent) and keeps what was recorded. */
  stop(): this {
    if (this.#drops) return this;
    Deno.writeTextFileSync(`${this.#dir}/events/skb/kfree_skb/enable`, "0");
    this.#drops = parseKfreeSkbTrace(Deno.readTextFileSync(`${this.#dir}/trace`));
    this.#remove();
    return this;
  }

  /** Every drop recorded, grouped by process, location and reason. */
  get drops(): KernelDrop[] {
    if (!this.#drops) throw new Error("KernelDropTrace: call stop() first");
    return this.#drops;
  }

  /** Frames dropped in process `tgid`'s context for `reason` (any location). */
  count(tgid: number, reason: string): number {
    return this.drops.filter((d) => d.tgid === tgid && d.reason === reason)
      .reduce((n, d) => n + d.count, 0);
  }

  /** Frames process `tgid` had the kernel purge from tun queues (queue detach, close). */
  tunPurged(tgid: number): number {
    return this.drops.filter((d) => d.tgid === tgid && isTunPurge(d.location))
      .reduce((n, d) => n + d.count, 0);
  }

  #remove(): void {
    try {
      Deno.removeSync(this.#dir);
    } catch { /* already gone */ }
  }
}

/**
 * The numbers of drop reasons by name, from the kfree_skb tracepoint's format file
 * (`__print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, …)`); throws for an unknown name.
 *
 * @example
 * ```ts
 * import { dropReasonCodes } from "./kernel_drops.ts";
 * dropReasonCodes('{ 2, "NOT_SPECIFIED" }, { 71, "CPU_BACKLOG" }', ["CPU_BACKLOG"]); // [71]
 * ```
 */
export function dropReasonCodes(format: string, names: string[]): number[] {
  const known = dropReasons(format);
  return names.map((n) => {
    const c = known.get(n);
    if (c === undefined) throw new Error(`this kernel has no skb drop reason ${n}`);
    return c;
  });
}

/** Every drop reason of the tracepoint's format file: name → number, in the file's order. */
function dropReasons(format: string): Map<string, number> {
  const known = new Map<string, number>();
  for (const m of format.matchAll(/\{\s*(\d+),\s*"([A-Z0-9_]+)"\s*\}/g)) {
    known.set(m[2], Number(m[1]));
  }
  return known;
}

/**
 * The numbers of every drop reason but the given ones (and the markers NOT_DROPPED_YET,
 * CONSUMED and MAX), from the kfree_skb tracepoint's format file: for a trace that looks
 * for drops nobody expected, leaving out those a bed makes on purpose.
 *
 * @example
 * ```ts
 * import { dropReasonCodesExcept } from "./kernel_drops.ts";
 * dropReasonCodesExcept('{ 2, "NOT_SPECIFIED" }, { 71, "TC_INGRESS" }', ["TC_INGRESS"]); // [2]
 * ```
 */
export function dropReasonCodesExcept(format: string, names: string[]): number[] {
  dropReasonCodes(format, names); // each name must exist
  const skip = new Set([...names, "NOT_DROPPED_YET", "CONSUMED", "MAX"]);
  return [...dropReasons(format)].filter(([n]) => !skip.has(n)).map(([, c]) => c);
}

/** Where a tun queue's frames are freed on detach (the name differs with inlining). */
function isTunPurge(location: string): boolean {
  return location.startsWith("tun_") || location === "__skb_array_destroy_skb";
}

/**
 * Groups the lines of a tracefs `trace` file with record-tgid on, e.g.
 * `qemu-system-x86-5446 (   5440) [001] ..... 12.3: kfree_skb: skbaddr=… rx_sk=… protocol=2048 location=tun_queue_purge+0x6d/0xc0 reason: NOT_SPECIFIED`.
 *
 * @example
 * ```ts ignore
 * parseKfreeSkbTrace(text); // [{ tgid: 5440, location: "tun_queue_purge", reason: "NOT_SPECIFIED", count: 10 }]
 * ```
 */
export function parseKfreeSkbTrace(text: string): KernelDrop[] {
  const out = new Map<string, KernelDrop>();
  const re = /\(\s*(\d+)\)\s.*kfree_skb:.*location=([^+\s]+)\S*\s+reason:\s+(\S+)/;
  for (const line of text.split("\n")) {
    const m = re.exec(line);
    if (!m) continue;
    const key = `${m[1]} ${m[2]} ${m[3]}`;
    const d = out.get(key);
    if (d) d.count++;
    else out.set(key, { tgid: Number(m[1]), location: m[2], reason: m[3], count: 1 });
  }
  return [...out.values()];
}

/**
 * Checks that every frame a test sent is accounted for: received by the driver, dropped by
 * the tap for want of room (its tx_dropped), or purged from a detached tap queue (from a
 * {@linkcode KernelDropTrace}); prints the breakdown either way.
 *
 * @example
 * ```ts ignore
 * assertFramesAccounted("switching", sent, done.received, trace.tunPurged(bed.qemuPid));
 * ```
 */
export function assertFramesAccounted(
  what: string,
  sent: { sent: number; dropped: number },
  received: number,
  purged: number,
): void {
  const lost = sent.sent - received - sent.dropped - purged;
  console.log(
    `${what}: ${sent.sent} sent = ${received} received + ${sent.dropped} dropped by the tap ` +
      `(ring full, tx_dropped) + ${purged} purged from detached tap queues (tun_queue_purge)` +
      (lost ? `, ${lost} NOT ACCOUNTED FOR` : ""),
  );
  if (lost !== 0) {
    throw new Error(
      `${what}: ${lost} of ${sent.sent} frames neither received nor counted as dropped`,
    );
  }
}
