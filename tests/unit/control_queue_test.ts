/**
 * The control virtqueue (src/net/control_queue.ts) over a plain ArrayBuffer. The test
 * plays the device (§5.1.6.5): it reads each command chain from the available ring, writes
 * the ack byte into the chain's second buffer and returns the chain in the used ring.
 */

import assert from "node:assert/strict";
import type { DmaRegion } from "../../src/dma/memory.ts";
import { DriverError } from "../../src/errors.ts";
import {
  CONTROL_BUFFER_BYTES,
  ControlCommandError,
  ControlQueue,
  VIRTIO_NET_CTRL_MQ,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
  VIRTIO_NET_CTRL_RX,
  VIRTIO_NET_CTRL_RX_PROMISC,
  VIRTIO_NET_ERR,
  VIRTIO_NET_OK,
} from "../../src/net/control_queue.ts";
import { splitRingLayout } from "../../src/virtio/ring_math.ts";
import { SplitQueue } from "../../src/virtio/split_queue.ts";

const IOVA = 0x10_0000;

/** The device side of a control queue; `onNotify` decides what it does with new commands. */
class FakeControlDevice {
  readonly v: DataView;
  readonly size: number;
  readonly l: ReturnType<typeof splitRingLayout>;
  /** Heads the device has taken from the available ring and not returned. */
  pending: number[] = [];
  /** Every command seen, as [class, command]. */
  seen: [number, number][] = [];
  onNotify: (dev: FakeControlDevice) => void = (d) => d.answerAll(VIRTIO_NET_OK);
  #lastAvail = 0;
  #usedIdx = 0;

  constructor(memory: ArrayBuffer, size: number) {
    this.v = new DataView(memory);
    this.size = size;
    this.l = splitRingLayout(size);
  }

  notify(): void {
    const availIdx = this.v.getUint16(this.l.availOffset + 2, true);
    while (this.#lastAvail !== availIdx) {
      const slot = this.#lastAvail & (this.size - 1);
      const head = this.v.getUint16(this.l.availOffset + 4 + 2 * slot, true);
      const at = Number(this.v.getBigUint64(this.l.descOffset + 16 * head, true)) - IOVA;
      this.seen.push([this.v.getUint8(at), this.v.getUint8(at + 1)]);
      this.pending.push(head);
      this.#lastAvail = (this.#lastAvail + 1) & 0xffff;
    }
    this.onNotify(this);
  }

  /** Writes `ack` into `head`'s ack buffer and returns it as used entry `id` of `len` bytes. */
  complete(head: number, ack: number, opts: { len?: number; id?: number } = {}): void {
    const tail = this.v.getUint16(this.l.descOffset + 16 * head + 14, true);
    const ackAt = Number(this.v.getBigUint64(this.l.descOffset + 16 * tail, true)) - IOVA;
    this.v.setUint8(ackAt, ack);
    const slot = this.#usedIdx & (this.size - 1);
    this.v.setUint32(this.l.usedOffset + 4 + 8 * slot, opts.id ?? head, true);
    this.v.setUint32(this.l.usedOffset + 8 + 8 * slot, opts.len ?? 1, true);
    this.#usedIdx = (this.#usedIdx + 1) & 0xffff;
    this.v.setUint16(this.l.usedOffset + 2, this.#usedIdx, true);
    this.pending = this.pending.filter((h) => h !== head);
  }

  answerAll(ack: number): void {
    for (const h of [...this.pending]) this.complete(h, ack);
  }
}

function setup(size = 16) {
  const ringBytes = splitRingLayout(size).totalBytes;
  const ctrlAt = Math.ceil(ringBytes / 4096) * 4096;
  const memory = new ArrayBuffer(ctrlAt + CONTROL_BUFFER_BYTES);
  const dev = new FakeControlDevice(memory, size);
  const vq = new SplitQueue(memory, 0, {
    index: 8,
    size,
    eventIdx: false,
    notify: dev,
    name: "controlq of test",
  });
  // Only buffer and iova of the region are used.
  const region = { buffer: memory, iova: IOVA } as unknown as DmaRegion;
  return { dev, vq, control: new ControlQueue("0000:00:04.0", vq, region, ctrlAt) };
}

const promisc = (c: ControlQueue, timeoutMs?: number) =>
  c.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, new Uint8Array([1]), timeoutMs);
