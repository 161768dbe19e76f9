/**
 * Native loopback: one back-end, DPDK's testpmd with two `net_vhost` ports doing io
 * forwarding on CPU 1 (the vhost-user bed, tests/bed/vhost_user_bed.ts), and a front-end
 * on CPU 0 that forwards its port 0 ⇄ port 1: DPDK's own virtio-user front-end (a second
 * testpmd, io forwarding) or our examples/l2fwd.ts. The back-end injects frames with
 * `start tx_first N` and from then on the same frames go round; the rate is what the
 * back-end receives from the front-end per second, summed over both ports, read as
 * counter differences (testpmd's `clear port stats` races with its forwarding lcore and
 * can lose the clear under load). Front-ends run one after the other against the same
 * back-end, in the order given (DPDK, ours, DPDK), so each ratio compares runs minutes
 * apart on the same machine, each front-end with split rings or, with DPDK's
 * `packed_vq=1` and our default, packed ones. See docs/performance.md.
 *
 * @module
 */

import { VhostUserBed } from "../tests/bed/vhost_user_bed.ts";
import { startDpdkFrontEnd } from "../tests/bed/dpdk_front_end.ts";
import type { RingFormat } from "../src/virtio/ring_format.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** A front-end to measure. */
export type FrontEnd =
  | { kind: "dpdk"; label?: string; ring?: RingFormat }
  | {
    kind: "ours";
    label?: string;
    /** The virtqueue format (default split; the back-end offers both). */
    ring?: RingFormat;
    /** Checkout whose examples/l2fwd.ts runs (default: this one), for A/B runs. */
    root?: string;
    /** More l2fwd options (e.g. ["--burst", "64"]). */
    args?: string[];
  };

/** Options of {@linkcode measureLoopback}. */
export interface LoopbackOptions {
  /** Frame sizes (bytes, FCS excluded as testpmd's `set txpkts` counts them). */
  frameSizes: number[];
  /** Front-ends, run in this order for every frame size. */
  frontEnds: FrontEnd[];
  /** Seconds measured per run. */
  seconds: number;
  /** Seconds of forwarding before the measurement starts (the first of them measured apart). */
  warmupSeconds: number;
  /** Bursts of 32 frames the back-end injects per port (`start tx_first N`). */
  txFirstBursts: number;
  /** Called with a line of progress. */
  log?: (line: string) => void;
}

/** What l2fwd's worker and process did during one measured window. */
export interface MemoryFigures {
  /** Resident set of the l2fwd process at the window's start and end (KiB). */
  rssStartKiB: number;
  rssEndKiB: number;
  /** The worker's V8 heap used at the window's start and end (bytes, sampled once a second). */
  heapStart: number;
  heapEnd: number;
  /** Bytes the worker's heap grew by outside compile steps in the window (allocation). */
  heapCreep: number;
  /** Samples in the window at which the worker's heap shrank: garbage collections. */
  gcs: number;
  /** Frames the worker received per poll of both ports (64 at most with bursts of 32). */
  framesPerPoll: number;
}

/** One measured run. */
export interface LoopbackRun {
  frameSize: number;
  frontEnd: string;
  kind: "dpdk" | "ours";
  /** The virtqueue format both front-ends used. */
  ring: RingFormat;
  /** Frames per second the back-end received from the front-end, both ports. */
  fps: number;
  /** The same over the first second after the back-end injected the frames. */
  firstSecondFps: number;
  /** The same in Gbit/s of frame bytes (FCS excluded). */
  gbps: number;
  /** Per back-end port, frames per second. */
  perPort: number[];
  /** Frames the back-end dropped in the run (its tx to the front-end's full ring). */
  backEndDropped: number;
  /** Seconds actually measured. */
  seconds: number;
  /** Ours only. */
  memory?: MemoryFigures;
}

interface Running {
  stop(): Promise<void>;
  window?: () => Promise<() => Promise<MemoryFigures>>;
}

