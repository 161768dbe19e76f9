/**
 * The device side of a packed control virtqueue (src/virtio/vhost_user_control_packed.ts)
 * over a ring in an ArrayBuffer. The test plays the driver by hand with a DataView, as
 * virtio 1.x §2.8 tells a driver to ("Supplying Buffers to The Device", "Receiving Used
 * Buffers From The Device"): descriptors with AVAIL = the
 * driver's wrap counter and USED its inverse, the buffer id in the last one, the head's
 * flags written last; used descriptors read at the driver's used position and skipped by
 * the chain's length. No driver-side queue class is used.
 */

import assert from "node:assert/strict";
import {
  CTRL_ERR,
  CTRL_MQ,
  CTRL_MQ_VQ_PAIRS_SET,
  CTRL_OK,
  type DeviceMemory,
  netControlHandler,
} from "../../src/virtio/vhost_user_control.ts";
import { PackedDeviceControlQueue } from "../../src/virtio/vhost_user_control_packed.ts";
import {
  RING_EVENT_FLAGS_DESC,
  RING_EVENT_FLAGS_DISABLE,
  RING_EVENT_FLAGS_ENABLE,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_USED,
} from "../../src/virtio/packed_ring_math.ts";

const BASE = 2 ** 32; // IOVA of byte 0 of the test memory
const DESC_AT = 0;
const DRIVER_AT = 0x1000; // driver event suppression area
const DEVICE_AT = 0x1040; // device event suppression area
const RAW_AT = 0x2000; // buffers
const NEXT = 1, WRITE = 2, INDIRECT = 4;

/** One element of a list the driver makes available. */
interface Part {
  at: number; // offset in the test memory (IOVA BASE + at), or an IOVA when `iova`
  len: number;
  write?: boolean;
  flags?: number; // extra flags (INDIRECT, NEXT where it does not belong)
  iova?: boolean;
}

function setup(
  opts: { size?: number; eventIdx?: boolean; mq?: boolean; failSet?: boolean } = {},
) {
  const size = opts.size ?? 4;
  const buffer = new ArrayBuffer(0x10000);
  const memory: DeviceMemory = {
    bytes(addr, len) {
      const o = addr - BASE;
      return o >= 0 && o + len <= buffer.byteLength ? new Uint8Array(buffer, o, len) : null;
    },
  };
  const pairsSet: number[] = [];
  const device = new PackedDeviceControlQueue({
    name: "controlq of vhost-user:/x.sock",
    size,
    memory,
    descAddr: BASE + DESC_AT,
    driverAddr: BASE + DRIVER_AT,
    deviceAddr: BASE + DEVICE_AT,
    eventIdx: opts.eventIdx ?? false,
    handle: netControlHandler({
      mq: opts.mq ?? true,
      maxPairs: 4,
      setPairs: (n) => {
        if (opts.failSet) throw new Error("back-end refused SET_VRING_ENABLE");
        pairsSet.push(n);
      },
    }),
  });
  const v = new DataView(buffer);
  const b = new Uint8Array(buffer);
  // The driver's side of the ring (§2.8.1: both wrap counters start at 1).
  const drv = { next: 0, wrap: true, used: 0, usedWrap: true };
  const lengths = new Map<number, number>(); // buffer id → descriptors in its list
  const flagsAt = (slot: number) => v.getUint16(DESC_AT + 16 * slot + 14, true);
  /** Makes `parts` available as one list with buffer id `id`; returns the head's slot. */
  const offer = (id: number, ...parts: Part[]) => {
    const head = drv.next;
    let headFlags = 0;
    parts.forEach((p, k) => {
      const o = DESC_AT + 16 * drv.next;
      const addr = p.iova ? p.at : BASE + p.at;
      v.setUint32(o, addr % 2 ** 32, true);
      v.setUint32(o + 4, Math.floor(addr / 2 ** 32), true);
      v.setUint32(o + 8, p.len, true);
      // §2.8.6: the id is in the last descriptor; the others get junk the device ignores.
      v.setUint16(o + 12, k === parts.length - 1 ? id : 0xbeef, true);
      const f = (p.write ? WRITE : 0) | (p.flags ?? 0) | (k < parts.length - 1 ? NEXT : 0) |
        (drv.wrap ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED);
      if (k === 0) headFlags = f;
      else v.setUint16(o + 14, f, true);
      if (++drv.next === size) [drv.next, drv.wrap] = [0, !drv.wrap];
    });
    lengths.set(id, parts.length);
    v.setUint16(DESC_AT + 16 * head + 14, headFlags, true); // exposes the list
    return head;
  };
  /** The next used descriptor (§2.8.22), or null; skips its list's length. */
  const takeUsed = () => {
    const o = DESC_AT + 16 * drv.used;
    const flags = flagsAt(drv.used);
    const used = (flags & VIRTQ_DESC_F_USED) !== 0, avail = (flags & VIRTQ_DESC_F_AVAIL) !== 0;
    if (used !== drv.usedWrap || avail !== drv.usedWrap) return null;
    const id = v.getUint16(o + 12, true);
    const slot = drv.used;
    drv.used += lengths.get(id)!;
    if (drv.used >= size) [drv.used, drv.usedWrap] = [drv.used - size, !drv.usedWrap];
    return { slot, id, len: v.getUint32(o + 8, true), write: (flags & WRITE) !== 0 };
  };
  /** A command in `pieces` readable parts plus a 1-byte ack; returns a reader of the ack. */
  const command = (id: number, bytes: number[], pieces = 1) => {
    const at = RAW_AT + 0x100 * (id % 32);
    b.set(bytes, at);
    b[at + 0x80] = 0xff;
    const parts: Part[] = [];
    const cut = Math.ceil(bytes.length / pieces);
    for (let p = 0; p < bytes.length; p += cut) {
      parts.push({ at: at + p, len: Math.min(cut, bytes.length - p) });
    }
    offer(id, ...parts, { at: at + 0x80, len: 1, write: true });
    return () => b[at + 0x80];
  };
  return { v, b, device, pairsSet, drv, offer, takeUsed, command, flagsAt, size };
}

