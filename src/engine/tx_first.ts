/**
 * testpmd's `start tx_first` and `--tx-first`: before it forwards, a worker sends bursts
 * of frames out of each of its ports, so that traffic starts between forwarders that only
 * forward (two io forwarders back to back, a back-end that loops every frame back). Each
 * frame is what testpmd's txonly mode sends by default: 64 bytes of UDP/IPv4
 * (gen_frame.ts's template, flow 0, a zero payload).
 *
 * @module
 */

import { templateBytes } from "./gen_frame.ts";

/** Bytes of each frame `tx_first` sends (testpmd's default `--txpkts`). */
export const TX_FIRST_FRAME = 64;
/** The most bursts one `tx_first` sends out of each port (as testpmd's command takes). */
export const TX_FIRST_MOST_BURSTS = 1024;

/**
 * The frame `tx_first` sends out of port `port` (index 0 or 1) whose MAC is `mac`.
 *
 * @example
 * ```ts
 * import { txFirstFrame } from "./tx_first.ts";
 * const f = txFirstFrame(1, new Uint8Array([2, 0, 0, 0, 0, 9]));
 * f.length; // 64
 * f[23]; // 17: UDP
 * ```
 */
export function txFirstFrame(port: number, mac: Uint8Array): Uint8Array {
  const f = new Uint8Array(TX_FIRST_FRAME);
  f.set(templateBytes(port, mac, TX_FIRST_FRAME, 0), 0);
  return f;
}
