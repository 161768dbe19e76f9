/**
 * The main job, in a test bed: boots the VM bed with two virtio-net NICs, runs
 * `examples/l2fwd.ts` on them inside the guest (`--allow-ffi` only), sends UDP traffic of
 * many flows into NIC 0 from the host, captures what comes out of NIC 1, and prints
 * l2fwd's statistics and the host's count.
 *
 *     deno run --allow-all tests/bed/demo.ts [--frames N] [--flows N] [--rate PPS]
 *
 * (`bash tools/demo.sh` installs what is needed first and runs this.)
 *
 * @module
 */

import { parseArgs } from "node:util";
import { udpFrames } from "./frames.ts";
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

console.log("booting the VM test bed (QEMU, intel-iommu, 2 virtio-net NICs on taps)…");
const bed = await VmBed.start({ nics: 2, hugepages: 64 });
let status = 1;
try {
  const mod = await bed.exec("modprobe vfio-pci");
  if (mod.code !== 0) throw new Error(`modprobe vfio-pci failed: ${mod.stderr}`);
  const a = bed.nicAddress(0), b = bed.nicAddress(1);
  const duration = Math.ceil(count / rate) + 8;
  const cmd = `deno run --quiet --allow-ffi ${shellQuote(`${root}/examples/l2fwd.ts`)} ` +
    `--bind --stats table --duration ${duration} ${a} ${b}`;
  console.log(`guest$ ${cmd}`);
  const l2fwd = await bed.spawn(cmd);
  await l2fwd.waitForOutput(/port 1: /, 60000, "stderr");
  console.log((await l2fwd.stderr()).trim());
  const frames = udpFrames({ count, flows, dst: bed.nicMac(0) });
  const capture = await startCapture(bed, 1, { count, timeoutMs: (duration + 10) * 1000 });
  console.log(`host: sending ${count} UDP frames of ${flows} flows into NIC 0 at ${rate}/s…`);
  const sent = await sendFrames(bed, 0, frames, { rate });
  const res = await l2fwd.wait((duration + 30) * 1000);
  let captured = 0;
  try {
    captured = (await capture.done()).length;
  } catch (e) {
    captured = (e as { frames?: Uint8Array[] }).frames?.length ?? 0;
  }
  console.log(res.stdout.trim());
  if (res.code !== 0) console.log(res.stderr.trim());
  console.log(
    `host: sent ${sent.sent} into NIC 0, captured ${captured} out of NIC 1 ` +
      `(${(100 * captured / sent.sent).toFixed(2)}%)`,
  );
  status = res.code === 0 && captured === sent.sent ? 0 : 1;
} finally {
  await bed.close();
}
Deno.exit(status);
