/**
 * Guest side of the receive/transmit test: runs inside a test bed with `--allow-ffi` only.
 *
 *     deno run --allow-ffi tests/guest/rxtx.ts --port PORT [--bind] --rx-count N \
 *       --rx-out rx.pcap --tx-in tx.pcap [--ethertype 0x88b5] [--timeout-ms 120000] \
 *       [--mergeable auto|off] [--indirect auto|off]
 *
 * Opens PORT, prints one JSON line `{"event":"ready",…}` with the negotiated features by
 * name, receives until N frames of the test EtherType arrived (other frames are counted,
 * not kept), writes them to rx.pcap in arrival order, then transmits every frame of
 * tx.pcap in bursts and waits until the device has completed them all. Ends with one
 * JSON line `{"event":"done",…}` of counters. Exit status 0 only if all of it happened.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { readBytes, writeBytes } from "../../ffi/fs.ts";
import { NO_BUFFER, openPort, readFrame, writeFrame } from "../../mod.ts";
import { guestMain } from "./guest_main.ts";
import { encodePcap, readPcapFrames } from "../../src/pcap/pcap.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string" },
    bind: { type: "boolean", default: false },
    "rx-count": { type: "string", default: "0" },
    "rx-out": { type: "string" },
    "tx-in": { type: "string" },
    ethertype: { type: "string", default: "0x88b5" },
    "timeout-ms": { type: "string", default: "120000" },
    burst: { type: "string", default: "32" },
    mergeable: { type: "string", default: "auto" },
    indirect: { type: "string", default: "auto" },
  },
});

function run(): number {
  if (!values.port) throw new Error("--port is required");
  const rxCount = Number(values["rx-count"]);
  const ethertype = Number(values.ethertype);
  const burst = Number(values.burst);
  const deadline = Date.now() + Number(values["timeout-ms"]);
  const port = openPort(values.port, {
    bind: values.bind,
    mergeable: values.mergeable !== "off",
    indirect: values.indirect !== "off",
  });
  try {
    const pool = port.pool, data = pool.data, rxq = port.rx(), txq = port.tx();
    console.log(JSON.stringify({
      event: "ready",
      port: port.name,
      negotiated: port.negotiatedFeatureNames(),
      hugePages: port.hugePages,
      queueSize: rxq.vq.size,
      bufferSize: pool.bufferSize,
    }));
    const bufs = new Uint32Array(burst), lens = new Uint32Array(burst);
    const received: Uint8Array[] = [];
    let others = 0;
    while (received.length < rxCount) {
      if (Date.now() > deadline) break;
      const n = rxq.rxBurst(bufs, lens, burst);
      for (let i = 0; i < n; i++) {
        const off = port.frameOffset(bufs[i]);
        const type = (data[off + 12] << 8) | data[off + 13];
        // A frame may span buffers (mergeable receive buffers): readFrame gathers it.
        if (type === ethertype) received.push(readFrame(pool, port.headerSize, bufs[i], lens[i]));
        else others++;
        pool.free(bufs[i]);
      }
    }
    if (values["rx-out"]) writeBytes(values["rx-out"], encodePcap(received));

    const frames = values["tx-in"] ? readPcapFrames(readBytes(values["tx-in"])) : [];
    let sent = 0, multiBuffer = 0;
    while (sent < frames.length && Date.now() < deadline) {
      let k = 0;
      while (k < burst && sent + k < frames.length) {
        const f = frames[sent + k];
        const b = writeFrame(pool, port.headerSize, f); // more than one buffer if it must
        if (b === NO_BUFFER) break;
        bufs[k] = b;
        lens[k] = f.length;
        k++;
      }
      const done = txq.txBurst(bufs, lens, k);
      for (let i = 0; i < done; i++) if (pool.next[bufs[i]] !== NO_BUFFER) multiBuffer++;
      for (let i = done; i < k; i++) pool.free(bufs[i]); // ring full: send them again later
      sent += done;
      if (done < k) txq.reclaim();
    }
    while (txq.vq.inFlight > 0 && Date.now() < deadline) txq.reclaim();
    const ok = received.length === rxCount && sent === frames.length && txq.vq.inFlight === 0;
    console.log(JSON.stringify({
      event: "done",
      ok,
      ring: port.ringFormat,
      rxTestFrames: received.length,
      rxOtherFrames: others,
      rxPackets: rxq.packets,
      rxDropsRunt: rxq.dropsRunt,
      rxRefillFailures: rxq.refillFailures,
      txPackets: txq.packets,
      txFramesGiven: frames.length,
      txMultiBuffer: multiBuffer,
      txIndirectMax: txq.vq.indirectMax,
      txRingFull: txq.ringFull,
      txKicks: txq.vq.kicks,
      txKicksSuppressed: txq.vq.kicksSuppressed,
      rxKicks: rxq.vq.kicks,
      rxKicksSuppressed: rxq.vq.kicksSuppressed,
      poolAvailable: pool.available,
    }));
    return ok ? 0 : 3;
  } finally {
    port.close();
  }
}

guestMain(run);
