/**
 * Opens and closes ports over and over and reports what the process holds before and
 * after: the leak soak's driver side, the same program in every bed (on the host for
 * vhost-user and vfio-user, in the guest for kernel VFIO), with `--allow-ffi` only.
 *
 *     deno run --allow-ffi [--v8-flags=--expose-gc] tests/soak/port_cycles.ts \
 *       --port NAME [--port NAME2] --cycles N [--warmup W] [--queues Q] [--bind] \
 *       [--restore-driver] [--frames K] [--frames-every M] [--irq-every M] [--step]
 *
 * Each cycle opens every port (Q queue pairs: queues, control queue, steering, DMA memory),
 * in every M-th cycle moves K frames (two ports: port 1 sends, port 2 must receive them,
 * forwarded by the back-end; one port: it transmits and waits until the device completed
 * them) and routes receiveq1's interrupts to an eventfd, then closes them. W warm-up cycles
 * come first, unmeasured: V8 compiles, and its heap and the allocator grow, at first.
 * With `--step` it prints `{"event":"open","cycle":i}` and reads one stdin line before each
 * cycle (a vfio-user server serves one client, so the test starts a fresh one in between).
 *
 * Ends with one JSON line `{"event":"done",…}`: the resources (process_resources.ts) at
 * the start, after warm-up, half-way, with the last cycle's ports open, and at the end;
 * RSS and V8 heap at every tenth of the cycles; the IOVAs of the ports' DMA memory in the
 * first measured cycle and the last; the PCI functions' drivers before and after. Exit 0
 * when every cycle opened, moved its frames and closed.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { readLink } from "../../ffi/fs.ts";
import { DriverError, NO_BUFFER, openPort, type VirtioNetPort } from "../../mod.ts";
import { readResources, type Resources } from "./process_resources.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string", multiple: true, default: [] },
    cycles: { type: "string", default: "10" },
    warmup: { type: "string", default: "3" },
    queues: { type: "string", default: "1" },
    bind: { type: "boolean", default: false },
    "restore-driver": { type: "boolean", default: false },
    frames: { type: "string", default: "64" },
    "frames-every": { type: "string", default: "1" },
    "irq-every": { type: "string", default: "2" },
    step: { type: "boolean", default: false },
  },
});

const names = values.port;
const cycles = Number(values.cycles), warmup = Number(values.warmup);
const queuePairs = Number(values.queues), frameCount = Number(values.frames);
const framesEvery = Number(values["frames-every"]), irqEvery = Number(values["irq-every"]);
const gc = (globalThis as { gc?: () => void }).gc;

/** The resources after a full GC when `--expose-gc` allows one (RSS then means live data). */
function measure(): Resources {
  gc?.();
  return readResources();
}

/** The kernel driver of PCI function `name`, or null for other ports. */
function driverOf(name: string): string | null {
  if (!/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(name)) return null;
  const link = readLink(`/sys/bus/pci/devices/${name}/driver`);
  return link === null ? "none" : link.split("/").pop()!;
}

const stdinLines = values.step
  ? Deno.stdin.readable.pipeThrough(new TextDecoderStream())[Symbol.asyncIterator]()
  : null;
let pendingInput = "";

/** Waits for one line on stdin (the test's go-ahead under `--step`). */
async function nextLine(): Promise<void> {
  while (!pendingInput.includes("\n")) {
    const r = await stdinLines!.next();
    if (r.done) throw new Error("stdin closed while waiting for the next cycle");
    pendingInput += r.value;
  }
  pendingInput = pendingInput.slice(pendingInput.indexOf("\n") + 1);
}

/** A 64-byte test frame (EtherType 0x88b5, local experimental) numbered `n`. */
function frame(n: number): Uint8Array {
  const f = new Uint8Array(64);
  f.set([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xb5], 0);
  new DataView(f.buffer).setUint32(14, n);
  return f;
}

/**
 * Sends frames on `from` until `count` arrived on `to` or, without `to`, until `from`'s
 * device completed `count`. Throws when that takes over 10 s. To a back-end, frames come
 * in bursts a millisecond apart until enough arrived: it drops those it forwards before
 * the other port's queues are up, which the driver cannot see.
 */
