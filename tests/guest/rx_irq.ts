/**
 * Guest side of the receive-interrupt test: runs inside a test bed with `--allow-ffi` only.
 *
 *     deno run --allow-ffi tests/guest/rx_irq.ts --port PORT [--bind] [--rounds N] \
 *       [--poll-rounds M] [--vector V] [--extra-vector W] [--timeout-ms 120000]
 *
 * Opens PORT, enables receive interrupts on receiveq1 (`port.enableRxInterrupts(0)`) and
 * prints `{"event":"ready",…}` with the vector and what queue_msix_vector reads back
 * (`--extra-vector W` also routes MSI-X vector W to an eventfd of its own first). Then
 * three phases, each announced with `{"event":"waiting","phase":…}` before it waits:
 *
 * - `wake`: blocks in `waitRx()` until a frame arrives; prints `{"event":"woke",…}` with
 *   how the wait ended (`signal`: the eventfd fired; `pending`: the frame was already
 *   there; `timeout`) and what rxBurst then returned;
 * - `quiet`: interrupts suppressed (not armed), waits until a frame sits in the ring, then
 *   waits 1 s on the eventfd: prints `{"event":"quiet",…}` with the signals counted
 *   (expected 0) before taking the frame with rxBurst;
 * - `latency`: N rounds of waitRx → rxBurst → echo: each frame of EtherType
 *   {@linkcode LATENCY_ETHERTYPE} goes back out with the MACs swapped and the wake-up time
 *   (CLOCK_MONOTONIC ns, offset 30), how the wait ended (offset 38) and the turnaround
 *   from wake-up to echo (ns, offset 40) written into it;
 * - `poll`: M more rounds echoed the same way, but found by busy-polling (how = 3), the
 *   baseline the interrupt path is compared with.
 *
 * Ends with `{"event":"done",…}`; exit status 0 only if every phase went as expected.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  Eventfd,
  NO_BUFFER,
  openPort,
  type VirtioNetPort,
  type VirtioPciTransport,
} from "../../low_level.ts";
import {
  LATENCY_ETHERTYPE,
  monoNs,
  PROBE_HOW,
  PROBE_TURN_NS,
  PROBE_WAKE_NS,
} from "../bed/echo_timer.ts";
import { TEST_ETHERTYPE } from "../bed/frames.ts";
import { guestMain } from "./guest_main.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string" },
    bind: { type: "boolean", default: false },
    rounds: { type: "string", default: "0" },
    "poll-rounds": { type: "string", default: "0" },
    vector: { type: "string" },
    "extra-vector": { type: "string" },
    "timeout-ms": { type: "string", default: "120000" },
  },
});

function say(o: Record<string, unknown>): void {
  console.log(JSON.stringify(o));
}

const HOW = ["timeout", "signal", "pending", "poll"] as const;

function run(): number {
  if (!values.port) throw new Error("--port is required");
  const deadline = Date.now() + Number(values["timeout-ms"]);
  const rounds = Number(values.rounds);
  const pollRounds = Number(values["poll-rounds"]);
  const port = openPort(values.port, { bind: values.bind });
  try {
    return phases(port, deadline, rounds, pollRounds);
  } finally {
    port.close();
  }
}

function phases(
  port: VirtioNetPort,
  deadline: number,
  rounds: number,
  pollRounds: number,
): number {
  const irq = port.enableRxInterrupts(
    0,
    values.vector === undefined ? {} : { vector: Number(values.vector) },
  );
  // Another vector routed after receiveq1's: kernel VFIO before Linux 6.5 cannot add it to
  // the enabled MSI-X set, so the driver re-enables the set with both (the wake-up below
  // then proves vector 1 survived that).
  const extra = values["extra-vector"] === undefined ? null : Eventfd.create();
  if (extra) transportOf(port).pci.setIrqEventfds(2, Number(values["extra-vector"]), [extra.fd]);
  const rxq = port.rx(0), txq = port.tx(0), pool = port.pool, data = pool.data;
  const vq = rxq.vq;
  say({
    event: "ready",
    port: port.name,
    ring: port.ringFormat,
    vector: irq.vector,
    queueVector: transportOf(port).queueVector(vq.index),
    msixVectors: transportOf(port).pci.irqCount(2),
    eventIdx: port.negotiatedFeatureNames().includes("VIRTIO_F_EVENT_IDX"),
  });
  const bufs = new Uint32Array(32), lens = new Uint32Array(32);
  const ethertypeOf = (b: number) => {
    const off = port.frameOffset(b);
    return (data[off + 12] << 8) | data[off + 13];
  };
  /** One wait: how it ended (by the counters) and how long it blocked. */
  const wait = (timeoutMs: number) => {
    const w0 = irq.wakeups, p0 = irq.alreadyPending;
    const t0 = performance.now();
    const ready = irq.waitRx(timeoutMs);
    const blockedMs = performance.now() - t0;
    const how = irq.wakeups > w0 ? "signal" : irq.alreadyPending > p0 ? "pending" : "timeout";
    return { ready, how, blockedMs };
  };
  const drain = () => {
    let frames = 0, test = 0;
    for (let n; (n = rxq.rxBurst(bufs, lens, 32)) > 0;) {
      for (let i = 0; i < n; i++) {
        frames++;
        if (ethertypeOf(bufs[i]) === TEST_ETHERTYPE) test++;
        pool.free(bufs[i]);
      }
    }
    return { frames, test };
  };
  let ok = true;

  // Phase wake: the frame's used-buffer notification ends the wait.
  drain();
  say({ event: "waiting", phase: "wake" });
  let w;
  do {
    w = wait(Math.max(0, Math.min(10000, deadline - Date.now())));
  } while (w.how === "timeout" && Date.now() < deadline);
  const got = drain();
  say({ event: "woke", how: w.how, blockedMs: +w.blockedMs.toFixed(3), ...got });
  if (w.how !== "signal" || got.test < 1) ok = false;

  // Phase quiet: notifications suppressed; a frame in the ring must not signal.
  irq.disarm();
  irq.eventfd.take();
  const s0 = irq.signals;
  say({ event: "waiting", phase: "quiet" });
  while (!vq.hasUsed() && Date.now() < deadline) { /* the frame is on its way */ }
  const inRing = vq.hasUsed();
  const quietSignals = irq.waitSignal(1000);
  const stillInRing = vq.hasUsed();
  const quietGot = drain();
  say({
    event: "quiet",
    frameInRing: inRing && stillInRing,
    signals: quietSignals,
    signalsTotal: irq.signals - s0,
    ...quietGot,
  });
  if (!inRing || quietSignals !== 0 || quietGot.test < 1) ok = false;

  // Phase latency: wait, take, echo with the wake-up time. Phase poll: the same with a
  // busy-polling loop instead of waitRx(), for comparison.
  const hows = { signal: 0, pending: 0, timeout: 0, poll: 0 };
  const echoRounds = (n: number, waitFor: () => string): number => {
    let echoed = 0;
    while (echoed < n && Date.now() < deadline) {
      const how = waitFor();
      const wakeNs = monoNs();
      hows[how as keyof typeof hows]++;
      echoed += echo(wakeNs, HOW.indexOf(how as typeof HOW[number]));
    }
    return echoed;
  };
  const echo = (wakeNs: bigint, how: number): number => {
    let echoed = 0;
    for (let n; (n = rxq.rxBurst(bufs, lens, 32)) > 0;) {
      let k = 0;
      for (let i = 0; i < n; i++) {
        const b = bufs[i], off = port.frameOffset(b);
        if (ethertypeOf(b) !== LATENCY_ETHERTYPE || lens[i] < PROBE_HOW + 1) {
          pool.free(b);
          continue;
        }
        const v = new DataView(data.buffer, data.byteOffset + off, lens[i]);
        for (let j = 0; j < 6; j++) { // swap destination and source MAC
          const d = data[off + j];
          data[off + j] = data[off + 6 + j];
          data[off + 6 + j] = d;
        }
        v.setBigUint64(PROBE_WAKE_NS, wakeNs, true);
        v.setUint8(PROBE_HOW, how);
        bufs[k] = b;
        lens[k] = lens[i];
        k++;
      }
      // Turnaround: wake-up to echo ready, the guest's own share of the round trip.
      const turn = Math.min(0xffff_ffff, Number(monoNs() - wakeNs));
      for (let i = 0; i < k; i++) {
        new DataView(data.buffer, data.byteOffset + port.frameOffset(bufs[i]), lens[i])
          .setUint32(PROBE_TURN_NS, turn, true);
      }
      let sent = 0;
      while (sent < k && Date.now() < deadline) {
        sent += txq.txBurst(bufs.subarray(sent), lens.subarray(sent), k - sent);
        if (sent < k) txq.reclaim();
      }
      for (let i = sent; i < k; i++) pool.free(bufs[i]);
      echoed += sent;
    }
    txq.reclaim();
    return echoed;
  };
  let echoed = 0, polled = 0;
  if (rounds > 0) {
    say({ event: "waiting", phase: "latency" });
    echoed = echoRounds(
      rounds,
      () => wait(Math.max(0, Math.min(5000, deadline - Date.now()))).how,
    );
    say({ event: "echoed", phase: "latency", echoed });
  }
  if (pollRounds > 0) {
    say({ event: "waiting", phase: "poll" });
    polled = echoRounds(pollRounds, () => {
      while (!vq.hasUsed() && Date.now() < deadline) { /* spin, as a polling driver does */ }
      return "poll";
    });
    say({ event: "echoed", phase: "poll", echoed: polled });
  }
  while (txq.vq.inFlight > 0 && Date.now() < deadline) txq.reclaim();
  if (echoed < rounds || polled < pollRounds) ok = false;
  const spare = pool.alloc(); // the pool still hands out buffers: nothing leaked into limbo
  if (spare === NO_BUFFER) ok = false;
  else pool.free(spare);
  say({
    event: "done",
    ok,
    echoed,
    polled,
    hows,
    wakeups: irq.wakeups,
    alreadyPending: irq.alreadyPending,
    timeouts: irq.timeouts,
    signals: irq.signals,
    rxPackets: rxq.packets,
  });
  irq.close();
  extra?.close();
  // Closed: the queue is back to polling, with no vector.
  if (transportOf(port).queueVector(vq.index) !== 0xffff) return 4;
  return ok ? 0 : 3;
}

guestMain(run);

/** The port's modern virtio-pci transport (this program runs on kernel VFIO only). */
function transportOf(port: VirtioNetPort): VirtioPciTransport {
  return port.transport as VirtioPciTransport;
}
