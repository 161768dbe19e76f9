/**
 * The source text of every module a forwarding worker runs, imported as text so that it
 * is part of the program's static module graph.
 *
 * Why: `new Worker(fileUrl)` needs read permission for the file (Deno checks it when the
 * worker loads its modules), and l2fwd runs with `--allow-ffi` only. A worker made from a
 * blob: URL needs none, so worker_loader.ts builds the worker's module graph from blob:
 * URLs of these texts. A module the worker imports that is missing here makes
 * {@linkcode workerSources} users fail with a message naming it: add it below.
 *
 * @module
 */

import dataPath from "./data_path.ts" with { type: "text" };
import forwarder from "./forwarder.ts" with { type: "text" };
import generator from "./generator.ts" with { type: "text" };
import genFrame from "./gen_frame.ts" with { type: "text" };
import txFirst from "./tx_first.ts" with { type: "text" };
import latency from "./latency.ts" with { type: "text" };
import clock from "./clock.ts" with { type: "text" };
import control from "./control.ts" with { type: "text" };
import counters from "./counters.ts" with { type: "text" };
import notifier from "./notifier.ts" with { type: "text" };
import partitionPool from "./partition_pool.ts" with { type: "text" };
import pcapRing from "./pcap_ring.ts" with { type: "text" };
import prewarm from "./prewarm.ts" with { type: "text" };
import scriptApi from "./script_api.ts" with { type: "text" };
import scriptBurst from "./script_burst.ts" with { type: "text" };
import steeringMailbox from "./steering_mailbox.ts" with { type: "text" };
import worker from "./worker.ts" with { type: "text" };
import applyMode from "./fwd_modes/apply_mode.ts" with { type: "text" };
import fiveTupleSwap from "./fwd_modes/five_tuple_swap.ts" with { type: "text" };
import icmpEcho from "./fwd_modes/icmp_echo.ts" with { type: "text" };
import l2Header from "./fwd_modes/l2_header.ts" with { type: "text" };
import macSwap from "./fwd_modes/mac_swap.ts" with { type: "text" };
import fwdModes from "./fwd_modes/modes.ts" with { type: "text" };
import workerSpec from "./worker_spec.ts" with { type: "text" };
import errors from "../errors.ts" with { type: "text" };
import eventfd from "../../ffi/eventfd.ts" with { type: "text" };
import eventfdWriter from "../../ffi/eventfd_writer.ts" with { type: "text" };
import libc from "../../ffi/libc.ts" with { type: "text" };
import lazyLibrary from "../../ffi/lazy_library.ts" with { type: "text" };
import doorbell from "../dma/doorbell.ts" with { type: "text" };
import packetBuffers from "../dma/packet_buffers.ts" with { type: "text" };
import rxQueue from "../net/rx_queue.ts" with { type: "text" };
import txQueue from "../net/tx_queue.ts" with { type: "text" };
import queueCounters from "../net/queue_counters.ts" with { type: "text" };
import netHeader from "../net/header.ts" with { type: "text" };
import indirectTable from "../virtio/indirect_table.ts" with { type: "text" };
import packedInOrder from "../virtio/packed_in_order.ts" with { type: "text" };
import netOffloads from "../net/offloads.ts" with { type: "text" };
import rxOffload from "../net/rx_offload.ts" with { type: "text" };
import frameClass from "../net/frame_class.ts" with { type: "text" };
import txOffload from "../net/tx_offload.ts" with { type: "text" };
import packedQueue from "../virtio/packed_queue.ts" with { type: "text" };
import packedRingMath from "../virtio/packed_ring_math.ts" with { type: "text" };
import ringFormat from "../virtio/ring_format.ts" with { type: "text" };
import splitInOrder from "../virtio/split_in_order.ts" with { type: "text" };
import splitQueue from "../virtio/split_queue.ts" with { type: "text" };
import ringMath from "../virtio/ring_math.ts" with { type: "text" };
import virtqueue from "../virtio/virtqueue.ts" with { type: "text" };

const at = (path: string) => new URL(path, import.meta.url).href;

/** URL of the worker's entry module. */
export const WORKER_ENTRY: string = at("./worker.ts");