function moveFrames(from: VirtioNetPort, to: VirtioNetPort | undefined, count: number): void {
  const bufs = new Uint32Array(32), lens = new Uint32Array(32);
  const tx = from.tx(0);
  let queued = 0, done = 0, nextBurst = 0;
  const deadline = performance.now() + 10000;
  while (done < count) {
    const now = performance.now();
    if (now > deadline) {
      throw new Error(
        `${done} of ${count} frames ${to ? `reached ${to.name}` : "completed"} within 10 s`,
      );
    }
    if (to ? now >= nextBurst : queued < count) {
      nextBurst = now + 1;
      let n = 0;
      while (n < 32 && (to !== undefined || queued + n < count)) {
        const b = from.pool.alloc();
        if (b === NO_BUFFER) break;
        const f = frame(queued + n);
        from.pool.data.set(f, from.frameOffset(b));
        bufs[n] = b;
        lens[n++] = f.length;
      }
      const sent = tx.txBurst(bufs, lens, n);
      for (let i = sent; i < n; i++) from.pool.free(bufs[i]);
      queued += sent;
    }
    const completed = tx.reclaim();
    if (!to) {
      done += completed;
      continue;
    }
    // Every pair is polled: after a steering switch (opening with several pairs makes
    // one) a queue holds its frames until the others passed the switch (docs/steering.md).
    for (let q = 0; q < to.queuePairs; q++) {
      const rx = to.rx(q);
      const m = rx.rxBurst(bufs, lens, 32);
      for (let i = 0; i < m; i++) to.pool.free(bufs[i]);
      rx.refill();
      done += m;
    }
  }
  // Buffers still in flight go back when the port closes (its pool is freed whole).
}

/** What a cycle saw while its ports were open. */
interface Open {
  resources: Resources;
  /** IOVA of each port's DMA region: the same every cycle when closing gives them back. */
  iovas: number[];
}

/** One cycle: open every port, use it, close it. */
function cycle(i: number): Open {
  const ports: VirtioNetPort[] = [];
  try {
    for (const name of names) {
      ports.push(openPort(name, {
        queuePairs,
        bind: values.bind,
        restoreDriver: values["restore-driver"],
      }));
    }
    // Counted from the last cycle, which always does both: its reading shows them.
    const fromLast = warmup + cycles - 1 - i;
    if (fromLast % irqEvery === 0) { for (const p of ports) p.enableRxInterrupts(0); }
    if (frameCount > 0 && fromLast % framesEvery === 0) moveFrames(ports[0], ports[1], frameCount);
    return { resources: readResources(), iovas: ports.map((p) => p.pool.region.iova) };
  } finally {
    for (const p of ports.reverse()) p.close();
  }
}

async function main(): Promise<number> {
  if (names.length < 1 || names.length > 2) throw new Error("give one or two --port");
  // Deno starts its signal thread (a socketpair) half a second or so after start-up: a
  // listener starts it now, so that it is there before the first reading.
  const none = () => {};
  Deno.addSignalListener("SIGUSR2", none);
  Deno.removeSignalListener("SIGUSR2", none);
  const driversBefore = names.map(driverOf);
  const start = measure();
  const t0 = performance.now();
  let warm = start, mid = start, warmAt = t0;
  let first: Open | null = null, open: Open | null = null;
  // RSS and V8's used heap in KiB at every tenth of the measured cycles: a leak grows
  // steadily, V8 and the allocator settle.
  const rssTrend: number[] = [], heapTrend: number[] = [];
  const heapKiB = () => Math.round(Deno.memoryUsage().heapUsed / 1024);
  const every = Math.max(1, Math.floor(cycles / 10));
  for (let i = 0; i < warmup + cycles; i++) {
    if (i === warmup) {
      warm = measure();
      warmAt = performance.now();
    }
    if (i === warmup + Math.floor(cycles / 2)) mid = measure();
    if (i >= warmup && (i - warmup) % every === 0) {
      rssTrend.push(i === warmup ? warm.rssKiB : measure().rssKiB);
      heapTrend.push(heapKiB());
    }
    if (stdinLines) {
      console.log(JSON.stringify({ event: "open", cycle: i }));
      await nextLine();
    }
    open = cycle(i);
    if (i === warmup) first = open;
  }
  const after = measure();
  const now = performance.now();
  console.log(JSON.stringify({
    event: "done",
    ports: names,
    cycles,
    warmup,
    queuePairs,
    warmupMs: Math.round(warmAt - t0),
    cyclesMs: Math.round(now - warmAt),
    start,
    warm,
    mid,
    open: open!.resources,
    after,
    iovasFirst: first!.iovas,
    iovasLast: open!.iovas,
    rssTrend: [...rssTrend, after.rssKiB],
    heapTrend: [...heapTrend, heapKiB()],
    driversBefore,
    driversAfter: names.map(driverOf),
  }));
  return 0;
}

try {
  Deno.exit(await main());
} catch (e) {
  console.error(`error: ${e instanceof DriverError ? e.message : (e as Error).stack}`);
  Deno.exit(1);
}
