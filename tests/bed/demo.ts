/**
 * The main job, in a test bed: boots the VM bed with two virtio-net NICs, runs
 * `examples/l2fwd.ts` on them inside the guest (`--allow-ffi` only), sends UDP traffic of
 * many flows into NIC 0 from the host, captures what comes out of NIC 1, prints l2fwd's
 * statistics and accounts on the host for every frame: where each one that did not come
 * out of NIC 1 went (dropped by the host before the guest, not received by l2fwd, dropped by
 * l2fwd, lost in QEMU, dropped by the host kernel or the capture's ring).
 *
 *     deno run --allow-all tests/bed/demo.ts [--frames N] [--flows N] [--rate PPS]
 *
 * (`bash tools/demo.sh` installs what is needed first and runs this.) Exit status 0 when
 * every frame sent came out of NIC 1 and was captured.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { formatTable, type StatsReport } from "../../src/engine/stats_report.ts";
import { udpFrames } from "./frames.ts";
import { KernelDropTrace } from "./kernel_drops.ts";
import { sendFrames, startCapture } from "./traffic.ts";
import { shellQuote, VmBed } from "./vm.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    frames: { type: "string", default: "20000" },
    flows: { type: "string", default: "1024" },
    rate: { type: "string", default: "5000" },
  },
});
const count = Number(values.frames), flows = Number(values.flows), rate = Number(values.rate);
const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const nf = new Intl.NumberFormat("en");
const n = (x: number) => nf.format(x);
/**
 * A frame QEMU wrote into the tap is lost before a capture sees it when the receiving CPU's
 * backlog is full (netdev_max_backlog); the tap counts it in rx_dropped, the trace says so.
 */
const BACKLOG = "CPU_BACKLOG";

console.log("booting the VM test bed (QEMU, intel-iommu, 2 virtio-net NICs on taps)…");
const bed = await VmBed.start({ nics: 2, hugepages: 64 });
let status = 1;
try {
  const mod = await bed.exec("modprobe vfio-pci");
  if (mod.code !== 0) throw new Error(`modprobe vfio-pci failed: ${mod.stderr}`);
  const a = bed.nicAddress(0), b = bed.nicAddress(1);
  const duration = Math.ceil(count / rate) + 8;
  const cmd = `deno run --quiet --allow-ffi ${shellQuote(`${root}/examples/l2fwd.ts`)} ` +
    `--bind --stats json --duration ${duration} ${a} ${b}`;
  console.log(`guest$ ${cmd}`);
  const l2fwd = await bed.spawn(cmd);
  await l2fwd.waitForOutput(/port 1: /, 60000, "stderr");
  console.log((await l2fwd.stderr()).trim());
  const frames = udpFrames({ count, flows, dst: bed.nicMac(0) });
  const tap1 = bed.tapName(1);
  const tapRx0 = await bed.ns.stat(tap1, "rx_packets");
  const tapRxDrop0 = await bed.ns.stat(tap1, "rx_dropped");
  const trace = KernelDropTrace.start([BACKLOG]);
  const capture = await startCapture(bed, 1, { count, timeoutMs: (duration + 10) * 1000 });
  console.log(
    `host: sending ${n(count)} UDP frames of ${n(flows)} flows into NIC 0 at ${n(rate)}/s…`,
  );
  const sent = await sendFrames(bed, 0, frames, { rate });
  const res = await l2fwd.wait((duration + 30) * 1000);
  const captured = (await capture.done().catch((e: { frames?: Uint8Array[] }) => e.frames ?? []))
    .length;
  const cs = await capture.stats();
  trace.stop();
  const tapRx = await bed.ns.stat(tap1, "rx_packets") - tapRx0;
  const tapRxDropped = await bed.ns.stat(tap1, "rx_dropped") - tapRxDrop0;
  const reports = res.stdout.trim().split("\n").filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as StatsReport);
  const summary = reports.findLast((r) => r.event === "summary");
  if (summary) console.log(formatTable(summary));
  if (res.code !== 0) console.log(res.stderr.trim());
  console.log(
    `host: sent ${n(sent.sent)} into NIC 0, captured ${n(captured)} out of NIC 1 ` +
      `(${(100 * captured / sent.sent).toFixed(2)}%)`,
  );
  let accounted = false;
  if (summary && cs) {
    const [p0, p1] = summary.ports;
    const backlog = trace.count(bed.qemuPid, BACKLOG);
    const rows: [string, number][] = [
      ["dropped by the host before NIC 0 (tap ring full)", sent.dropped],
      [
        "sent into NIC 0 but not received by l2fwd (in QEMU or the ring)",
        sent.sent - sent.dropped - p0.rxPackets,
      ],
      ["received by l2fwd but not sent out of NIC 1 (l2fwd drops)", p0.rxPackets - p1.txPackets],
      ["sent by l2fwd but not written into the tap by QEMU", p1.txPackets - tapRx],
      [
        `dropped by the host on receive from NIC 1 (tap rx_dropped; CPU backlog full: ${
          n(backlog)
        })`,
        tapRxDropped,
      ],
      ["dropped by the capture's ring (tp_drops)", cs.socketDrops],
      ["still in the capture's ring / other EtherTypes", cs.unread + cs.ignored],
    ];
    const rest = tapRx - tapRxDropped - cs.socketDrops - cs.unread - cs.ignored -
      captured;
    console.log(`host: where the ${n(sent.sent - captured)} frames not captured went:`);
    for (const [what, c] of rows) if (c !== 0) console.log(`  ${n(c).padStart(8)}  ${what}`);
    if (rest !== 0) console.log(`  ${n(rest).padStart(8)}  NOT ACCOUNTED FOR`);
    accounted = rest === 0;
    console.log(
      `host: l2fwd sent ${n(p1.txPackets)} out of NIC 1 = ${n(captured)} captured + ` +
        `${n(p1.txPackets - captured)} lost on the way (listed above)`,
    );
  } else console.log("host: no l2fwd summary or capture counters: frames cannot be accounted for");
  status = res.code === 0 && accounted && captured === sent.sent ? 0 : 1;
} finally {
  await bed.close();
}
Deno.exit(status);
