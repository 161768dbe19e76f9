/**
 * The device side of the control virtqueue that the vhost-user transport serves itself
 * (src/virtio/vhost_user_control.ts), over a ring in an ArrayBuffer: driven by the real
 * driver side (SplitQueue + the net ControlQueue) for the commands, and by hand-written
 * descriptor chains for everything a broken driver could put there (virtio 1.x §2.7,
 * §5.1.6.5). SET_VRING_ENABLE is a stub that records the pairs asked for.
 */

import assert from "node:assert/strict";
import type { DmaRegion } from "../../src/dma/memory.ts";
import { ControlCommandError, ControlQueue } from "../../src/net/control_queue.ts";
import { splitRingLayout } from "../../src/virtio/ring_math.ts";
import { SplitQueue } from "../../src/virtio/split_queue.ts";
import {
  CTRL_ERR,
  CTRL_MQ,
  CTRL_MQ_VQ_PAIRS_SET,
  CTRL_OK,
  DeviceControlQueue,
  type DeviceMemory,
  netControlHandler,
} from "../../src/virtio/vhost_user_control.ts";

const BASE = 2 ** 32; // IOVA of byte 0 of the test memory
const SIZE = 8;
const layout = splitRingLayout(SIZE);
const CMD_AT = 8192; // the net ControlQueue's command buffer
const RAW_AT = 0x30000; // hand-written buffers

function setup(
  opts: { mq?: boolean; maxPairs?: number; eventIdx?: boolean; failSet?: boolean } = {},
) {
  const buffer = new ArrayBuffer(0x40000);
  const memory: DeviceMemory = {
    bytes(addr, len) {
      const o = addr - BASE;
      return o >= 0 && o + len <= buffer.byteLength ? new Uint8Array(buffer, o, len) : null;
    },
  };
  const pairsSet: number[] = [];
  const device = new DeviceControlQueue({
    name: "controlq of vhost-user:/x.sock",
    size: SIZE,
    memory,
    descAddr: BASE + layout.descOffset,
    availAddr: BASE + layout.availOffset,
    usedAddr: BASE + layout.usedOffset,
    eventIdx: opts.eventIdx ?? false,
    handle: netControlHandler({
      mq: opts.mq ?? true,
      maxPairs: opts.maxPairs ?? 4,
      setPairs: (n) => {
        if (opts.failSet) throw new Error("back-end refused SET_VRING_ENABLE");
        pairsSet.push(n);
      },
    }),
  });
  const vq = new SplitQueue(buffer, 0, {
    index: 8,
    size: SIZE,
    eventIdx: opts.eventIdx ?? false,
    notify: device,
    name: "controlq",
  });
  const region = { buffer, iova: BASE } as unknown as DmaRegion;
  const control = new ControlQueue("vhost-user:/x.sock", vq, region, CMD_AT);
  const v = new DataView(buffer);
  const desc = (i: number, addr: number, len: number, flags: number, next = 0) => {
    const o = layout.descOffset + 16 * i;
    v.setUint32(o, (BASE + addr) % 2 ** 32, true);
    v.setUint32(o + 4, Math.floor((BASE + addr) / 2 ** 32), true);
    v.setUint32(o + 8, len, true);
    v.setUint16(o + 12, flags, true);
    v.setUint16(o + 14, next, true);
  };
  let availIdx = 0;
  const publish = (...heads: number[]) => {
    for (const h of heads) v.setUint16(layout.availOffset + 4 + 2 * (availIdx++ % SIZE), h, true);
    v.setUint16(layout.availOffset + 2, availIdx & 0xffff, true);
  };
  const used = (k: number) => ({
    idx: v.getUint16(layout.usedOffset + 2, true),
    id: v.getUint32(layout.usedOffset + 4 + 8 * k, true),
    len: v.getUint32(layout.usedOffset + 8 + 8 * k, true),
  });
  return { buffer, v, device, vq, control, pairsSet, desc, publish, used };
}

