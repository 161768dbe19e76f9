/**
 * DPDK's own virtio-user front-end (a second testpmd) on the two sockets of a vhost-user
 * bed (tests/bed/vhost_user_bed.ts): the yardstick our driver is held against there. Main
 * lcore 1, forwarding on CPU 0 (the bed forwards on CPU 1), `--single-file-segments`
 * (without it SET_MEM_TABLE fails: vhost-user takes at most 8 memory regions).
 *
 * @module
 */

import { TestpmdSession, type VhostUserBed } from "./vhost_user_bed.ts";

let counter = 0;

/** Options of {@linkcode startDpdkFrontEnd}. */
export interface DpdkFrontEndOptions {
  /**
   * Forwarding: "io retry" (lossless, the bed's tests; with `--no-flush-rx`, so that what
   * already waits in the receive rings is forwarded) or "io" (as testpmd's default, the
   * benchmark). Default "io retry".
   */
  mode?: "io" | "io retry" | "txonly" | "rxonly";
  /** txonly: bytes per frame (`set txpkts`; default 64). */
  txpkts?: number;
  /** Packed virtqueues (virtio-user's `packed_vq=1`; default false: split). */
  packed?: boolean;
}

/**
 * Starts the front-end on vhost ports 0 and 1 of `bed` (with the bed's queue pairs) and
 * starts forwarding port 0 ⇄ port 1; throws (and kills it) when it does not start.
 *
 * @example
 * ```ts ignore
 * const fe = await startDpdkFrontEnd(bed, { mode: "io" });
 * // … measure …
 * await fe.close();
 * ```
 */
export async function startDpdkFrontEnd(
  bed: VhostUserBed,
  opts: DpdkFrontEndOptions = {},
): Promise<TestpmdSession> {
  const q = bed.queues, retry = (opts.mode ?? "io retry") === "io retry";
  const fe = await TestpmdSession.start({
    name: "testpmd virtio-user front-end",
    eal: [
      "-l",
      "0,1",
      "--main-lcore",
      "1",
      "-n",
      "1",
      `--file-prefix=bedfe${Deno.pid}x${counter++}`,
      "--in-memory",
      "--single-file-segments",
      "--no-pci",
      "-m",
      "256",
      ...[0, 1].flatMap((i) => [
        "--vdev",
        `net_virtio_user${i},mac=02:00:00:00:00:0${i + 1},path=${bed.socket(i)},queues=${q}` +
        (opts.packed ? ",packed_vq=1" : ""),
      ]),
    ],
    app: [
      "--nb-cores=1",
      `--rxq=${q}`,
      `--txq=${q}`,
      ...(retry ? ["--no-flush-rx"] : []),
      "--total-num-mbufs=16384",
    ],
  });
  try {
    if (retry) {
      await fe.command("set fwd io retry");
      await fe.command("set burst tx delay 10 retry 100000");
    } else {
      await fe.command(`set fwd ${opts.mode ?? "io"}`);
      if (opts.mode === "txonly") await fe.command(`set txpkts ${opts.txpkts ?? 64}`);
    }
    const a = await fe.command("start");
    if (!/packet forwarding/.test(a)) throw new Error(`DPDK front-end: "start" answered: ${a}`);
  } catch (e) {
    await fe.kill();
    throw e;
  }
  return fe;
}
