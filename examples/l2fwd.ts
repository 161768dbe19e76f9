/**
 * Two-port layer-2 forwarding, as DPDK's l2fwd: every frame received on PORT0 is sent out
 * of PORT1 and the other way round, through one buffer pool shared by both ports (no
 * copy). Run-to-completion polling on one thread, one queue pair per port.
 *
 *     deno run --allow-ffi examples/l2fwd.ts [options] PORT0 PORT1
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  createSharedPool,
  DriverError,
  formatMac,
  openPort,
  type RxQueue,
  type TxQueue,
  type VirtioNetPort,
} from "../mod.ts";

const USAGE = `usage: deno run --allow-ffi examples/l2fwd.ts [options] PORT0 PORT1

Forwards PORT0 -> PORT1 and PORT1 -> PORT0. A PORT is a PCI address (kernel VFIO,
e.g. 0000:00:04.0) or vfio-user:/path/to/socket.

  --burst N          frames per receive and transmit burst (default 32)
  --tx-drain-us US   send a partial transmit burst after US microseconds (default 100)
  --mac-rewrite      rewrite source MAC to the sending port's, destination to
                     02:00:00:00:00:<port> (as DPDK l2fwd does)
  --stats MODE       table | json | off (default: table on a terminal, json otherwise)
  --duration S       stop after S seconds (default: run until SIGINT/SIGTERM)
  --bind             take the functions from their kernel driver (bind to vfio-pci)
  --restore-driver   give them back to their kernel driver at exit
  --help             this text`;

/** Counters of one forwarding direction's input port. */
interface PortStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  dropsTxRingFull: number;
  /** Notifications sent to the device (receive refills and transmits). */
  kicks: number;
}

