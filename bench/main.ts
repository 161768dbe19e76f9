/**
 * `deno task bench`: measures our driver beside DPDK on this machine and reports.
 *
 * 1. Micro-benchmarks (`deno bench bench/micro/`): the forwarding loop, the split ring and
 *    the Toeplitz hash against in-memory rings, per item.
 * 2. Native loopback (bench/loopback.ts): DPDK's testpmd as vhost-user back-end on one
 *    core; on the other, DPDK's virtio-user front-end and our l2fwd in turn (DPDK, ours,
 *    DPDK, ours, …, DPDK), at 64 and 1,518 bytes; each of our runs is divided by the DPDK
 *    runs next to it. With our runs: the l2fwd process's RSS and its worker's heap and GCs.
 * 3. VM bed (bench/vm_bed.ts): DPDK's testpmd (io, io retry) and our l2fwd in a TCG guest
 *    on the same two NICs, one boot with 1 queue pair and one with 2: zero-loss rate
 *    (RFC 2544 search), peak, latency at each one's half zero-loss rate and at a common rate.
 * 4. vfio-user bed (bench/vfio_user.ts): our l2fwd on two QEMU vfio-user servers, the same
 *    trials, and the notifications it sent per 1,000 frames.
 * 5. Scaling without a device (bench/scaling.ts): one forwarding worker, then one per CPU.
 *
 * Prints the tables, writes `bench/results/latest.json` and `latest.svg`, and puts the
 * tables into README.md between `<!-- bench:start -->` and `<!-- bench:end -->`. Needs
 * root, two CPUs and tools/setup.sh's packages. No figure is asserted anywhere: it
 * measures and reports. docs/performance.md explains the figures.
 *
 * @module
 */

import { measureModes } from "./modes.ts";
import { parseArgs } from "node:util";
import { type FrontEnd, measureLoopback } from "./loopback.ts";
import { measureScaling } from "./scaling.ts";
import { measureVfioUserBed } from "./vfio_user.ts";
import { measureVmBed } from "./vm_bed.ts";
import {
  type BenchRecord,
  type MicroResult,
  renderMarkdown,
  renderSvg,
  replaceReadmeSection,
  summarizeLoopback,
} from "./report.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

const USAGE = `usage: deno task bench [options]

  --seconds S          seconds measured per loopback run (default 5)
  --warmup-seconds S   seconds of forwarding before each measurement (default 3)
  --rounds N           our runs per frame size with split rings, each between two DPDK
                       runs (default 3)
  --packed-rounds N    the same with packed rings on both front-ends (default 1; 0: none)
  --sizes LIST         frame sizes in bytes (default 64,1518)
  --tx-first N         bursts of 32 frames the back-end injects per port (default 8)
  --vm-trial-seconds S seconds per trial of the VM and vfio-user beds' searches (default 5)
  --no-vm              skip the VM bed
  --no-vfio-user       skip the vfio-user bed
  --no-modes           skip the txonly/rxonly runs (64-byte frames, DPDK, ours, DPDK each)
  --no-micro           skip the micro-benchmarks and the scaling run
  --no-readme          do not update README.md
  --out DIR            where latest.json and latest.svg go (default bench/results)
  --help               this text`;

function fail(message: string): never {
  console.error(`error: ${message}\n\n${USAGE}`);
  Deno.exit(2);
}

function positive(v: string, name: string, integer: boolean): number {
  const n = Number(v);
  if (!(n > 0 && n <= 3600) || (integer && !Number.isInteger(n))) {
    fail(`--${name} must be a ${integer ? "whole " : ""}number from 1 to 3600, not '${v}'`);
  }
  return n;
}

async function text(cmd: string, args: string[]): Promise<string> {
  try {
    const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    return new TextDecoder().decode(r.stdout).trim();
  } catch {
    return "";
  }
}

async function machine(): Promise<Record<string, string>> {
  const cpu = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const mem = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  return {
    cpu: /model name\s*:\s*(.*)/.exec(cpu)?.[1] ?? "unknown",
    cores: String(navigator.hardwareConcurrency),
    memory: `${Math.round(Number(/MemTotal:\s+(\d+)/.exec(mem)?.[1] ?? 0) / 1048576)} GiB`,
    kernel: await text("uname", ["-r"]),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    // The package that owns testpmd: dpdk-dev on Debian 12 without the dpdk metapackage.
    dpdk: await text("dpkg-query", ["-W", "-f", "${Version}", "dpdk-dev"]) ||
      await text("dpkg-query", ["-W", "-f", "${Version}", "dpdk"]) || "unknown",
  };
}

