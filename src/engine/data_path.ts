/**
 * The forwarding data path, as one module a forwarding worker imports once per ring format
 * (`./data_path.ts?copy=split`, `?copy=packed`): loaded from blobs (worker_loader.ts), each
 * copy has its own instances of these modules and so its own V8 type feedback, which then
 * sees one ring class, as DPDK picks its burst functions by the negotiated ring format.
 * Warming both formats in one copy made every ring call polymorphic and cost 13–33 % of
 * the packed ring's rate in A/B runs (docs/performance.md, "What each change bought").
 *
 * @example
 * ```ts
 * import { Forwarder, RxQueue, TxQueue } from "./data_path.ts";
 * typeof Forwarder === "function" && typeof RxQueue === "function" && typeof TxQueue; // "function"
 * ```
 *
 * @module
 */

export { Forwarder } from "./forwarder.ts";
export { Generator } from "./generator.ts";
export { prewarm } from "./prewarm.ts";
export { RxQueue } from "../net/rx_queue.ts";
export { TxQueue } from "../net/tx_queue.ts";
