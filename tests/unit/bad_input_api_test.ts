/**
 * Bad input through the public API, table-driven (issue 13, item 5; the command lines are
 * bad_input_test.ts): openPort's options, VirtioNetPort.open, createSharedPool,
 * DmaRegion.allocate, BufferPool, ForwardingEngine.start and prewarm, steering.set and
 * enableRxInterrupts, each refused with one sentence (problem: fix.) and a stable code
 * before any device is touched.
 *
 * "Before any device is touched": openPort's cases name sockets this test listens on (a
 * tripwire that counts connections; none may come) or a PCI address that cannot exist
 * (opening it would say "no PCI device"); the other cases act on fake devices
 * (fake_virtio_pci.ts) whose log must show no reset, no DMA mapping and no notification
 * afterwards, and on a shared pool whose free buffers the engine must not have taken.
 *
 * A script whose handleBurst throws cannot be caught before forwarding: the last test
 * forwards one frame through fake devices into such a script and checks the sentence the
 * engine reports.
 */

import assert from "node:assert/strict";
import {
  BufferPool,
  createSharedPool,
  DmaRegion,
  DriverError,
  ForwardingEngine,
  openPort,
  type PortSpec,
  type SteeringRule,
  type VirtioNetPort,
} from "../../mod.ts";
import { udpFrames } from "../bed/frames.ts";
import { deliverFrame } from "./engine_fake_nic.ts";
import { tripwires } from "./cli_helpers.ts";
import { openFakePort, portDevice } from "./fake_virtio_pci.ts";

const DIR = await Deno.makeTempDir({ prefix: "bad_input_api_" });
const wires = tripwires(DIR);
const { T0, T1 } = wires;
const NO_PCI = "0000:7f:1f.7";
const DROP_FILTER = new URL("../../examples/scripts/drop_filter.ts", import.meta.url).pathname;
Deno.writeTextFileSync(`${DIR}/broken.ts`, "export function handleBurst( {\n");
Deno.writeTextFileSync(`${DIR}/throws.ts`, 'throw new Error("boom at load");\n');
Deno.writeTextFileSync(
  `${DIR}/runtime.ts`,
  'export function handleBurst() {\n  throw new Error("handleBurst exploded");\n}\n',
);

/** Two fake ports on a shared pool, a fake device not yet opened, a small DMA region. */
const pool = createSharedPool(1024, 2048, { hugePages: false });
const devs = [0, 1].map((i) => portDevice(`vfio-user:/bad-input-${i}`));
const ports = devs.map((d) => openFakePort(d, { pool }));
const spare = portDevice("vfio-user:/bad-input-spare");
const region = DmaRegion.allocate(4096, { hugePages: false });
// Released when the test module ends, whichever tests a filter ran.
globalThis.addEventListener("unload", () => {
  for (const p of ports) p.close();
  pool.region.free();
  region.free();
  wires.close();
  Deno.removeSync(DIR, { recursive: true });
});

/** What the fake devices and the pool show now. */
function state() {
  return {
    events: [...devs, spare].map((d) => d.events.filter((e) => e !== "close").length),
    notifications: devs.map((d) => d.bar4.notifications.length),
    poolAvailable: pool.available,
  };
}

/** One row: the call, the error it must throw (a DriverError code or RangeError). */
interface ApiCase {
  name: string;
  call: () => unknown;
  code: string;
  match: RegExp;
}

const refuses = (name: string, code: string, match: RegExp, call: () => unknown) => ({
  name,
  call,
  code,
  match,
});
const start = (options: object, on: readonly VirtioNetPort[] = ports) =>
  ForwardingEngine.start(on, pool, options);
const BAD = "BAD_ARGUMENT";