const NEXT = 1, WRITE = 2, INDIRECT = 4;

Deno.test("VQ_PAIRS_SET within 1..max_virtqueue_pairs is answered OK after the pairs are applied", () => {
  const s = setup();
  s.control.command(CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, new Uint8Array([3, 0]));
  s.control.command(CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, new Uint8Array([1, 0]));
  assert.deepEqual(s.pairsSet, [3, 1]);
  assert.equal(s.device.answered, 2);
});

Deno.test("VQ_PAIRS_SET of 0, of more than max_virtqueue_pairs, or without MQ is VIRTIO_NET_ERR", () => {
  const s = setup({ maxPairs: 2 });
  for (const n of [0, 3, 0x8001]) {
    assert.throws(
      () => s.control.command(CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, new Uint8Array([n & 0xff, n >> 8])),
      (e: unknown) => e instanceof ControlCommandError && e.ack === CTRL_ERR,
    );
  }
  const noMq = setup({ mq: false });
  assert.throws(
    () => noMq.control.command(CTRL_MQ, 0, new Uint8Array([1, 0])),
    ControlCommandError,
  );
  assert.deepEqual([...s.pairsSet, ...noMq.pairsSet], []);
  assert.equal(s.control.broken, null, "a refused command leaves the queue working");
});

Deno.test("every other class or command, or a wrong data length, is VIRTIO_NET_ERR", () => {
  const s = setup();
  const refused = (cls: number, cmd: number, data: number[]) =>
    assert.throws(() => s.control.command(cls, cmd, new Uint8Array(data)), ControlCommandError);
  refused(0, 0, [1]); // VIRTIO_NET_CTRL_RX_PROMISC
  refused(1, 1, [2, 0, 0, 0, 0, 1]); // VIRTIO_NET_CTRL_MAC_ADDR_SET
  refused(CTRL_MQ, 1, new Array(60).fill(0)); // RSS_CONFIG
  refused(CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, [2, 0, 0]);
  refused(CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, [2]);
  assert.deepEqual(s.pairsSet, []);
});

Deno.test("a failure to apply the pairs (the back-end refused) is VIRTIO_NET_ERR and kept for the transport", () => {
  const s = setup({ failSet: true });
  assert.throws(() => s.control.command(CTRL_MQ, 0, new Uint8Array([2, 0])), ControlCommandError);
  assert.match(String(s.device.lastError), /refused SET_VRING_ENABLE/);
});

Deno.test("a command spread over several readable descriptors is read whole; the ack goes to the first writable byte", () => {
  const s = setup();
  const b = new Uint8Array(s.buffer);
  b.set([CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET], RAW_AT);
  b.set([2], RAW_AT + 64);
  b.set([0], RAW_AT + 128);
  b[RAW_AT + 256] = 0xff;
  s.desc(0, RAW_AT, 2, NEXT, 5);
  s.desc(5, RAW_AT + 64, 1, NEXT, 3);
  s.desc(3, RAW_AT + 128, 1, NEXT, 1);
  s.desc(1, RAW_AT + 256, 4, WRITE);
  s.publish(0);
  assert.equal(s.device.process(), 1);
  assert.equal(b[RAW_AT + 256], CTRL_OK);
  assert.deepEqual(s.used(0), { idx: 1, id: 0, len: 1 });
  assert.deepEqual(s.pairsSet, [2]);
});

