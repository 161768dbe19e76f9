/**
 * Extended statistics (DPDK virtio's xstats names) through l2fwd in the VM bed, kernel
 * VFIO, two NICs (MTU 9000) × two queue pairs: the host sends NIC 0 a known mix (every
 * size bin from 60 to 9,014 bytes, to NIC 0's own MAC, to a multicast group and to
 * broadcast), l2fwd forwards it out of NIC 1, the host captures it. Each rx xstat of port
 * 0, summed over its queues, equals what the host sent, each tx xstat of port 1 what it
 * captured, classified here on their own (DPDK's rules, written out); the ports' other
 * direction counts nothing; and the `--prometheus` file l2fwd left parses and carries the
 * summary's numbers.
 *
 * Needs root, QEMU, a Debian kernel (tools/setup.sh installs them).
 * Run: `flock /tmp/vd-bed.lock deno test --allow-all --no-check tests/xstats_vm_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { testFrame } from "./bed/frames.ts";
import { sendFrames, startCapture } from "./bed/traffic.ts";
import { VmBed } from "./bed/vm.ts";
import { l2fwdCmd, startL2fwd } from "./bed/l2fwd_guest.ts";
import { assertCaptured, framesOf, type PortLine, summaryOf } from "./l2fwd_checks.ts";
import { parsePrometheus } from "./bed/prometheus_text.ts";
import { DPDK_VIRTIO_QUEUE_STATS } from "../src/engine/xstats.ts";

/** One size per edge of each of DPDK's bins (60: a minimum frame, no FCS: undersize). */
const SIZES = [60, 63, 64, 65, 127, 128, 255, 256, 511, 512, 1023, 1024, 1514, 1518, 1519, 9014];
const MULTICAST = "01:00:5e:00:00:42";
const BROADCAST = "ff:ff:ff:ff:ff:ff";

/** DPDK's statistics of `frames`, by rule (virtio_update_packet_stats), not by our code. */
function expected(frames: Uint8Array[]): Record<string, number> {
  const x: Record<string, number> = Object.fromEntries(DPDK_VIRTIO_QUEUE_STATS.map((s) => [s, 0]));
  for (const f of frames) {
    const s = f.length;
    x.good_packets++;
    x.good_bytes += s;
    const bin = s < 64
      ? "undersize_packets"
      : s === 64
      ? "size_64_packets"
      : s <= 127
      ? "size_65_127_packets"
      : s <= 255
      ? "size_128_255_packets"
      : s <= 511
      ? "size_256_511_packets"
      : s <= 1023
      ? "size_512_1023_packets"
      : s <= 1518
      ? "size_1024_1518_packets"
      : "size_1519_max_packets";
    x[bin]++;
    const broadcast = f.subarray(0, 6).every((b) => b === 0xff);
    if (broadcast) x.broadcast_packets++;
    else if (f[0] & 1) x.multicast_packets++;
  }
  return x;
}

/** `rx` or `tx` statistic `stat` of a port, summed over its queues (`rx_qN_STAT`). */
function summed(p: PortLine, dir: string, stat: string) {
  let n = 0, queues = 0;
  for (const [name, v] of Object.entries(p.xstats ?? {})) {
    const m = /^(rx|tx)_q(\d+)_(.+)$/.exec(name);
    if (m && m[1] === dir && m[3] === stat) {
      n += v;
      queues++;
    }
  }
  assert.equal(queues, 2, `port ${p.port}: ${dir}_qN_${stat} for both queue pairs`);
  return n;
}