async function startDpdk(bed: VhostUserBed, ring: RingFormat): Promise<Running> {
  const fe = await startDpdkFrontEnd(bed, { mode: "io", packed: ring === "packed" });
  return { stop: async () => void await fe.close() };
}

/** The latest JSON stats report of an l2fwd, and its process. */
class L2fwdProcess {
  readonly child: Deno.ChildProcess;
  latest: {
    workers: {
      heapLast: number;
      heapCreep: number;
      heapDrops: number;
      loops: number;
      packets: number;
    }[];
  } | null = null;
  stderr = "";
  readonly #done: Promise<void>;

  constructor(root: string, args: string[], ports: string[]) {
    this.child = new Deno.Command("taskset", {
      args: [
        "-c",
        "0",
        Deno.execPath(),
        "run",
        "--quiet",
        "--allow-ffi",
        `${root}/examples/l2fwd.ts`,
        "--stats",
        "json",
        ...args,
        ...ports,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lines = async (s: ReadableStream<Uint8Array>, f: (l: string) => void) => {
      let buf = "";
      for await (const t of s.pipeThrough(new TextDecoderStream())) {
        buf += t;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          f(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      }
    };
    this.#done = Promise.all([
      lines(this.child.stdout, (l) => {
        try {
          const r = JSON.parse(l);
          if (r.event === "stats") this.latest = r;
        } catch { /* not a report */ }
      }),
      lines(this.child.stderr, (l) => this.stderr += l + "\n"),
    ]).then(() => {});
  }

  /** Waits until l2fwd printed its port lines (it forwards from then on). */
  async started(timeoutMs = 60000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!/port 1: /.test(this.stderr)) {
      const st = await Promise.race([this.child.status, sleep(20)]);
      if (st || performance.now() > deadline) {
        await this.stop().catch(() => {});
        throw new Error(`l2fwd did not start: ${this.stderr}`);
      }
    }
  }

  async rssKiB(): Promise<number> {
    const s = await Deno.readTextFile(`/proc/${this.child.pid}/status`);
    return Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? NaN);
  }

  async stop(): Promise<void> {
    try {
      this.child.kill("SIGINT");
    } catch { /* exited */ }
    const st = await this.child.status;
    await this.#done;
    if (st.code !== 0) throw new Error(`l2fwd exited with ${st.code}: ${this.stderr}`);
  }
}

async function startOurs(bed: VhostUserBed, fe: FrontEnd & { kind: "ours" }): Promise<Running> {
  // `--warmup 1`: the worker's heap figures (growth, GCs seen) count from its first
  // once-a-second sample, so every measured window is covered; forwarding is unchanged.
  const ring = fe.ring ?? "split";
  const args = [
    "--warmup",
    "1",
    ...(ring === "split" ? ["--ring", "split"] : []),
    ...(fe.args ?? []),
  ];
  const p = new L2fwdProcess(fe.root ?? ROOT, args, [
    `vhost-user:${bed.socket(0)}?queues=1`,
    `vhost-user:${bed.socket(1)}?queues=1`,
  ]);
  await p.started();
  // The back-end offers packed rings: --ring auto takes them (l2fwd's start line says).
  if (!p.stderr.includes(`ring ${ring} `)) {
    await p.stop().catch(() => {});
    throw new Error(`l2fwd did not run ${ring} rings: ${p.stderr}`);
  }
  const window = async () => {
    const w0 = p.latest?.workers[0], rss0 = await p.rssKiB();
    return async () => {
      const w1 = p.latest?.workers[0], rss1 = await p.rssKiB();
      return {
        rssStartKiB: rss0,
        rssEndKiB: rss1,
        heapStart: w0?.heapLast ?? NaN,
        heapEnd: w1?.heapLast ?? NaN,
        heapCreep: (w1?.heapCreep ?? NaN) - (w0?.heapCreep ?? NaN),
        gcs: (w1?.heapDrops ?? NaN) - (w0?.heapDrops ?? NaN),
        framesPerPoll: ((w1?.packets ?? NaN) - (w0?.packets ?? NaN)) /
          ((w1?.loops ?? NaN) - (w0?.loops ?? NaN)),
      };
    };
  };
  return { stop: () => p.stop(), window };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitLinks(bed: VhostUserBed, up: boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const l = await bed.links();
    if (l[0] === up && l[1] === up) return;
    if (performance.now() > deadline) {
      throw new Error(`loopback: vhost links not ${up ? "up" : "down"} in ${timeoutMs} ms`);
    }
    await sleep(50);
  }
}

