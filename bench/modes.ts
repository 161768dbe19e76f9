/**
 * The generating and receiving modes in the native loopback (the vhost-user bed: DPDK's
 * testpmd with two `net_vhost` ports on CPU 1): a front-end on CPU 0 in testpmd's txonly
 * mode (the back-end forwards its ports to each other in io mode, so ours gets its frames
 * back and times them) or rxonly mode (the back-end generates with its own txonly). The
 * front-ends, DPDK's virtio-user testpmd and our examples/testpmd.ts, run in turns (DPDK,
 * ours, DPDK) against the same back-end. The rate is what the back-end counts: frames it
 * received from the front-end (txonly) or sent to it (rxonly; a vhost port counts only what
 * the front-end's ring took), per second, over both ports. See docs/performance.md.
 *
 * @module
 */

import { VhostUserBed } from "../tests/bed/vhost_user_bed.ts";
import { startDpdkFrontEnd } from "../tests/bed/dpdk_front_end.ts";
import type { LatencySummary } from "../mod.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One measured run. */
export interface ModeRun {
  /** The front-end's mode. */
  mode: "txonly" | "rxonly";
  /** Whose front-end. */
  frontEnd: "dpdk" | "ours";
  /** Bytes per frame. */
  frameSize: number;
  /** Frames per second the back-end counted, both ports. */
  rate: number;
  /** Ours in txonly: the latency of the frames that came back (whole run). */
  latency?: LatencySummary;
}

/** Our examples/testpmd.ts on the bed's ports, pinned to CPU 0, JSON stats on stdout. */
class OursProcess {
  readonly child: Deno.ChildProcess;
  stdout = "";
  stderr = "";
  readonly #done: Promise<void>;

  constructor(bed: VhostUserBed, mode: string, frameSize: number) {
    this.child = new Deno.Command("taskset", {
      args: [
        "-c",
        "0",
        Deno.execPath(),
        "run",
        "--quiet",
        "--allow-ffi",
        `${ROOT}/examples/testpmd.ts`,
        `--forward-mode=${mode}`,
        ...(mode === "txonly" ? [`--txpkts=${frameSize}`] : []),
        "--stats",
        "json",
        ...[0, 1].map((i) => `vhost-user:${bed.socket(i)}?queues=1`),
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const collect = async (s: ReadableStream<Uint8Array>, to: "stdout" | "stderr") => {
      for await (const t of s.pipeThrough(new TextDecoderStream())) this[to] += t;
    };
    this.#done = Promise.all([
      collect(this.child.stdout, "stdout"),
      collect(this.child.stderr, "stderr"),
    ])
      .then(() => {});
  }

  async started(timeoutMs = 60000): Promise<void> {
    const until = performance.now() + timeoutMs;
    while (!/port 1: /.test(this.stderr)) {
      if (performance.now() > until) throw new Error(`testpmd.ts did not start: ${this.stderr}`);
      await sleep(20);
    }
  }

  /** Stops it; returns the summary's generator latency, if any. */
  async stop(): Promise<LatencySummary | undefined> {
    this.child.kill("SIGINT");
    const st = await this.child.status;
    await this.#done;
    if (st.code !== 0) throw new Error(`testpmd.ts exited with ${st.code}: ${this.stderr}`);
    const summary = this.stdout.split("\n").filter((l) => l.includes('"summary"')).pop();
    return summary ? JSON.parse(summary).generator?.latency : undefined;
  }
}

/** Frames per second the back-end counted in `secs` s: received (txonly) or sent (rxonly). */
async function backEndRate(bed: VhostUserBed, mode: string, secs: number): Promise<number> {
  const key = mode === "txonly" ? "rxPackets" : "txPackets";
  const a = await bed.stats(), t0 = performance.now();
  await sleep(secs * 1000);
  const b = await bed.stats(), t1 = performance.now();
  const n = b.reduce((s, p, i) => s + p[key] - a[i][key], 0);
  return n / ((t1 - t0) / 1000);
}

/**
 * Measures txonly and rxonly, `rounds` of ours each between DPDK runs, with `frameSize`-byte
 * frames, `seconds` each after `warmupSeconds`.
 *
 * @example
 * ```ts ignore
 * const runs = await measureModes({ frameSize: 64, rounds: 1, seconds: 4, warmupSeconds: 2 });
 * ```
 */
export async function measureModes(opts: {
  frameSize: number;
  rounds: number;
  seconds: number;
  warmupSeconds: number;
  log?: (line: string) => void;
}): Promise<ModeRun[]> {
  const runs: ModeRun[] = [];
  for (const mode of ["txonly", "rxonly"] as const) {
    await using bed = await VhostUserBed.start({ vhostPorts: 2 });
    const order: ("dpdk" | "ours")[] = ["dpdk"];
    for (let i = 0; i < opts.rounds; i++) order.push("ours", "dpdk");
    for (const fe of order) {
      let latency: LatencySummary | undefined;
      let rate = 0;
      if (fe === "dpdk") {
        const dpdk = await startDpdkFrontEnd(bed, { mode, txpkts: opts.frameSize });
        try {
          rate = await startBackEnd(bed, mode, opts);
        } finally {
          await bed.stopForwarding().catch(() => {});
          await dpdk.close();
        }
      } else {
        const ours = new OursProcess(bed, mode, opts.frameSize);
        try {
          await ours.started();
          rate = await startBackEnd(bed, mode, opts);
        } finally {
          await bed.stopForwarding().catch(() => {});
          latency = await ours.stop();
        }
      }
      runs.push({ mode, frontEnd: fe, frameSize: opts.frameSize, rate, latency });
      opts.log?.(
        `${mode} ${opts.frameSize} B  ${fe === "dpdk" ? "DPDK virtio-user" : "ours (testpmd.ts)"} ${
          (rate / 1e6).toFixed(3)
        } M frames/s`,
      );
    }
  }
  return runs;
}

/** Starts the back-end (io for a txonly front-end, txonly for an rxonly one) and measures. */
async function startBackEnd(
  bed: VhostUserBed,
  mode: "txonly" | "rxonly",
  opts: { frameSize: number; seconds: number; warmupSeconds: number },
): Promise<number> {
  for (const i of [0, 1]) await bed.waitLinkUp(i);
  await bed.command(`set fwd ${mode === "txonly" ? "io" : "txonly"}`);
  await bed.command(`set txpkts ${opts.frameSize}`);
  await bed.command("start");
  await sleep(opts.warmupSeconds * 1000);
  return await backEndRate(bed, mode, opts.seconds);
}