async function micro(): Promise<MicroResult[]> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["bench", "--json", "--no-check", "--allow-read", `${ROOT}/bench/micro/`],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!r.success) throw new Error("deno bench bench/micro/ failed");
  const out = JSON.parse(new TextDecoder().decode(r.stdout)) as {
    benches: { name: string; results: { ok?: { avg: number } }[] }[];
  };
  return out.benches.map((b) => ({
    name: b.name,
    avgNs: b.results[0]?.ok?.avg ?? NaN,
    perIteration: Number(/×(\d+)$/.exec(b.name)?.[1] ?? 1),
  }));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seconds: { type: "string", default: "5" },
      "warmup-seconds": { type: "string", default: "3" },
      rounds: { type: "string", default: "3" },
      "packed-rounds": { type: "string", default: "1" },
      sizes: { type: "string", default: "64,1518" },
      "tx-first": { type: "string", default: "8" },
      "no-micro": { type: "boolean", default: false },
      "no-vm": { type: "boolean", default: false },
      "no-vfio-user": { type: "boolean", default: false },
      "no-modes": { type: "boolean", default: false },
      "vm-trial-seconds": { type: "string", default: "5" },
      "no-readme": { type: "boolean", default: false },
      out: { type: "string", default: `${ROOT}/bench/results` },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const seconds = positive(values.seconds, "seconds", false);
  const warmupSeconds = positive(values["warmup-seconds"], "warmup-seconds", false);
  const rounds = positive(values.rounds, "rounds", true);
  const packedRounds = values["packed-rounds"] === "0"
    ? 0
    : positive(values["packed-rounds"], "packed-rounds", true);
  const txFirst = positive(values["tx-first"], "tx-first", true);
  const vmTrialSeconds = positive(values["vm-trial-seconds"], "vm-trial-seconds", false);
  const sizes = values.sizes.split(",").map((s) => {
    const n = Number(s);
    if (!(Number.isInteger(n) && n >= 64 && n <= 1518)) {
      fail(`--sizes takes frame sizes from 64 to 1518 bytes, not '${s}'`);
    }
    return n;
  });
  if (Deno.uid() !== 0) fail("the loopback needs root (huge pages for DPDK): run as root");

  const started = Date.now();
  const log = (l: string) =>
    console.error(`[${((Date.now() - started) / 1000).toFixed(0)} s] ${l}`);
  const microResults = values["no-micro"] ? [] : (log("micro-benchmarks"), await micro());
  const scaling = values["no-micro"]
    ? undefined
    : (log("scaling: one worker, then one per CPU"), await measureScaling());
  const frontEnds: FrontEnd[] = [{ kind: "dpdk" }];
  for (let i = 0; i < rounds; i++) frontEnds.push({ kind: "ours" }, { kind: "dpdk" });
  // Packed rings side by side: DPDK's virtio-user with packed_vq=1 around ours with packed.
  if (packedRounds > 0) frontEnds.push({ kind: "dpdk", ring: "packed" });
  for (let i = 0; i < packedRounds; i++) {
    frontEnds.push({ kind: "ours", ring: "packed" }, { kind: "dpdk", ring: "packed" });
  }
  log(`native loopback: ${frontEnds.length} runs per frame size`);
  const runs = await measureLoopback({
    frameSizes: sizes,
    frontEnds,
    seconds,
    warmupSeconds,
    txFirstBursts: txFirst,
    log,
  });
  const modes = values["no-modes"]
    ? undefined
    : (log("txonly and rxonly: DPDK, ours, DPDK"),
      await measureModes({ frameSize: 64, rounds: 1, seconds, warmupSeconds, log }));
  const vm = values["no-vm"]
    ? undefined
    : (log("VM bed: DPDK testpmd (io, io retry), then our l2fwd; 1 queue pair, then 2"),
      await measureVmBed({ trialSeconds: vmTrialSeconds, log }));
  const vfioUser = values["no-vfio-user"]
    ? undefined
    : (log("vfio-user bed: our l2fwd"),
      await measureVfioUserBed({ trialSeconds: vmTrialSeconds, log }));
  const record: BenchRecord = {
    date: new Date().toISOString(),
    machine: await machine(),
    settings: {
      seconds,
      warmupSeconds,
      rounds,
      packedRounds,
      txFirstBursts: txFirst,
      vmTrialSeconds,
    },
    loopback: summarizeLoopback(runs),
    loopbackRuns: runs,
    micro: microResults,
    vm,
    vfioUser,
    modes,
    scaling,
  };
  const md = renderMarkdown(record);
  console.log(md);
  await Deno.mkdir(values.out, { recursive: true });
  await Deno.writeTextFile(`${values.out}/latest.json`, JSON.stringify(record, null, 2) + "\n");
  await Deno.writeTextFile(`${values.out}/latest.svg`, renderSvg(record));
  if (!values["no-readme"]) {
    const readme = `${ROOT}/README.md`;
    await Deno.writeTextFile(
      readme,
      replaceReadmeSection(await Deno.readTextFile(readme), md),
    );
  }
  // The README in the project's format, so that `deno fmt --check` (tools/test.sh) stays
  // clean; bench/results/ is left as written (deno.json excludes it from fmt).
  if (!values["no-readme"]) {
    await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", `${ROOT}/README.md`] })
      .output();
  }
  log(`done: ${values.out}/latest.json, latest.svg${values["no-readme"] ? "" : ", README.md"}`);
}

if (import.meta.main) await main();