Deno.test("xstats in the VM bed: l2fwd's DPDK-named statistics equal what the host sent and captured", async () => {
  const bed = await VmBed.start({
    nics: 2,
    queuePairs: 2,
    nicProps: "host_mtu=9000",
    hugepages: 64,
  });
  try {
    const mod = await bed.exec("modprobe vfio-pci && modprobe vfio_iommu_type1");
    assert.equal(mod.code, 0, mod.stderr);
    for (const i of [0, 1]) await bed.ns.exec(["ip", "link", "set", bed.tapName(i), "mtu", "9000"]);
    // Every size to each kind of destination, 1 to 3 times (so no two counts agree by chance).
    const frames: Uint8Array[] = [];
    let seq = 0;
    for (const [k, dst] of [bed.nicMac(0), MULTICAST, BROADCAST].entries()) {
      for (const [j, size] of SIZES.entries()) {
        for (let c = 0; c <= (j + k) % 3; c++) frames.push(testFrame(77, seq++, size, dst));
      }
    }
    const prom = `${bed.shareDir}/xstats.prom`, guestProm = bed.guestPath(prom);
    // --allow-ffi only: the Prometheus file is written through libc.
    const run = await startL2fwd(bed, l2fwdCmd(bed, ["--queues", "2", "--prometheus", guestProm]));
    const cap = await startCapture(bed, 1, {
      count: frames.length,
      timeoutMs: 60000,
      ethertype: 0x88b5,
    });
    const sent = await sendFrames(bed, 0, frames, { rate: 500 });
    assert.equal(sent.dropped, 0, `host drops before NIC 0: ${JSON.stringify(sent.drops)}`);
    const out = await framesOf(cap);
    // Nothing more is coming; give a straggler time to show up in the counters anyway.
    await new Promise((r) => setTimeout(r, 1500));
    const r = await run.interrupt();
    assert.equal(r.code, 0, r.stderr);
    const s = summaryOf(r.stdout);
    assertCaptured([["NIC 1", out.length]], frames.length, s, r.stderr);
    const [p0, p1] = s.ports;
    assert.ok(p0.xstats && p1.xstats, "the summary carries xstats per port");

    const want = { rx: expected(frames), tx: expected(out) };
    console.log(`sent ${frames.length} frames: ${JSON.stringify(want.rx)}`);
    for (const stat of DPDK_VIRTIO_QUEUE_STATS) {
      if (stat === "errors") continue;
      assert.ok(want.rx[stat] > 0, `the mix has some ${stat}`);
      assert.equal(summed(p0, "rx", stat), want.rx[stat], `port 0 rx_qN_${stat}`);
      assert.equal(summed(p1, "tx", stat), want.tx[stat], `port 1 tx_qN_${stat}`);
      // Nothing came in on NIC 1 or went out of NIC 0.
      assert.equal(summed(p1, "rx", stat), 0, `port 1 rx_qN_${stat}`);
      assert.equal(summed(p0, "tx", stat), 0, `port 0 tx_qN_${stat}`);
    }
    assert.equal(summed(p0, "rx", "errors"), 0);
    assert.equal(summed(p1, "tx", "errors"), 0);
    // The per-queue xstats are the per-queue counters of the same report.
    for (const q of [0, 1]) {
      assert.equal(p0.xstats![`rx_q${q}_good_packets`], p0.queues[q].rxPackets);
      assert.equal(p1.xstats![`tx_q${q}_good_bytes`], p1.queues[q].txBytes);
    }
    console.log(
      `port 0 rx kicks ${summed(p0, "rx", "kicks")} (suppressed ${
        summed(p0, "rx", "kicks_suppressed")
      }), port 1 tx kicks ${summed(p1, "tx", "kicks")} (suppressed ${
        summed(p1, "tx", "kicks_suppressed")
      })`,
    );

    // The Prometheus file was last written with the summary: the same numbers.
    const text = await Deno.readTextFile(prom).catch((e) => {
      throw new Error(`no Prometheus file (${e.message}); l2fwd said: ${r.stderr.slice(-1500)}`);
    });
    const exp = parsePrometheus(text);
    let samples = 0;
    for (const p of [p0, p1]) {
      for (const [name, v] of Object.entries(p.xstats!)) {
        const [, d, q, stat] = /^(rx|tx)_q(\d+)_(.+)$/.exec(name)!;
        const metric = `virtio_net_${d}_${stat}`;
        const got = exp.samples.filter((x) =>
          x.name === metric && x.labels.port === String(p.port) && x.labels.queue === q
        );
        assert.equal(got.length, 1, `${metric}{port="${p.port}",queue="${q}"} once`);
        assert.equal(got[0].value, v, `${metric}{port="${p.port}",queue="${q}"}`);
        assert.equal(exp.type.get(metric), "counter");
        samples++;
      }
    }
    assert.equal(exp.samples.length, samples, "no sample besides the xstats");
    assert.ok(!(await Deno.stat(`${prom}.tmp`).then(() => true, () => false)), "no temp file left");
    console.log(`Prometheus file: ${samples} samples, ${text.length} bytes`);
  } finally {
    await bed.close();
  }
});
