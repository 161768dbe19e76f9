/**
 * Guest side of the RSS tests (`--allow-ffi` only).
 *
 *     deno run --allow-ffi tests/guest/rss.ts predict --port P --pairs 4 --count N [--bad]
 *     deno run --allow-ffi tests/guest/rss.ts hash --port P --pairs 2 --count N
 *     deno run --allow-ffi tests/guest/rss.ts lacks --port P --pairs 2
 *
 * predict: programs RSS over the pairs (with --bad: first a rotated table, then a series
 * of malformed rules that must each be refused with the rule in force unchanged), prints
 * `{"event":"ready"}`, receives N UDP test frames on every queue and checks each against
 * the driver's own prediction: the queue from its Toeplitz hash and indirection table, and
 * (with VIRTIO_NET_F_HASH_REPORT) the hash value and type the device reported.
 *
 * hash: automatic steering with hash reports (HASH_CONFIG, a device without RSS): every
 * packet's reported hash and type equal the driver's computation.
 *
 * lacks: on a device without VIRTIO_NET_F_RSS, asking for RSS must fail with UNSUPPORTED
 * and leave automatic steering in force.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  DriverError,
  openPort,
  predictRss,
  type RssPrediction,
  type RssSteeringParams,
  type RssSteeringRule,
  type SteeringRule,
  ToeplitzHasher,
  type VirtioNetPort,
} from "../../low_level.ts";
import { UDP_TEST_MAGIC } from "../bed/frames.ts";
import { guestMain, runMode } from "./guest_main.ts";

/** Offset of the UDP test payload: Ethernet (14) + IPv4 (20) + UDP (8). */
const UDP_PAYLOAD = 42;

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string" },
    pairs: { type: "string", default: "4" },
    count: { type: "string", default: "2048" },
    "timeout-ms": { type: "string", default: "120000" },
    bad: { type: "boolean", default: false },
  },
  allowPositionals: true,
});

/** Tries `rule`; it must be refused with `code` and leave the rule in force unchanged. */
function refused(port: VirtioNetPort, rule: SteeringRule, code: string): string {
  const before = JSON.stringify(port.steering.current, replacer);
  try {
    port.steering.set(rule);
  } catch (e) {
    if (!(e instanceof DriverError)) throw e;
    const after = JSON.stringify(port.steering.current, replacer);
    if (e.code !== code) throw new Error(`expected ${code}, got ${e.code}: ${e.message}`);
    if (after !== before) throw new Error(`the rule changed: ${before} -> ${after}`);
    return e.message;
  }
  throw new Error(`${JSON.stringify(rule, replacer)} was accepted`);
}

function replacer(_k: string, v: unknown): unknown {
  return v instanceof Uint8Array ? Array.from(v) : v;
}

function predict(port: VirtioNetPort, pairs: number): number {
  const errors: string[] = [];
  if (values.bad) {
    port.steering.set({
      mode: "rss",
      pairs,
      indirectionTable: Array.from({ length: 64 }, (_, i) => (i + 1) % pairs),
    });
    const rss = port.steering.current as Required<RssSteeringRule>;
    errors.push(refused(port, { ...rss, indirectionTable: [0, 1, 2] }, "BAD_ARGUMENT"));
    errors.push(refused(port, { ...rss, key: new Uint8Array(10) }, "BAD_ARGUMENT"));
    errors.push(refused(port, { ...rss, key: new Uint8Array(200) }, "BAD_ARGUMENT"));
    errors.push(
      refused(port, { ...rss, indirectionTable: [0, 1, 2, pairs + 3] }, "BAD_ARGUMENT"),
    );
    errors.push(refused(port, { ...rss, hashTypes: 1 << 20 }, "BAD_ARGUMENT"));
    errors.push(refused(port, { ...rss, pairs: pairs + 5 }, "BAD_ARGUMENT"));
    errors.push(refused(port, { mode: "auto", pairs: 0 }, "BAD_ARGUMENT"));
  } else {
    port.steering.set({ mode: "rss", pairs });
  }
  const rule = port.steering.current as Required<RssSteeringRule>;
  console.log(JSON.stringify({ event: "ready", rule, errors }, replacer));
  return check(port, {
    key: new ToeplitzHasher(rule.key),
    hashTypes: rule.hashTypes,
    indirectionTable: rule.indirectionTable,
    unclassifiedQueue: rule.unclassifiedQueue,
    maxTxVq: rule.pairs,
  }, true);
}