Deno.test("packed: VQ_PAIRS_SET is answered OK, anything else ERR, each with one used descriptor: the list's buffer id, len 1, WRITE, AVAIL = USED = 1", () => {
  const s = setup({ size: 8 });
  const ok = s.command(7, [CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, 3, 0]);
  const err = s.command(9, [1, 1, 2, 0, 0, 0, 0, 1]); // VIRTIO_NET_CTRL_MAC_ADDR_SET
  const tooMany = s.command(3, [CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, 5, 0]); // max is 4
  assert.equal(s.device.process(), 3);
  assert.deepEqual([ok(), err(), tooMany()], [CTRL_OK, CTRL_ERR, CTRL_ERR]);
  assert.deepEqual(s.takeUsed(), { slot: 0, id: 7, len: 1, write: true });
  assert.deepEqual(s.takeUsed(), { slot: 2, id: 9, len: 1, write: true });
  assert.deepEqual(s.takeUsed(), { slot: 4, id: 3, len: 1, write: true });
  assert.equal(s.takeUsed(), null);
  assert.equal(s.flagsAt(0) & (VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED | NEXT), 0x8080);
  assert.deepEqual(s.pairsSet, [3]);
  assert.equal(s.device.answered, 3);
  assert.equal(s.device.process(), 0, "nothing is taken twice");
  const fails = setup({ failSet: true });
  const ack = fails.command(0, [CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, 2, 0]);
  fails.device.process();
  assert.equal(ack(), CTRL_ERR);
  assert.match(String(fails.device.lastError), /refused SET_VRING_ENABLE/);
});

