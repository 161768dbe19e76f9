/**
 * Capturing what the guest sends out of a bed's tap, from inside its namespace (the
 * `capture` of traffic.ts), with the count of frames the capture socket itself dropped.
 *
 * @module
 */

import { readText } from "../../ffi/fs.ts";
import { libc } from "../../ffi/libc.ts";
import { PACKET_OUTGOING, POLLIN, sock } from "../../ffi/socket.ts";
import { openPacketSocket, PacketRxRing, readPacketStats } from "./packet_socket.ts";

/** Options of {@linkcode captureOnInterface}. */
export interface CaptureOptions {
  /** Stop after this many frames. */
  count: number;
  /** Give up after this long. */
  timeoutMs: number;
  /** Keep only frames of this EtherType (outer, at offset 12: 0x8100 for tagged frames). */
  ethertype?: number;
  /** Size of the receive ring in bytes (default 64 MiB; at least one 64 KiB block). */
  ringBytes?: number;
  /** Start reading only this long after the socket is bound (shows what a slow reader costs). */
  holdMs?: number;
  /** Called once the socket is bound (frames arriving from then on are seen). */
  onReady?: () => void;
  /** If given, receives each frame's arrival time (µs since the epoch). */
  timestamps?: number[];
}

/** What a capture saw, for accounting: every frame the guest sent is in one of these. */
export interface CaptureStats {
  /** Frames kept (written to the pcap). */
  captured: number;
  /** Frames read but not kept: another EtherType than `ethertype`. */
  ignored: number;
  /** Frames the kernel dropped because the capture's ring was full (tp_drops). */
  socketDrops: number;
  /** Frames still in the ring when the capture ended (after the count was reached). */
  unread: number;
  /** Frames longer than a ring slot (kept truncated). */
  truncated: number;
}

function mtuOf(ifname: string): number {
  try {
    return Number(readText(`/sys/class/net/${ifname}/mtu`).trim()) || 1500;
  } catch {
    return 1500;
  }
}

/**
 * Captures frames arriving on an interface (not those the host sends) until `count` frames
 * were seen or the timeout passed, through a receive ring sized for the interface's MTU,
 * and counts what the ring had no room for. 802.1Q tags come back as they were on the
 * wire. Blocks the calling thread (it is meant for the CLI).
 */
export function captureOnInterface(
  ifname: string,
  opts: CaptureOptions,
): { frames: Uint8Array[]; stats: CaptureStats } {
  const fd = openPacketSocket(ifname, { bufBytes: 1 << 20, ignoreOutgoing: true });
  const frames: Uint8Array[] = [];
  const times: number[] = [];
  let ignored = 0, truncated = 0;
  let stats: CaptureStats;
  try {
    const ring = new PacketRxRing(fd, mtuOf(ifname), opts.ringBytes ?? 64 << 20);
    try {
      opts.onReady?.();
      const pfd = new Uint8Array(8);
      const pv = new DataView(pfd.buffer);
      if (opts.holdMs) sock.poll(pfd, 0n, opts.holdMs);
      const deadline = performance.now() + opts.timeoutMs;
      while (frames.length < opts.count) {
        const f = ring.next();
        if (f === null) {
          const left = Math.ceil(deadline - performance.now());
          if (left <= 0) break;
          pv.setInt32(0, fd, true);
          pv.setInt16(4, POLLIN, true);
          pv.setInt16(6, 0, true);
          sock.poll(pfd, 1n, Math.min(left, 100));
          continue;
        }
        // PACKET_IGNORE_OUTGOING already keeps the host's own frames away.
        if (f.pkttype === PACKET_OUTGOING) continue;
        const d = f.data;
        if (
          opts.ethertype !== undefined &&
          (d.length < 14 || ((d[12] << 8) | d[13]) !== opts.ethertype)
        ) {
          ignored++;
          continue;
        }
        if (f.wireLength > d.length) truncated++;
        frames.push(d);
        times.push(f.timeUs);
      }
      // tp_packets counts every frame put in the ring or dropped, read or not.
      const ps = readPacketStats(fd);
      stats = {
        captured: frames.length,
        ignored,
        socketDrops: ps.drops,
        unread: ps.packets - ps.drops - frames.length - ignored,
        truncated,
      };
    } finally {
      ring.close();
    }
  } finally {
    libc.close(fd);
  }
  if (opts.timestamps) { for (const t of times) opts.timestamps.push(t); }
  return { frames, stats };
}