const pairsSet = (c: ControlQueue, timeoutMs?: number) =>
  c.command(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, new Uint8Array([2, 0]), timeoutMs);

function assertMisbehaved(fn: () => unknown, what: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DriverError, `expected DriverError, got ${e}`);
    assert.ok(!(e instanceof ControlCommandError), `expected no ControlCommandError: ${e}`);
    assert.equal(e.code, "DEVICE_MISBEHAVED");
    assert.match(e.message, what);
    return true;
  });
}

const BROKEN =
  /0000:00:04\.0's control queue is broken \(.+\), so VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET was not sent: restart the port/;

Deno.test("a command answered OK returns, one answered ERR throws, and the queue stays usable", () => {
  const { dev, vq, control } = setup();
  promisc(control);
  dev.onNotify = (d) => d.answerAll(VIRTIO_NET_ERR);
  assert.throws(() => pairsSet(control), (e: unknown) => {
    assert.ok(e instanceof ControlCommandError);
    assert.equal(e.ack, VIRTIO_NET_ERR);
    return true;
  });
  dev.onNotify = (d) => d.answerAll(VIRTIO_NET_OK);
  promisc(control);
  assert.deepEqual(dev.seen, [[0, 0], [4, 0], [0, 0]]);
  assert.equal(control.commands, 3);
  assert.equal(control.broken, null);
  assert.equal(vq.inFlight, 0);
});

Deno.test("a command that timed out is never taken as the answer to the next one", () => {
  const { dev, control } = setup();
  dev.onNotify = () => {}; // the device sits on the command
  assertMisbehaved(
    () => promisc(control, 20),
    /did not answer VIRTIO_NET_CTRL_RX_PROMISC within 20 ms/,
  );
  // It answers late, when it is next notified: only the stale command, with OK.
  dev.onNotify = (d) => d.complete(d.pending[0], VIRTIO_NET_OK);
  assertMisbehaved(() => pairsSet(control, 20), BROKEN);
  assert.deepEqual(dev.seen, [[0, 0]], "the second command was not sent");
  assertMisbehaved(() => pairsSet(control, 20), BROKEN);
});

Deno.test("an ack reported with the wrong length marks the control queue broken", () => {
  const { dev, control } = setup();
  dev.onNotify = (d) => d.complete(d.pending[0], VIRTIO_NET_OK, { len: 0 });
  assertMisbehaved(
    () => promisc(control),
    /reported 0 bytes written for the 1-byte ack of VIRTIO_NET_CTRL_RX_PROMISC/,
  );
  dev.onNotify = (d) => d.answerAll(VIRTIO_NET_OK);
  assertMisbehaved(() => pairsSet(control), BROKEN);
  assert.equal(dev.seen.length, 1);
});

Deno.test("a completion naming a descriptor not in flight marks the control queue broken", () => {
  const { dev, control } = setup();
  // The chain returned by its tail (the ack descriptor), not its head.
  dev.onNotify = (d) => d.complete(d.pending[0], VIRTIO_NET_OK, { id: d.pending[0] + 1 });
  assertMisbehaved(() => promisc(control), /controlq of test: used entry 0 names descriptor/);
  dev.onNotify = (d) => d.answerAll(VIRTIO_NET_OK);
  assertMisbehaved(() => pairsSet(control), BROKEN);
  assert.equal(dev.seen.length, 1);
});

Deno.test("a control queue too small for a command and its ack is refused at once", () => {
  const { dev, control } = setup(1);
  const t0 = performance.now();
  assertMisbehaved(
    () => promisc(control, 1000),
    /control queue has 1 descriptor\(s\), fewer than the 2/,
  );
  assert.ok(performance.now() - t0 < 500, "no wait for an answer that cannot come");
  assert.equal(dev.seen.length, 0);
});