Deno.test("packed: over several laps of a 4-entry ring, used descriptors carry the flipping wrap counter and lists of 2 and 3 skip their length, across the ring's end too", () => {
  const s = setup({ size: 4 });
  let slots = 0;
  for (let k = 0; k < 12; k++) {
    const pieces = k % 2 ? 2 : 1; // lists of 3 and 2 descriptors: some cross slot 3 → 0
    const n = 1 + (k % 4);
    const ack = s.command(k, [CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, n, 0], pieces);
    const wrapBefore = s.drv.usedWrap, slotBefore = s.drv.used;
    assert.equal(s.device.process(), 1, `command ${k}`);
    assert.equal(ack(), CTRL_OK);
    const used = s.takeUsed();
    assert.deepEqual(used, { slot: slotBefore, id: k, len: 1, write: true }, `command ${k}`);
    const f = s.flagsAt(slotBefore);
    assert.equal((f & VIRTQ_DESC_F_AVAIL) !== 0, wrapBefore, `AVAIL of command ${k}`);
    assert.equal((f & VIRTQ_DESC_F_USED) !== 0, wrapBefore, `USED of command ${k}`);
    slots += pieces + 1;
    const p = s.device.position;
    assert.deepEqual(p, {
      availSlot: slots % 4,
      availWrap: Math.floor(slots / 4) % 2 === 0,
      usedSlot: slots % 4,
      usedWrap: Math.floor(slots / 4) % 2 === 0,
    });
    assert.deepEqual([p.usedSlot, p.usedWrap], [s.drv.used, s.drv.usedWrap]);
  }
  assert.equal(slots, 30, "seven laps and a half");
  assert.deepEqual(s.pairsSet, [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]);
  assert.equal(s.device.broken, null);
});

Deno.test("packed: several lists made available at once, one crossing the ring's end, are answered in ring order", () => {
  const s = setup({ size: 8 });
  s.command(0, [CTRL_MQ, 0, 1, 0]);
  s.device.process();
  s.takeUsed(); // the device is at slot 2 now
  s.command(1, [CTRL_MQ, 0, 2, 0], 2); // slots 2, 3, 4
  s.command(2, [CTRL_MQ, 0, 3, 0]); // slots 5, 6
  s.command(3, [CTRL_MQ, 0, 4, 0], 2); // slots 7, 0, 1: the last two in the next lap
  assert.equal(s.device.process(), 3);
  assert.deepEqual([1, 2, 3].map(() => s.takeUsed()?.slot), [2, 5, 7]);
  assert.deepEqual(s.pairsSet, [1, 2, 3, 4]);
  assert.deepEqual(s.device.position, {
    availSlot: 2,
    availWrap: false,
    usedSlot: 2,
    usedWrap: false,
  });
});

Deno.test("packed: a command over several readable descriptors, or in an indirect table (only WRITE counts there), is read whole", () => {
  const s = setup({ size: 8 });
  const ack = s.command(4, [CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, 2, 0], 4); // 4 readable + the ack
  assert.equal(s.device.process(), 1);
  assert.equal(ack(), CTRL_OK);
  assert.deepEqual(s.takeUsed(), { slot: 0, id: 4, len: 1, write: true });
  const table = RAW_AT + 0x3000;
  const entry = (i: number, at: number, len: number, flags: number) => {
    const o = table + 16 * i;
    s.v.setUint32(o, (BASE + at) % 2 ** 32, true);
    s.v.setUint32(o + 4, Math.floor((BASE + at) / 2 ** 32), true);
    s.v.setUint32(o + 8, len, true);
    s.v.setUint16(o + 12, 0x5555, true); // reserved, ignored
    s.v.setUint16(o + 14, flags, true);
  };
  s.b.set([CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, 4, 0], RAW_AT + 0x3800);
  entry(0, RAW_AT + 0x3800, 2, NEXT); // NEXT is reserved in a table and ignored
  entry(1, RAW_AT + 0x3802, 2, 0);
  entry(2, RAW_AT + 0x3900, 1, WRITE);
  s.offer(11, { at: table, len: 48, flags: INDIRECT });
  assert.equal(s.device.process(), 1);
  assert.equal(s.b[RAW_AT + 0x3900], CTRL_OK);
  assert.deepEqual(s.takeUsed(), { slot: 5, id: 11, len: 1, write: true });
  assert.deepEqual(s.pairsSet, [2, 4]);
});