Deno.test("an indirect table is followed; a nested one, or one with NEXT, is refused", () => {
  const s = setup();
  const b = new Uint8Array(s.buffer);
  const table = RAW_AT + 0x1000;
  const ind = (i: number, addr: number, len: number, flags: number, next = 0) => {
    const o = table + 16 * i;
    s.v.setUint32(o, (BASE + addr) % 2 ** 32, true);
    s.v.setUint32(o + 4, Math.floor((BASE + addr) / 2 ** 32), true);
    s.v.setUint32(o + 8, len, true);
    s.v.setUint16(o + 12, flags, true);
    s.v.setUint16(o + 14, next, true);
  };
  b.set([CTRL_MQ, 0, 4, 0], RAW_AT);
  ind(0, RAW_AT, 4, NEXT, 1);
  ind(1, RAW_AT + 64, 1, WRITE);
  s.desc(2, table, 32, INDIRECT);
  s.desc(3, table, 32, INDIRECT | NEXT, 4);
  s.publish(2, 3);
  assert.equal(s.device.process(), 2);
  assert.deepEqual([s.used(0).len, s.used(1).len], [1, 0]);
  assert.equal(b[RAW_AT + 64], CTRL_OK);
  ind(1, table, 16, INDIRECT); // an indirect descriptor inside the table
  b[RAW_AT + 64] = 0xff;
  s.desc(2, table, 32, INDIRECT);
  s.publish(2);
  s.device.process();
  assert.equal(s.used(2).len, 0);
  assert.equal(b[RAW_AT + 64], 0xff, "nothing written for a refused chain");
});

Deno.test("chains that cannot be answered come back with length 0: a loop, readable after writable, no writable byte, unmapped memory, too short", () => {
  const s = setup();
  s.desc(0, RAW_AT, 2, NEXT, 0); // points at itself
  s.desc(1, RAW_AT + 64, 1, WRITE | NEXT, 2);
  s.desc(2, RAW_AT, 2, 0); // readable after writable
  s.desc(3, RAW_AT, 2, 0); // no writable part
  s.desc(4, 0x1000000, 2, NEXT, 5); // outside the memory
  s.desc(5, RAW_AT + 64, 1, WRITE);
  s.desc(6, RAW_AT, 1, NEXT, 7); // one byte: no command byte
  s.desc(7, RAW_AT + 64, 1, WRITE);
  s.publish(0, 1, 3, 4, 6);
  assert.equal(s.device.process(), 5);
  assert.deepEqual([0, 1, 2, 3, 4].map((k) => s.used(k).len), [0, 0, 0, 0, 0]);
  assert.deepEqual([0, 1, 2, 3, 4].map((k) => s.used(k).id), [0, 1, 3, 4, 6]);
  assert.equal(s.device.broken, null);
});

Deno.test("a head out of range, or more available entries than the ring holds, stops the queue with the reason", () => {
  const s = setup();
  s.publish(SIZE); // descriptor 8 of 8
  assert.equal(s.device.process(), 0);
  assert.match(s.device.broken!, /names descriptor 8 of 8/);
  assert.equal(s.used(0).idx, 0);
  const t = setup();
  t.v.setUint16(layout.availOffset + 2, SIZE + 1, true);
  assert.equal(t.device.process(), 0);
  assert.match(t.device.broken!, /9 entries ahead/);
  t.v.setUint16(layout.availOffset + 2, 1, true);
  assert.equal(t.device.process(), 0, "a broken queue answers nothing more");
});

Deno.test("with EVENT_IDX the device asks to be notified of the next command (avail_event)", () => {
  const s = setup({ eventIdx: true });
  s.control.command(CTRL_MQ, 0, new Uint8Array([2, 0]));
  s.control.command(CTRL_MQ, 0, new Uint8Array([1, 0]));
  assert.equal(s.v.getUint16(layout.usedOffset + 4 + 8 * SIZE, true), 2);
  assert.deepEqual(s.pairsSet, [2, 1]);
});

Deno.test("the interrupt is signalled only when the driver asked for one", () => {
  const s = setup();
  let signals = 0;
  s.device.signal = () => signals++;
  s.control.command(CTRL_MQ, 0, new Uint8Array([2, 0]));
  assert.equal(signals, 0, "SplitQueue sets VIRTQ_AVAIL_F_NO_INTERRUPT");
  s.vq.enableInterrupts();
  s.control.command(CTRL_MQ, 0, new Uint8Array([2, 0]));
  assert.equal(signals, 1);
});