async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      burst: { type: "string", default: "32" },
      "tx-drain-us": { type: "string", default: "100" },
      "mac-rewrite": { type: "boolean", default: false },
      stats: { type: "string" },
      duration: { type: "string" },
      bind: { type: "boolean", default: false },
      "restore-driver": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const burst = Number(values.burst);
  const statsMode = values.stats ?? (Deno.stdout.isTerminal() ? "table" : "json");
  if (positionals.length !== 2 || !(burst >= 1 && burst <= 256) || !Number.isInteger(burst)) {
    console.error(USAGE);
    return 2;
  }
  if (!["table", "json", "off"].includes(statsMode)) {
    console.error(`error: --stats must be table, json or off, not '${statsMode}'.`);
    return 2;
  }
  const drainMs = Number(values["tx-drain-us"]) / 1000;
  const durationMs = values.duration === undefined ? Infinity : Number(values.duration) * 1000;

  const pool = createSharedPool(8192);
  const ports: VirtioNetPort[] = [];
  try {
    for (const spec of positionals) {
      ports.push(openPort(spec, {
        bind: values.bind,
        restoreDriver: values["restore-driver"],
        pool,
      }));
    }
    for (const [i, p] of ports.entries()) {
      console.error(
        `port ${i}: ${p.name} mac ${formatMac(p.config.mac)} link ${
          p.config.linkUp ? "up" : "down"
        } features ${p.negotiatedFeatureNames().join(" ")}`,
      );
    }
    let stop = false;
    const onSignal = () => stop = true;
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);

    const stats: PortStats[] = ports.map(() => ({
      rxPackets: 0,
      rxBytes: 0,
      txPackets: 0,
      txBytes: 0,
      dropsTxRingFull: 0,
      kicks: 0,
    }));
    const bufs = new Uint32Array(burst), lens = new Uint32Array(burst);
    const data = pool.data;
    // Destination MACs for --mac-rewrite: 02:00:00:00:00:<output port>.
    const rewrite = values["mac-rewrite"];
    const srcMac = ports.map((p) => p.config.mac);

    // Transmit buffering, as DPDK's l2fwd (rte_eth_tx_buffer): frames for a port collect
    // until a burst is full or --tx-drain-us passed, so one notification covers many.
    const txBufs = ports.map(() => new Uint32Array(burst));
    const txLens = ports.map(() => new Uint32Array(burst));
    const txCount = new Uint32Array(ports.length);
    const txSince = new Float64Array(ports.length);
    const flush = (to: number, tx: TxQueue): void => {
      const n = txCount[to];
      if (n === 0) return;
      const b = txBufs[to];
      const sent = tx.txBurst(b, txLens[to], n);
      // Frames the ring could not take are dropped and counted (DPDK l2fwd does the same).
      for (let i = sent; i < n; i++) pool.free(b[i]);
      stats[1 - to].dropsTxRingFull += n - sent;
      txCount[to] = 0;
    };

    const forward = (rx: RxQueue, to: number, tx: TxQueue, now: number): void => {
      const n = rx.rxBurst(bufs, lens, burst);
      const out = txBufs[to], outLens = txLens[to];
      for (let i = 0; i < n; i++) {
        if (rewrite) {
          const off = ports[to].frameOffset(bufs[i]);
          data[off] = 0x02;
          data[off + 1] =
            data[off + 2] =
            data[off + 3] =
            data[off + 4] =
              0;
          data[off + 5] = to;
          data.set(srcMac[to], off + 6);
        }
        if (txCount[to] === 0) txSince[to] = now;
        out[txCount[to]] = bufs[i];
        outLens[txCount[to]] = lens[i];
        if (++txCount[to] === burst) flush(to, tx);
      }
      if (txCount[to] > 0 && now - txSince[to] >= drainMs) flush(to, tx);
    };

    const rx = ports.map((p) => p.rx()), tx = ports.map((p) => p.tx());
    const t0 = performance.now();
    let lastReport = t0;
    let last = stats.map((s) => ({ ...s }));
    const report = (now: number, final: boolean) => {
      for (const [i, s] of stats.entries()) {
        s.rxPackets = rx[i].packets;
        s.rxBytes = rx[i].bytes;
        s.txPackets = tx[i].packets;
        s.txBytes = tx[i].bytes;
        s.kicks = rx[i].vq.kicks + tx[i].vq.kicks;
      }
      const secs = (now - lastReport) / 1000;
      const rows = stats.map((s, i) => ({
        port: i,
        ...s,
        rxPps: Math.round((s.rxPackets - last[i].rxPackets) / (secs || 1)),
        txPps: Math.round((s.txPackets - last[i].txPackets) / (secs || 1)),
      }));
      if (statsMode === "json" || final) {
        console.log(JSON.stringify({
          event: final ? "summary" : "stats",
          elapsedS: +((now - t0) / 1000).toFixed(3),
          ports: rows,
        }));
      } else if (statsMode === "table") {
        const nf = new Intl.NumberFormat("en");
        console.log(
          rows.map((r) =>
            `port ${r.port}  rx ${nf.format(r.rxPackets)} (${nf.format(r.rxPps)}/s)  tx ${
              nf.format(r.txPackets)
            } (${nf.format(r.txPps)}/s)  dropped ${nf.format(r.dropsTxRingFull)} [tx ring full]`
          ).join("\n"),
        );
      }
      last = stats.map((s) => ({ ...s }));
      lastReport = now;
    };

    // Run to completion; give the event loop a turn every ~20 ms so that signals and the
    // once-a-second report are seen.
    let nextYield = t0 + 20;
    for (;;) {
      const now = performance.now();
      forward(rx[0], 1, tx[1], now);
      forward(rx[1], 0, tx[0], now);
      if (now >= nextYield) {
        if (stop || now - t0 >= durationMs) break;
        if (statsMode !== "off" && now - lastReport >= 1000) report(now, false);
        await new Promise((r) => setTimeout(r, 0));
        nextYield = performance.now() + 20;
      }
    }
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    flush(0, tx[0]);
    flush(1, tx[1]);
    // Drain: let the devices finish what was queued (bounded: 500 ms).
    const drainUntil = performance.now() + 500;
    for (const t of tx) while (t.vq.inFlight > 0 && performance.now() < drainUntil) t.reclaim();
    report(performance.now(), true);
    return 0;
  } finally {
    for (const p of ports.reverse()) p.close();
    pool.region.free();
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    if (e instanceof DriverError) {
      console.error(`error: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