/**
 * Module URL → TypeScript source of everything the worker imports.
 *
 * @example
 * ```ts
 * import { WORKER_ENTRY, workerSources } from "./worker_sources.ts";
 * workerSources.has(WORKER_ENTRY); // true
 * ```
 */
export const workerSources: ReadonlyMap<string, string> = new Map([
  [at("./data_path.ts"), dataPath],
  [at("./forwarder.ts"), forwarder],
  [at("./generator.ts"), generator],
  [at("./gen_frame.ts"), genFrame],
  [at("./tx_first.ts"), txFirst],
  [at("./latency.ts"), latency],
  [at("./clock.ts"), clock],
  [at("./control.ts"), control],
  [at("./counters.ts"), counters],
  [at("./notifier.ts"), notifier],
  [at("./partition_pool.ts"), partitionPool],
  [at("./pcap_ring.ts"), pcapRing],
  [at("./prewarm.ts"), prewarm],
  [at("./script_api.ts"), scriptApi],
  [at("./script_burst.ts"), scriptBurst],
  [at("./steering_mailbox.ts"), steeringMailbox],
  [WORKER_ENTRY, worker],
  [at("./fwd_modes/apply_mode.ts"), applyMode],
  [at("./fwd_modes/five_tuple_swap.ts"), fiveTupleSwap],
  [at("./fwd_modes/icmp_echo.ts"), icmpEcho],
  [at("./fwd_modes/l2_header.ts"), l2Header],
  [at("./fwd_modes/mac_swap.ts"), macSwap],
  [at("./fwd_modes/modes.ts"), fwdModes],
  [at("./worker_spec.ts"), workerSpec],
  [at("../errors.ts"), errors],
  [at("../../ffi/eventfd.ts"), eventfd],
  [at("../../ffi/eventfd_writer.ts"), eventfdWriter],
  [at("../../ffi/libc.ts"), libc],
  [at("../../ffi/lazy_library.ts"), lazyLibrary],
  [at("../dma/doorbell.ts"), doorbell],
  [at("../dma/packet_buffers.ts"), packetBuffers],
  [at("../net/rx_queue.ts"), rxQueue],
  [at("../net/tx_queue.ts"), txQueue],
  [at("../net/queue_counters.ts"), queueCounters],
  [at("../net/header.ts"), netHeader],
  [at("../virtio/indirect_table.ts"), indirectTable],
  [at("../virtio/packed_in_order.ts"), packedInOrder],
  [at("../net/offloads.ts"), netOffloads],
  [at("../net/rx_offload.ts"), rxOffload],
  [at("../net/frame_class.ts"), frameClass],
  [at("../net/tx_offload.ts"), txOffload],
  [at("../virtio/packed_queue.ts"), packedQueue],
  [at("../virtio/packed_ring_math.ts"), packedRingMath],
  [at("../virtio/ring_format.ts"), ringFormat],
  [at("../virtio/split_in_order.ts"), splitInOrder],
  [at("../virtio/split_queue.ts"), splitQueue],
  [at("../virtio/ring_math.ts"), ringMath],
  [at("../virtio/virtqueue.ts"), virtqueue],
]);

/**
 * The modules whose code forwards frames: the worker imports them once per ring format
 * (`./data_path.ts?copy=FORMAT`, see worker_loader.ts), each copy with its own type
 * feedback (frame_class.ts too: the queues' per-frame statistics). The ring classes stay shared: a copy sees the same class in warm-up and
 * traffic.
 *
 * @example
 * ```ts
 * import { workerCopied } from "./worker_sources.ts";
 * workerCopied.size; // 12
 * ```
 */
export const workerCopied: ReadonlySet<string> = new Set([
  at("./data_path.ts"),
  at("./forwarder.ts"),
  at("./generator.ts"),
  at("./prewarm.ts"),
  // The modes' per-frame code: each copy's type feedback of its own, as the forwarder's.
  at("./fwd_modes/apply_mode.ts"),
  at("./fwd_modes/five_tuple_swap.ts"),
  at("./fwd_modes/icmp_echo.ts"),
  at("./fwd_modes/l2_header.ts"),
  at("./fwd_modes/mac_swap.ts"),
  at("../net/rx_queue.ts"),
  at("../net/tx_queue.ts"),
  at("../net/frame_class.ts"),
]);