const CASES: ApiCase[] = [
  // openPort: the options, before the name's socket or PCI function is opened.
  refuses(
    "openPort refuses queuePairs 0 before it connects",
    BAD,
    /queuePairs 0 .* 1 to 32768/,
    () => openPort(T0, { queuePairs: 0 }),
  ),
  refuses(
    "openPort refuses queuePairs 32769, one beyond virtio's most",
    BAD,
    /queuePairs 32769/,
    () => openPort(T0, { queuePairs: 32769 }),
  ),
  refuses(
    "openPort refuses a queueSize that is not a power of two",
    BAD,
    /queueSize 100 is not a queue size/,
    () => openPort(T1, { queueSize: 100 }),
  ),
  refuses(
    "openPort refuses an rxQueueSize of 65536, beyond a split ring's most",
    BAD,
    /rxQueueSize 65536 .* 1 to 32768/,
    () => openPort(T0, { rxQueueSize: 65536 }),
  ),
  refuses(
    "openPort refuses a bufferSize that is not a multiple of 64",
    BAD,
    /bufferSize 100 .* multiple of 64/,
    () => openPort(T0, { bufferSize: 100 }),
  ),
  refuses(
    "openPort refuses poolSize 0",
    BAD,
    /poolSize 0 .* 1 to 16777216/,
    () => openPort(T0, { poolSize: 0 }),
  ),
  refuses(
    "openPort refuses a pool that is not a BufferPool",
    BAD,
    /pool is an object, not a BufferPool/,
    () => openPort(T0, { pool: {} as BufferPool }),
  ),
  refuses(
    "openPort refuses hugePages 'yes' before it looks for the PCI function",
    BAD,
    /hugePages is 'yes'/,
    () => openPort(NO_PCI, { hugePages: "yes" as unknown as boolean }),
  ),
  refuses(
    "openPort refuses bind 1 before it looks for the PCI function",
    BAD,
    /bind is 1, not true or false/,
    () => openPort(NO_PCI, { bind: 1 as unknown as boolean }),
  ),
  refuses(
    "openPort refuses more queuePairs than a vhost-user name's queues=",
    BAD,
    /4 queue pairs is more than .*max_virtqueue_pairs of 2/,
    () => openPort(`${T1}?queues=2`, { queuePairs: 4 }),
  ),
  refuses(
    "openPort refuses a multicast mac",
    BAD,
    /01:00:5e:00:00:01 is a multicast address/,
    () => openPort(T1, { mac: "01:00:5e:00:00:01" }),
  ),
  refuses(
    "openPort refuses maxQueuePairs 129, one beyond vhost-user's most",
    BAD,
    /maxQueuePairs 129 .* 1 to 128/,
    () => openPort(T1, { maxQueuePairs: 129 }),
  ),
  refuses(
    "openPort refuses vfioUser.timeoutMs 0",
    BAD,
    /vfioUser\.timeoutMs 0/,
    () => openPort(T0, { vfioUser: { timeoutMs: 0 } }),
  ),
  refuses(
    "openPort refuses vfioUser.timeoutMs 2^31, beyond setTimeout's most",
    BAD,
    /at most 2147483647/,
    () => openPort(T0, { vfioUser: { timeoutMs: 2 ** 31 } }),
  ),
  refuses(
    "openPort refuses a port name that is not text",
    "BAD_ADDRESS",
    /A port name is text, not number/,
    () => openPort(42 as unknown as string),
  ),
  refuses(
    "openPort refuses a PortSpec of no kind",
    "BAD_ADDRESS",
    /A port name is text, not object/,
    () => openPort({ kind: "tap" } as unknown as PortSpec),
  ),
  refuses(
    "openPort refuses a socket path longer than 107 bytes",
    "BAD_ADDRESS",
    /longer than 107 bytes/,
    () => openPort(`vfio-user:/${"s".repeat(120)}`),
  ),
  refuses(
    "VirtioNetPort.open refuses queuePairs 1.5 before it resets the device",
    BAD,
    /queuePairs 1\.5/,
    () => openFakePort(spare, { queuePairs: 1.5 }),
  ),
  // Memory.
  refuses(
    "createSharedPool refuses 0 buffers",
    BAD,
    /shared pool of 0 buffers .* 1 to 16777216/,
    () => createSharedPool(0),
  ),
  refuses(
    "createSharedPool refuses 16777217 buffers, one beyond its most",
    BAD,
    /16777217 buffers/,
    () => createSharedPool(2 ** 24 + 1),
  ),
  refuses(
    "createSharedPool refuses 100-byte buffers",
    BAD,
    /100-byte buffers .* multiple of 64/,
    () => createSharedPool(16, 100),
  ),
  refuses(
    "createSharedPool refuses 65600-byte buffers, beyond its most",
    BAD,
    /65600-byte buffers .* to 65536/,
    () => createSharedPool(16, 65600),
  ),
  refuses(
    "DmaRegion.allocate refuses 0 bytes",
    BAD,
    /0 bytes of DMA memory is not possible/,
    () => DmaRegion.allocate(0),
  ),
  refuses(
    "DmaRegion.allocate refuses 1.5 bytes",
    BAD,
    /1\.5 bytes of DMA memory/,
    () => DmaRegion.allocate(1.5),
  ),
  refuses(
    "DmaRegion.allocate refuses hugePages 'no'",
    BAD,
    /hugePages is 'no'/,
    () => DmaRegion.allocate(4096, { hugePages: "no" as unknown as boolean }),
  ),
  refuses(
    "new BufferPool refuses 0 buffers",
    "RangeError",
    /A pool of 0 buffers is not possible/,
    () => new BufferPool(region, 0, 0, 2048),
  ),
  refuses(
    "new BufferPool refuses buffers that do not fit its region",
    "RangeError",
    /does not fit the 4096-byte DMA region/,
    () => new BufferPool(region, 0, 3, 2048),
  ),
  // The engine: options before ports, and nothing of the pool taken.
  refuses(
    "ForwardingEngine.start checks its options before its ports",
    BAD,
    /A burst of 0 is not possible/,
    () => start({ burst: 0 }, []),
  ),
  refuses(
    "ForwardingEngine.start refuses burst 257, one beyond its most",
    BAD,
    /A burst of 257/,
    () => start({ burst: 257 }),
  ),
  refuses(
    "ForwardingEngine.start refuses txFull 'later'",
    BAD,
    /txFull 'later' is not a mode/,
    () => start({ txFull: "later" }),
  ),
  refuses(
    "ForwardingEngine.start refuses drainUs -1",
    BAD,
    /drainUs -1 .* from 0 to 1000000000/,
    () => start({ drainUs: -1 }),
  ),
  refuses(
    "ForwardingEngine.start refuses prewarmFrames 1000000001",
    BAD,
    /prewarmFrames 1000000001/,
    () => start({ prewarmFrames: 1e9 + 1 }),
  ),
  refuses(
    "ForwardingEngine.start refuses txFirst 1025 bursts, one beyond tx_first's most",
    BAD,
    /txFirst 1025 .* from 0 to 1024/,
    () => start({ txFirst: 1025 }),
  ),
  refuses(
    "ForwardingEngine.start refuses startTimeoutMs 2^31",
    BAD,
    /startTimeoutMs 2147483648/,
    () => start({ startTimeoutMs: 2 ** 31 }),
  ),
  refuses(
    "ForwardingEngine.start refuses capture of port 2",
    BAD,
    /Capture of port 2/,
    () => start({ capture: { path: `${DIR}/c.pcap`, port: 2 } }),
  ),
  refuses(
    "ForwardingEngine.start refuses a capture queue the ports do not have",
    BAD,
    /queue 1 is not possible: .* below 1/,
    () => start({ capture: { path: `${DIR}/c.pcap`, port: 0, queue: 1 } }),
  ),
  refuses(
    "ForwardingEngine.start refuses a capture file in a directory that does not exist",
    BAD,
    /\/nonexistent\/c\.pcap cannot be written/,
    () => start({ capture: { path: "/nonexistent/c.pcap", port: 0 } }),
  ),
  refuses(
    "ForwardingEngine.start refuses a capture file under /proc",
    BAD,
    /\/proc\/c\.pcap cannot be written/,
    () => start({ capture: { path: "/proc/c.pcap", port: 0 } }),
  ),
  refuses(
    "ForwardingEngine.start refuses a script with a syntax error",
    BAD,
    /broken\.ts does not load/,
    () => start({ script: { path: `${DIR}/broken.ts` } }),
  ),
  refuses(
    "ForwardingEngine.start refuses a script that throws while it loads",
    BAD,
    /throws\.ts does not load \(.*boom at load/,
    () => start({ script: { path: `${DIR}/throws.ts` } }),
  ),
  refuses(
    "ForwardingEngine.start refuses args the script's init rejects",
    BAD,
    /refuses its arguments \(drop_filter: UDP port 'x'/,
    () => start({ script: { path: DROP_FILTER, args: { "udp-port": "x" } } }),
  ),
  refuses(
    "ForwardingEngine.prewarm refuses 0 queue pairs",
    BAD,
    /Warming 0 workers is not possible/,
    () => ForwardingEngine.prewarm(0),
  ),
  // A port's run-time calls, without a command to its device.
  refuses(
    "steering.set refuses an unknown mode",
    BAD,
    /Unknown steering mode 'spray'/,
    () => ports[0].steering.set({ mode: "spray" } as unknown as SteeringRule),
  ),
  refuses(
    "steering.set refuses null",
    BAD,
    /A steering rule is an object .* not null/,
    () => ports[0].steering.set(null as unknown as SteeringRule),
  ),
  refuses(
    "enableRxInterrupts refuses a queue the port does not have",
    BAD,
    /has no receive queue 1: use 0…0/,
    () => ports[0].enableRxInterrupts(1),
  ),
];

for (const c of CASES) {
  Deno.test(c.name, async () => {
    const before = state(), touchedBefore = wires.touched();
    let error: unknown = null;
    try {
      await c.call();
    } catch (e) {
      error = e;
    }
    assert.ok(error !== null, "accepted");
    if (c.code === "RangeError") assert.ok(error instanceof RangeError, String(error));
    else {
      assert.ok(error instanceof DriverError, String(error));
      assert.equal(error.code, c.code, error.message);
    }
    const message = (error as Error).message;
    assert.match(message, c.match);
    assert.match(message, /^[^\n]+: [^\n]+\.$/, `one sentence, problem: fix: ${message}`);
    await new Promise((resolve) => setTimeout(resolve, 20)); // a connection is accepted by now
    assert.equal(wires.touched(), touchedBefore, "a socket was connected to");
    assert.deepEqual(state(), before, "a fake device or the pool was touched");
  });
}

Deno.test("a script whose handleBurst throws stops the engine with one sentence naming it", async () => {
  const pool = createSharedPool(1024, 2048, { hugePages: false });
  const pair = [0, 1].map((i) =>
    openFakePort(portDevice(`vfio-user:/bad-input-run${i}`), { pool })
  );
  let failed: DriverError | null = null;
  const engine = await ForwardingEngine.start(pair, pool, {
    script: { path: `${DIR}/runtime.ts` },
    onError: (e) => failed = e,
  });
  try {
    deliverFrame(pair[0], pool, udpFrames({ seed: 1, count: 1, flows: 1 })[0]);
    const until = performance.now() + 10_000;
    while (!failed && performance.now() < until) await new Promise((r) => setTimeout(r, 5));
    const e = failed as DriverError | null;
    assert.ok(e, "the engine reported no error");
    assert.equal(e.code, "WORKER", e.message);
    assert.match(e.message, /^The worker of queue pair 0 stopped: handleBurst exploded\.$/);
  } finally {
    const stopped = await engine.stop();
    assert.equal(stopped.unsafeToRelease, false);
    for (const p of pair) p.close();
    pool.region.free();
  }
});

Deno.test("the API's bad-input table has at least 30 rows", () => {
  assert.ok(CASES.length >= 30, `${CASES.length} cases`);
});
