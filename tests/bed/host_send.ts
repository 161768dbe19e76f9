/**
 * Sending frames into a bed's tap from inside its namespace (the `send` of traffic.ts):
 * through the tap's injection veth and bridge when it has them (netns.ts), counting every
 * frame the host drops on the way.
 *
 * @module
 */

import { readText } from "../../ffi/fs.ts";
import { cstr, libc } from "../../ffi/libc.ts";
import { errno, sock, SysError } from "../../ffi/socket.ts";
import { bridgeRefuses, injectionNames } from "./netns.ts";
import { openPacketSocket } from "./packet_socket.ts";

const ENOBUFS = 105;
const EAGAIN = 11;
const EINTR = 4;

export function sleepMs(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * An interface counter. Read through libc: Deno's own file APIs refuse /sys/devices/… without
 * --allow-all, even with --allow-read.
 */
export function readCounter(ifname: string, name: string): number {
  try {
    return Number(readText(`/sys/class/net/${ifname}/statistics/${name}`).trim());
  } catch {
    return 0;
  }
}

/** Result of sending frames. */
export interface SendResult {
  /** Frames handed to the kernel. */
  sent: number;
  /** Frames the host dropped on their way into the tap: the sum of {@linkcode SendResult.drops}. */
  dropped: number;
  /** Where they were dropped (counter increases while sending). */
  drops: {
    /** The tap's tx_dropped: its tun ring (txqueuelen frames) was full. */
    tap: number;
  };
  /**
   * Frames the injection veth refused and that were sent again (0 when sent on the tap):
   * veth_xmit returns NET_XMIT_DROP for every frame it drops (its peer's backlog was full),
   * sendto reports ENOBUFS, and the frame goes again. So the veth loses none of them; its
   * counters (tx_dropped, the peer's rx_dropped) rise by `refusals` meanwhile.
   */
  resent: number;
  /** The injection veth's tx_dropped plus its peer's rx_dropped while sending. */
  refusals: number;
  /** The interface the frames were sent on (the injection veth or the tap). */
  via: string;
  /** Time spent sending. */
  elapsedMs: number;
}

function ifExists(ifname: string): boolean {
  return sock.if_nametoindex(cstr(ifname)) !== 0;
}

/**
 * Where frames for `tap` are sent: `via` if given, else the tap's injection veth when it
 * exists in the current namespace, else the tap itself.
 */
export function resolveVia(tap: string, via?: string): string {
  if (via) return via;
  try {
    const { inject } = injectionNames(tap);
    if (ifExists(inject)) return inject;
  } catch { /* not a bed tap name: no injection veth */ }
  return tap;
}

/**
 * Sends frames into `tap` (inside the current namespace) on `opts.via` (see
 * {@linkcode resolveVia}), optionally paced at `opts.rate` frames per second. Retries a
 * frame the queue had no room for (ENOBUFS/EAGAIN). Refuses, before sending anything,
 * frames the bed's bridge would drop uncounted and a tap without carrier (no queue
 * attached: the bridge would drop every frame).
 */
export async function sendOnInterface(
  tap: string,
  frames: Uint8Array[],
  opts: { rate?: number; via?: string } = {},
): Promise<SendResult> {
  const via = resolveVia(tap, opts.via);
  const { rate } = opts;
  const counters = (): [number, number] => [
    readCounter(tap, "tx_dropped"),
    via === tap
      ? 0
      : readCounter(via, "tx_dropped") + readCounter(injectionNames(tap).peer, "rx_dropped"),
  ];
  if (via !== tap) {
    for (const [i, f] of frames.entries()) {
      const why = bridgeRefuses(f);
      if (why) {
        throw new Error(
          `frame ${i} cannot go through the bed's bridge to ${tap} because ${why}: send it with via "${tap}" (the tap itself).`,
        );
      }
    }
    if (readText(`/sys/class/net/${tap}/carrier`).trim() !== "1") {
      throw new Error(
        `${tap} has no carrier (no queue of it is attached: QEMU is not running or the guest has not set it up), so its bridge would drop every frame: start the bed before sending.`,
      );
    }
  }
  const fd = openPacketSocket(via, { receive: false });
  const before = counters();
  const t0 = performance.now();
  let sent = 0, resent = 0;
  try {
    for (const [i, f] of frames.entries()) {
      if (rate) {
        const due = t0 + (i * 1000) / rate;
        let now = performance.now();
        if (due - now > 2) await sleepMs(due - now - 1);
        while ((now = performance.now()) < due) { /* spin to the exact time */ }
      }
      for (;;) {
        const n = Number(
          sock.sendto(fd, f as Uint8Array<ArrayBuffer>, BigInt(f.length), 0, null, 0),
        );
        if (n === f.length) break;
        const e = errno();
        if (n < 0 && (e === ENOBUFS || e === EAGAIN || e === EINTR)) {
          if (e === ENOBUFS && via !== tap) resent++;
          await sleepMs(1);
          continue;
        }
        throw n < 0 ? new SysError("sendto", via, e) : new Error(`sendto: short write ${n}`);
      }
      sent++;
    }
  } finally {
    libc.close(fd);
  }
  const elapsedMs = performance.now() - t0;
  // The qdisc hands frames to the tun ring (which drops when full) after sendto returned:
  // wait until the drop counters have been stable for 100 ms (at most 2 s).
  let now = counters();
  for (let stable = 0, waited = 0; stable < 100 && waited < 2000; waited += 20) {
    await sleepMs(20);
    const c = counters();
    stable = c[0] === now[0] && c[1] === now[1] ? stable + 20 : 0;
    now = c;
  }
  const drops = { tap: now[0] - before[0] };
  const refusals = now[1] - before[1];
  return { sent, dropped: drops.tap, drops, resent, refusals, via, elapsedMs };
}