Deno.test("packed: lists that cannot be answered come back with len 0 and no WRITE, skipped by their length: no writable part, readable after writable, unmapped, too short, INDIRECT in a NEXT list, a bad table", () => {
  const s = setup({ size: 16 });
  const at = RAW_AT;
  s.b.set([CTRL_MQ, 0, 2, 0], at);
  s.b[at + 0x80] = 0xff;
  const table = RAW_AT + 0x3000; // one writable entry: would complete list 5 if it counted
  s.v.setUint32(table, (BASE + at + 0x80) % 2 ** 32, true);
  s.v.setUint32(table + 4, Math.floor((BASE + at + 0x80) / 2 ** 32), true);
  s.v.setUint32(table + 8, 1, true);
  s.v.setUint16(table + 14, WRITE, true);
  s.offer(1, { at, len: 4 }); // no writable part
  s.offer(2, { at: at + 0x80, len: 1, write: true }, { at, len: 4 }); // readable after writable
  s.offer(3, { at: 0x10_0000_0000, len: 4, iova: true }, { at: at + 0x80, len: 1, write: true });
  s.offer(4, { at, len: 1 }, { at: at + 0x80, len: 1, write: true }); // no command byte
  s.offer(5, { at, len: 4 }, { at: table, len: 16, flags: INDIRECT });
  s.offer(6, { at: table, len: 24, flags: INDIRECT }); // not whole descriptors
  s.offer(7, { at: 0x10_0000_0000, len: 32, flags: INDIRECT, iova: true }); // unmapped table
  assert.equal(s.device.process(), 7);
  const used = [1, 2, 3, 4, 5, 6, 7].map(() => s.takeUsed());
  assert.deepEqual(used.map((u) => u?.id), [1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(used.map((u) => [u?.len, u?.write]), new Array(7).fill([0, false]));
  assert.deepEqual(used.map((u) => u?.slot), [0, 1, 3, 5, 7, 9, 10]);
  assert.equal(s.b[at + 0x80], 0xff, "no ack written");
  assert.deepEqual(s.pairsSet, []);
  assert.equal(s.device.broken, null);
  const ack = s.command(8, [CTRL_MQ, 0, 1, 0]);
  assert.equal(s.device.process(), 1, "the queue goes on");
  assert.equal(ack(), CTRL_OK);
});

Deno.test("packed: a list with NEXT on every descriptor of the ring, or one whose later descriptor was not made available, stops the queue with the reason", () => {
  const s = setup({ size: 4 });
  const parts = [0, 1, 2, 3].map((i) => ({ at: RAW_AT + 16 * i, len: 4 }));
  s.offer(0, ...parts);
  s.v.setUint16(DESC_AT + 16 * 3 + 14, s.flagsAt(3) | NEXT, true); // the last one goes on
  assert.equal(s.device.process(), 0);
  assert.match(s.device.broken!, /chain at descriptor 0 has NEXT on all 4 descriptors/);
  assert.equal(s.takeUsed(), null, "nothing written");
  assert.equal(s.device.process(), 0, "a broken queue answers nothing more");
  const t = setup({ size: 4 });
  t.b.set([CTRL_MQ, 0, 1, 0], RAW_AT);
  t.v.setUint32(DESC_AT, RAW_AT, true);
  t.v.setUint32(DESC_AT + 4, 1, true);
  t.v.setUint32(DESC_AT + 8, 4, true);
  t.v.setUint16(DESC_AT + 14, VIRTQ_DESC_F_AVAIL | NEXT, true); // slot 1 never written
  assert.equal(t.device.process(), 0);
  assert.match(t.device.broken!, /descriptor 1, part 2 of the chain at 0, was not made available/);
});

Deno.test("packed: nothing is taken from a zeroed ring or a descriptor of the wrong lap", () => {
  const s = setup({ size: 4 });
  assert.equal(s.device.process(), 0);
  s.v.setUint16(DESC_AT + 14, VIRTQ_DESC_F_USED, true); // available in lap 0, not lap 1
  assert.equal(s.device.process(), 0);
  s.v.setUint16(DESC_AT + 14, VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED, true); // used
  assert.equal(s.device.process(), 0);
  assert.equal(s.device.broken, null);
});

Deno.test("packed: the interrupt follows the driver area: ENABLE yes, DISABLE no", () => {
  const s = setup();
  let signals = 0;
  s.device.signal = () => signals++;
  s.command(0, [CTRL_MQ, 0, 1, 0]);
  s.device.process();
  assert.equal(signals, 1, "a zeroed driver area is RING_EVENT_FLAGS_ENABLE");
  s.v.setUint16(DRIVER_AT + 2, RING_EVENT_FLAGS_DISABLE, true);
  s.command(1, [CTRL_MQ, 0, 1, 0]);
  s.device.process();
  assert.equal(signals, 1);
  s.v.setUint16(DRIVER_AT + 2, RING_EVENT_FLAGS_ENABLE, true);
  s.command(2, [CTRL_MQ, 0, 1, 0]);
  s.device.process();
  assert.equal(signals, 2);
  assert.deepEqual([s.v.getUint16(DEVICE_AT, true), s.v.getUint16(DEVICE_AT + 2, true)], [0, 0]);
});

Deno.test("packed: with EVENT_IDX the interrupt comes when the driver's event descriptor was used, and the device area asks for a notification at the next avail position", () => {
  const s = setup({ size: 8, eventIdx: true });
  let signals = 0;
  s.device.signal = () => signals++;
  const event = (off: number, wrap: number) => {
    s.v.setUint16(DRIVER_AT, off | (wrap << 15), true);
    s.v.setUint16(DRIVER_AT + 2, RING_EVENT_FLAGS_DESC, true);
  };
  const step = () => {
    s.command(0, [CTRL_MQ, 0, 1, 0]); // two slots each
    s.device.process();
    s.takeUsed();
    return signals;
  };
  event(0, 1);
  assert.equal(step(), 1, "slots 0-1 used, the event was slot 0");
  event(5, 1);
  assert.equal(step(), 1, "slots 2-3: not yet");
  assert.equal(step(), 2, "slots 4-5 (a skipped slot counts)");
  event(3, 1);
  assert.equal(step(), 2, "slots 6-7, to the ring's end: the event was passed a lap ago");
  event(1, 0); // slot 1 of the next lap
  assert.equal(step(), 3, "slots 0-1 of lap 2");
  assert.deepEqual(
    [s.v.getUint16(DEVICE_AT, true), s.v.getUint16(DEVICE_AT + 2, true)],
    [2, RING_EVENT_FLAGS_DESC],
    "next avail: slot 2, wrap counter 0",
  );
  s.v.setUint16(DRIVER_AT + 2, RING_EVENT_FLAGS_DISABLE, true);
  assert.equal(step(), 3);
  s.v.setUint16(DRIVER_AT + 2, RING_EVENT_FLAGS_ENABLE, true);
  assert.equal(step(), 4);
  assert.deepEqual(
    [s.v.getUint16(DEVICE_AT, true), s.v.getUint16(DEVICE_AT + 2, true)],
    [6, RING_EVENT_FLAGS_DESC],
  );
  event(7, 0);
  assert.equal(step(), 5, "slots 6-7 of lap 2, the counter flipping at the ring's end");
  assert.equal(s.v.getUint16(DEVICE_AT, true), 0x8000, "next avail: slot 0, wrap counter 1");
});

Deno.test("packed: a ring not in mapped memory, or misaligned, is refused when the queue is made", () => {
  const memory: DeviceMemory = {
    bytes: (addr, len) => addr >= BASE && addr + len <= BASE + 0x2000 ? new Uint8Array(len) : null,
  };
  const make = (descAddr: number, driverAddr: number, deviceAddr: number) =>
    new PackedDeviceControlQueue({
      name: "controlq",
      size: 64,
      memory,
      descAddr,
      driverAddr,
      deviceAddr,
      eventIdx: false,
      handle: () => CTRL_OK,
    });
  assert.throws(() => make(BASE + 0x1c10, BASE, BASE + 4), /descriptor ring is not in mapped/);
  assert.throws(() => make(BASE, BASE + 0x2000, BASE + 4), /driver area is not in mapped/);
  assert.throws(() => make(BASE, BASE + 0x1ffc, BASE + 0x2000), /device area is not in mapped/);
  assert.throws(() => make(BASE + 8, BASE + 0x1000, BASE + 0x1004), /16-byte aligned/);
  assert.throws(() => make(BASE, BASE + 0x1002, BASE + 0x1004), /4-byte aligned/);
  make(BASE, BASE + 0x1ff8, BASE + 0x1ffc);
});