/**
 * Hash reports without RSS (VIRTIO_NET_CTRL_MQ_HASH_CONFIG) under automatic steering:
 * every packet's reported hash and type equal the driver's own computation.
 */
function hashOnly(port: VirtioNetPort, pairs: number): number {
  port.steering.set({ mode: "auto", pairs, hashReport: {} });
  const rule = port.steering.current;
  console.log(JSON.stringify({ event: "ready", rule }, replacer));
  const h = (rule as { hashReport: { hashTypes: number; key: Uint8Array } }).hashReport;
  return check(port, {
    key: new ToeplitzHasher(h.key),
    hashTypes: h.hashTypes,
    indirectionTable: [0],
    unclassifiedQueue: 0,
  }, false);
}

/**
 * Receives `--count` UDP test frames on every queue and compares each with the prediction
 * from `params`: its hash and hash type always, its queue when `queues` is set.
 */
function check(port: VirtioNetPort, params: RssSteeringParams, queues: boolean): number {
  const withHash = port.headerSize === 20;
  const pool = port.pool, data = pool.data;
  const bufs = new Uint32Array(32), lens = new Uint32Array(32);
  const expected = Number(values.count);
  const perQueue = new Array(port.queuePairs).fill(0);
  const flows = new Set<number>();
  const out: RssPrediction = { queue: 0, hash: 0, report: 0 };
  const mismatches: string[] = [];
  let received = 0, queueOk = 0, hashOk = 0, reportOk = 0, other = 0;
  const deadline = Date.now() + Number(values["timeout-ms"]);
  while (received < expected && Date.now() < deadline) {
    for (let q = 0; q < port.queuePairs; q++) {
      const rx = port.rx(q);
      const n = rx.rxBurst(bufs, lens, 32);
      for (let i = 0; i < n; i++) {
        const off = port.frameOffset(bufs[i]);
        const v = new DataView(data.buffer, off, lens[i]);
        if (lens[i] >= UDP_PAYLOAD + 16 && v.getUint32(UDP_PAYLOAD) === UDP_TEST_MAGIC) {
          received++;
          perQueue[q]++;
          flows.add(v.getUint32(UDP_PAYLOAD + 12));
          predictRss(data, off, lens[i], params, out);
          if (!queues || out.queue === q) queueOk++;
          const hash = withHash ? rx.hashValue(bufs[i]) : out.hash;
          const report = withHash ? rx.hashReport(bufs[i]) : out.report;
          if (hash === out.hash) hashOk++;
          if (report === out.report) reportOk++;
          if (((queues && out.queue !== q) || hash !== out.hash) && mismatches.length < 5) {
            mismatches.push(
              `q${q} predicted q${out.queue}, hash 0x${hash.toString(16)} predicted 0x${
                out.hash.toString(16)
              }`,
            );
          }
        } else other++;
        pool.free(bufs[i]);
      }
    }
  }
  console.log(JSON.stringify({
    event: "done",
    received,
    distinctFlows: flows.size,
    queueOk,
    hashOk,
    reportOk,
    hashReported: withHash,
    perQueue,
    other,
    mismatches,
  }));
  return received === expected && queueOk === received && hashOk === received ? 0 : 3;
}

function lacks(port: VirtioNetPort): number {
  const message = refused(port, { mode: "rss", pairs: port.queuePairs }, "UNSUPPORTED");
  console.log(JSON.stringify({ event: "done", message, current: port.steering.current }));
  return 0;
}

guestMain(() => {
  if (!values.port) throw new Error("--port is required");
  const pairs = Number(values.pairs);
  if (values.bad) {
    // More pairs than max_virtqueue_pairs: refused before anything is taken for good.
    try {
      openPort(values.port, { bind: true, queuePairs: 999 }).close();
      throw new Error("999 queue pairs were accepted");
    } catch (e) {
      if (!(e instanceof DriverError) || e.code !== "BAD_ARGUMENT") throw e;
      console.log(JSON.stringify({ event: "too-many-pairs", message: e.message }));
    }
  }
  const port = openPort(values.port, { bind: true, queuePairs: pairs });
  return runMode(port, positionals[0], {
    predict: (p) => predict(p, pairs),
    hash: (p) => hashOnly(p, pairs),
    lacks,
  });
});