/**
 * Runs every front-end at every frame size against one back-end and returns the runs in
 * the order they ran. Needs root (huge pages), the DPDK packages of tools/setup.sh and
 * two CPUs.
 *
 * @example
 * ```ts ignore
 * const runs = await measureLoopback({
 *   frameSizes: [64], frontEnds: [{ kind: "dpdk" }, { kind: "ours" }, { kind: "dpdk" }],
 *   seconds: 5, warmupSeconds: 3, txFirstBursts: 16,
 * });
 * ```
 */
export async function measureLoopback(opts: LoopbackOptions): Promise<LoopbackRun[]> {
  const log = opts.log ?? (() => {});
  await using bed = await VhostUserBed.start({ vhostPorts: 2, lcores: [0, 1] });
  const runs: LoopbackRun[] = [];
  for (const size of opts.frameSizes) {
    for (const fe of opts.frontEnds) {
      const ring = fe.ring ?? "split";
      const label = fe.label ??
        `${fe.kind === "dpdk" ? "DPDK virtio-user" : "ours (l2fwd)"}, ${ring}`;
      const running = fe.kind === "dpdk" ? await startDpdk(bed, ring) : await startOurs(bed, fe);
      try {
        await waitLinks(bed, true, 30000);
        await bed.command("set fwd io");
        await bed.command(`set txpkts ${size}`);
        const a = await bed.command(`start tx_first ${opts.txFirstBursts}`);
        if (!/io packet forwarding/.test(a)) throw new Error(`back-end start: ${a}`);
        // The first second after injection, against the measured one: V8's warm-up shows here.
        const f0 = await bed.stats(), tf = performance.now();
        await sleep(1000);
        const f1 = await bed.stats();
        const firstSecondFps = f1.reduce((x, p, i) => x + p.rxPackets - f0[i].rxPackets, 0) /
          ((performance.now() - tf) / 1000);
        await sleep(Math.max(0, opts.warmupSeconds - 1) * 1000);
        const memEnd = running.window ? await running.window() : null;
        const s0 = await bed.stats();
        const t0 = performance.now();
        await sleep(opts.seconds * 1000);
        const s1 = await bed.stats();
        const seconds = (performance.now() - t0) / 1000;
        const memory = memEnd ? await memEnd() : undefined;
        const fwd = await bed.stopForwarding();
        const perPort = s1.map((p, i) => (p.rxPackets - s0[i].rxPackets) / seconds);
        const fps = perPort.reduce((x, y) => x + y, 0);
        const dropped = [...fwd.matchAll(/TX-dropped:\s*(\d+)/g)].slice(0, 2)
          .reduce((x, m) => x + Number(m[1]), 0);
        const run: LoopbackRun = {
          frameSize: size,
          frontEnd: label,
          kind: fe.kind,
          ring,
          fps,
          firstSecondFps,
          gbps: fps * size * 8 / 1e9,
          perPort,
          backEndDropped: dropped,
          seconds,
          memory,
        };
        runs.push(run);
        log(`${size} B  ${label.padEnd(24)} ${(fps / 1e6).toFixed(3)} M frames/s`);
      } finally {
        await running.stop();
        await waitLinks(bed, false, 10000).catch(() => {});
      }
    }
  }
  return runs;
}
