/**
 * vfio-user wire format against the layouts of vfio-user.rst (QEMU 7.2's
 * subprojects/libvfio-user/docs): every offset asserted here is one from the spec's
 * tables, counted from the end of the 16-byte header.
 */

import assert from "node:assert/strict";
import {
  commandName,
  decodeDeviceInfo,
  decodeDmaMap,
  decodeDmaUnmap,
  decodeHeader,
  decodeIrqInfo,
  decodeRegionAccess,
  decodeRegionInfo,
  decodeVersion,
  DMA_REGION_READ,
  DMA_REGION_WRITE,
  DMA_UNMAP_ALL,
  encodeCommand,
  encodeDeviceInfoRequest,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeHeader,
  encodeIrqInfoRequest,
  encodeIrqSet,
  encodeRegionInfoRequest,
  encodeRegionRead,
  encodeRegionWrite,
  encodeVersion,
  FLAG_ERROR,
  FLAG_NO_REPLY,
  FLAG_TYPE_REPLY,
  HEADER_SIZE,
  IRQ_SET_ACTION_TRIGGER,
  IRQ_SET_DATA_BOOL,
  IRQ_SET_DATA_EVENTFD,
  IRQ_SET_DATA_NONE,
  irqSetMessages,
  isReply,
  REGION_INFO_FLAG_CAPS,
  REGION_INFO_FLAG_MMAP,
  REGION_INFO_FLAG_READ,
  REGION_INFO_FLAG_WRITE,
  VFIO_USER_DEVICE_RESET,
  VFIO_USER_DMA_MAP,
  VFIO_USER_REGION_READ,
  VFIO_USER_REGION_WRITE,
  VFIO_USER_VERSION,
} from "../../src/vfio_user/protocol.ts";

const u8 = (...b: number[]) => new Uint8Array(b);
const le32 = (b: Uint8Array, at: number) =>
  new DataView(b.buffer, b.byteOffset).getUint32(at, true);
const le64 = (b: Uint8Array, at: number) =>
  new DataView(b.buffer, b.byteOffset).getBigUint64(at, true);
const le16 = (b: Uint8Array, at: number) =>
  new DataView(b.buffer, b.byteOffset).getUint16(at, true);

Deno.test("Commands: numbers and names follow the table", () => {
  const table = [
    "VFIO_USER_VERSION",
    "VFIO_USER_DMA_MAP",
    "VFIO_USER_DMA_UNMAP",
    "VFIO_USER_DEVICE_GET_INFO",
    "VFIO_USER_DEVICE_GET_REGION_INFO",
    "VFIO_USER_DEVICE_GET_REGION_IO_FDS",
    "VFIO_USER_DEVICE_GET_IRQ_INFO",
    "VFIO_USER_DEVICE_SET_IRQS",
    "VFIO_USER_REGION_READ",
    "VFIO_USER_REGION_WRITE",
    "VFIO_USER_DMA_READ",
    "VFIO_USER_DMA_WRITE",
    "VFIO_USER_DEVICE_RESET",
    "VFIO_USER_DIRTY_PAGES",
  ];
  table.forEach((name, i) => assert.equal(commandName(i + 1), name));
  assert.equal(commandName(0), "command 0");
});

Deno.test("Header: id@0 u16, command@2 u16, size@4 u32, flags@8 u32, error@12 u32", () => {
  const b = new Uint8Array(HEADER_SIZE);
  encodeHeader(b, 0, {
    msgId: 0x1234,
    command: VFIO_USER_REGION_WRITE,
    size: 0x28,
    flags: FLAG_TYPE_REPLY | FLAG_ERROR,
    errorNo: 22,
  });
  assert.deepEqual(b, u8(0x34, 0x12, 10, 0, 0x28, 0, 0, 0, 0x21, 0, 0, 0, 22, 0, 0, 0));
  assert.deepEqual(decodeHeader(b), {
    msgId: 0x1234,
    command: 10,
    size: 0x28,
    flags: 0x21,
    errorNo: 22,
  });
  // Flag bits: type in 0-3 (reply = 1), No_reply bit 4, Error bit 5.
  assert.equal(FLAG_NO_REPLY, 0x10);
  assert.equal(FLAG_ERROR, 0x20);
  assert.equal(isReply(0x21), true);
  assert.equal(isReply(FLAG_NO_REPLY), false);
  assert.throws(() => decodeHeader(new Uint8Array(15)), RangeError);
});

Deno.test("Header: a command message's size covers header and payload", () => {
  const m = encodeCommand(9, VFIO_USER_DEVICE_RESET);
  assert.equal(m.length, 16);
  assert.equal(le32(m, 4), 16);
  const w = encodeCommand(3, VFIO_USER_REGION_READ, encodeRegionRead(7, 0, 4), FLAG_NO_REPLY);
  assert.equal(le32(w, 4), 32);
  assert.equal(le32(w, 8), FLAG_NO_REPLY);
});

Deno.test("VERSION: major@0, minor@2, NUL-terminated JSON capabilities @4", () => {
  const p = encodeVersion({
    major: 0,
    minor: 1,
    capabilities: { maxMsgFds: 16, maxDataXferSize: 65536, migrationPgsize: 4096 },
  });
  assert.equal(le16(p, 0), 0);
  assert.equal(le16(p, 2), 1);
  assert.equal(p.at(-1), 0);
  const json = JSON.parse(new TextDecoder().decode(p.subarray(4, -1)));
  assert.deepEqual(json, {
    capabilities: { max_msg_fds: 16, max_data_xfer_size: 65536, migration: { pgsize: 4096 } },
  });
  assert.deepEqual(decodeVersion(p).capabilities, {
    maxMsgFds: 16,
    maxDataXferSize: 65536,
    migrationPgsize: 4096,
  });
});

Deno.test("VERSION: the reply libvfio-user sends, and the defaults when data is absent", () => {
  const text = '{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576}}';
  const json = new TextEncoder().encode(text);
  const p = new Uint8Array(4 + json.length + 1);
  p.set([0, 0, 1, 0]);
  p.set(json, 4);
  assert.deepEqual(decodeVersion(p), {
    major: 0,
    minor: 1,
    capabilities: { maxMsgFds: 8, maxDataXferSize: 1048576 },
  });
  // "If not specified then the receiver must assume a value of 1"; max_data_xfer_size
  // defaults to 1048576.
  assert.deepEqual(decodeVersion(u8(0, 0, 1, 0)).capabilities, {
    maxMsgFds: 1,
    maxDataXferSize: 1048576,
  });
  assert.throws(() => decodeVersion(new TextEncoder().encode("\0\0\x01\0{not json")));
  assert.throws(() =>
    decodeVersion(new TextEncoder().encode('\0\0\x01\0{"capabilities":{"max_msg_fds":-1}}'))
  );
});

Deno.test("DMA_MAP: argsz@0 = 32, flags@4, offset@8, address@16, size@24", () => {
  const p = encodeDmaMap({
    flags: DMA_REGION_READ | DMA_REGION_WRITE,
    offset: 0x2000n,
    address: 0x1_0000_0000n,
    size: 0x20_0000n,
  });
  assert.equal(p.length, 32); // "the message size is 16 + 32 bytes"
  assert.equal(le32(p, 0), 32);
  assert.equal(le32(p, 4), 3);
  assert.equal(le64(p, 8), 0x2000n);
  assert.equal(le64(p, 16), 0x1_0000_0000n);
  assert.equal(le64(p, 24), 0x20_0000n);
  assert.equal(decodeDmaMap(p).address, 0x1_0000_0000n);
});

Deno.test("DMA_UNMAP: argsz@0, flags@4, address@8, size@16; 16 + 24 bytes", () => {
  const p = encodeDmaUnmap({ flags: 0, address: 0x1_0020_0000n, size: 4096n });
  assert.equal(p.length, 24);
  assert.equal(le32(p, 0), 24);
  assert.equal(le64(p, 8), 0x1_0020_0000n);
  assert.equal(le64(p, 16), 4096n);
  assert.equal(DMA_UNMAP_ALL, 2); // bit 1 "unmap all regions"
  assert.deepEqual(decodeDmaUnmap(p), {
    argsz: 24,
    flags: 0,
    address: 0x1_0020_0000n,
    size: 4096n,
  });
});

Deno.test("DEVICE_GET_INFO: argsz@0, flags@4, num_regions@8, num_irqs@12", () => {
  assert.deepEqual(encodeDeviceInfoRequest(), u8(16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
  const reply = u8(16, 0, 0, 0, 3, 0, 0, 0, 10, 0, 0, 0, 5, 0, 0, 0);
  assert.deepEqual(decodeDeviceInfo(reply), { argsz: 16, flags: 3, numRegions: 10, numIrqs: 5 });
});

Deno.test("DEVICE_GET_REGION_INFO: request and reply layout", () => {
  const req = encodeRegionInfoRequest(7, 288);
  assert.equal(req.length, 32);
  assert.equal(le32(req, 0), 288); // argsz: the largest reply accepted
  assert.equal(le32(req, 8), 7); // index, "the only field required to be set"
  assert.deepEqual(req.subarray(12), new Uint8Array(20));

  const r = new Uint8Array(32);
  const v = new DataView(r.buffer);
  v.setUint32(0, 32, true);
  v.setUint32(4, REGION_INFO_FLAG_READ | REGION_INFO_FLAG_WRITE, true);
  v.setUint32(8, 4, true);
  v.setBigUint64(16, 16384n, true);
  v.setBigUint64(24, 0x4000n, true);
  assert.deepEqual(decodeRegionInfo(r), {
    argsz: 32,
    flags: 3,
    index: 4,
    capOffset: 0,
    size: 16384,
    offset: 0x4000n,
  });
});

Deno.test("DEVICE_GET_REGION_INFO: sparse mmap and region type capabilities", () => {
  // Region info (32 bytes), then the sparse mmap cap at 32: header (id@0 u16 = 1,
  // version@2 u16 = 1, next@4 u32 = 80), nr_areas@8, reserved@12, offset/size u64 pairs
  // from 16; then the region type cap at 80: header (id 2, version 1, next 0), type@8,
  // subtype@12. Cap offsets count from the start of the region info structure.
  const r = new Uint8Array(96);
  const v = new DataView(r.buffer);
  v.setUint32(0, 96, true);
  v.setUint32(4, REGION_INFO_FLAG_READ | REGION_INFO_FLAG_MMAP | REGION_INFO_FLAG_CAPS, true);
  v.setUint32(8, 0, true);
  v.setUint32(12, 32, true);
  v.setBigUint64(16, 0x4000n, true);
  v.setBigUint64(24, 0x10000n, true);
  v.setUint16(32, 1, true);
  v.setUint16(34, 1, true);
  v.setUint32(36, 80, true);
  v.setUint32(40, 2, true);
  v.setBigUint64(48, 0x0n, true);
  v.setBigUint64(56, 0x1000n, true);
  v.setBigUint64(64, 0x3000n, true);
  v.setBigUint64(72, 0x1000n, true);
  v.setUint16(80, 2, true);
  v.setUint16(82, 1, true);
  v.setUint32(84, 0, true);
  v.setUint32(88, 3, true);
  v.setUint32(92, 1, true);
  const info = decodeRegionInfo(r);
  assert.equal(info.capOffset, 32);
  assert.deepEqual(info.sparseAreas, [{ offset: 0, size: 0x1000 }, {
    offset: 0x3000,
    size: 0x1000,
  }]);
  assert.deepEqual(info.type, { type: 3, subtype: 1 });
  // A reply shorter than its argsz (the request's argsz was too small) has no caps read.
  assert.equal(decodeRegionInfo(r.slice(0, 32)).sparseAreas, undefined);
  // A capability list that points into itself is refused, not looped over.
  v.setUint32(36, 32, true);
  assert.throws(() => decodeRegionInfo(r), RangeError);
});

Deno.test("DEVICE_GET_REGION_INFO: sparse areas must lie inside the region, apart", () => {
  // A 0x4000-byte region with a sparse mmap cap at 32 holding `areas`.
  const reply = (areas: [bigint, bigint][], size = 0x4000n) => {
    const r = new Uint8Array(48 + 16 * areas.length);
    const v = new DataView(r.buffer);
    v.setUint32(0, r.length, true);
    v.setUint32(4, REGION_INFO_FLAG_READ | REGION_INFO_FLAG_MMAP | REGION_INFO_FLAG_CAPS, true);
    v.setUint32(12, 32, true);
    v.setBigUint64(16, size, true);
    v.setUint16(32, 1, true);
    v.setUint32(40, areas.length, true);
    areas.forEach(([o, n], i) => {
      v.setBigUint64(48 + 16 * i, o, true);
      v.setBigUint64(56 + 16 * i, n, true);
    });
    return r;
  };
  assert.deepEqual(decodeRegionInfo(reply([[0x3000n, 0x1000n], [0n, 0x3000n]])).sparseAreas, [
    { offset: 0x3000, size: 0x1000 },
    { offset: 0, size: 0x3000 },
  ]);
  assert.throws(() => decodeRegionInfo(reply([[0x3000n, 0x1001n]])), /area 0 .* ends past/);
  // offset + size wraps around 2^64 in u64 arithmetic.
  assert.throws(
    () => decodeRegionInfo(reply([[-0x1000n & 0xffff_ffff_ffff_ffffn, 0x2000n]])),
    /area 0 .* ends past/,
  );
  assert.throws(
    () => decodeRegionInfo(reply([[0n, 0x2000n], [0x1fffn, 1n]])),
    /areas 0 and 1 overlap/,
  );
  assert.throws(() => decodeRegionInfo(reply([], 1n << 60n)), /beyond 2\^53/);
  // nr_areas larger than the reply holds.
  const r = reply([[0n, 0x1000n]]);
  new DataView(r.buffer).setUint32(40, 0xffff_ffff, true);
  assert.throws(() => decodeRegionInfo(r), RangeError);
});

Deno.test("DEVICE_GET_IRQ_INFO and DEVICE_SET_IRQS layouts", () => {
  assert.deepEqual(encodeIrqInfoRequest(2), u8(16, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0));
  assert.deepEqual(
    decodeIrqInfo(u8(16, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 6, 0, 0, 0)),
    { argsz: 16, flags: 1, index: 2, count: 6 },
  );
  // argsz@0 covers the data, flags@4, index@8, start@12, count@16, data@20.
  const s = encodeIrqSet({
    flags: IRQ_SET_DATA_BOOL | IRQ_SET_ACTION_TRIGGER,
    index: 2,
    start: 1,
    count: 3,
    bools: u8(1, 0, 1),
  });
  assert.equal(s.length, 23);
  assert.equal(le32(s, 0), 23);
  assert.equal(le32(s, 4), 0x22);
  assert.equal(le32(s, 8), 2);
  assert.equal(le32(s, 12), 1);
  assert.equal(le32(s, 16), 3);
  assert.deepEqual(s.subarray(20), u8(1, 0, 1));
});

Deno.test("REGION_READ / REGION_WRITE: offset@0 u64, region@8, count@12, data@16", () => {
  const rd = encodeRegionRead(7, 0x40, 4);
  assert.deepEqual(rd, u8(0x40, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 4, 0, 0, 0));
  const wr = encodeRegionWrite(4, 0x3000, u8(2, 0));
  assert.equal(wr.length, 18);
  assert.equal(le64(wr, 0), 0x3000n);
  assert.equal(le32(wr, 8), 4);
  assert.equal(le32(wr, 12), 2);
  assert.deepEqual(wr.subarray(16), u8(2, 0));
  // A read reply: the access header echoed, then `count` bytes of data.
  const reply = u8(0x40, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 0xf4, 0x1a);
  const a = decodeRegionAccess(reply);
  assert.equal(a.offset, 0x40);
  assert.equal(a.region, 7);
  assert.equal(a.count, 2);
  assert.deepEqual(a.data, u8(0xf4, 0x1a));
  // A write reply has no data.
  assert.equal(decodeRegionAccess(wr.subarray(0, 16)).data.length, 0);
});

Deno.test("VERSION and DMA_MAP commands frame as header + payload", () => {
  const v = encodeCommand(
    1,
    VFIO_USER_VERSION,
    encodeVersion({ major: 0, minor: 1, capabilities: { maxMsgFds: 1, maxDataXferSize: 4096 } }),
  );
  assert.equal(le16(v, 2), 1);
  assert.equal(le32(v, 4), v.length);
  const m = encodeCommand(
    2,
    VFIO_USER_DMA_MAP,
    encodeDmaMap({ flags: 3, offset: 0n, address: 0n, size: 4096n }),
  );
  assert.equal(m.length, 16 + 32);
});

Deno.test("DEVICE_SET_IRQS with eventfds: count = fds per message, at most max_msg_fds each", () => {
  const msgs = irqSetMessages(2, 1, [10, 11, 12, 13, 14], 2);
  assert.deepEqual(msgs.map((m) => m.fds), [[10, 11], [12, 13], [14]]);
  assert.deepEqual(msgs.map((m) => [le32(m.payload, 12), le32(m.payload, 16)]), [
    [1, 2],
    [3, 2],
    [5, 1],
  ]);
  for (const m of msgs) {
    assert.equal(m.payload.length, 20, "the fds are not in the payload");
    assert.equal(le32(m.payload, 0), 20);
    assert.equal(le32(m.payload, 4), IRQ_SET_DATA_EVENTFD | IRQ_SET_ACTION_TRIGGER);
    assert.equal(le32(m.payload, 8), 2);
  }
  // libvfio-user's max_msg_fds of 8: one message for up to 8 vectors.
  assert.equal(irqSetMessages(2, 0, [3, 4, 5, 6, 7, 8, 9, 10], 8).length, 1);
  // A limit below 1 still sends one fd per message.
  assert.equal(irqSetMessages(2, 0, [3, 4], 0).length, 2);
});

Deno.test("DEVICE_SET_IRQS: -1 entries de-assign (DATA_EVENTFD, no fds); [] turns the type off", () => {
  const msgs = irqSetMessages(2, 0, [7, -1, -1, 8], 8);
  assert.deepEqual(msgs.map((m) => m.fds), [[7], [], [8]]);
  assert.deepEqual(msgs.map((m) => [le32(m.payload, 12), le32(m.payload, 16)]), [
    [0, 1],
    [1, 2],
    [3, 1],
  ]);
  const off = irqSetMessages(2, 5, [], 8);
  assert.equal(off.length, 1);
  assert.deepEqual(off[0].fds, []);
  assert.equal(le32(off[0].payload, 4), IRQ_SET_DATA_NONE | IRQ_SET_ACTION_TRIGGER);
  assert.equal(le32(off[0].payload, 12), 0, "start 0: libvfio-user refuses count 0 otherwise");
  assert.equal(le32(off[0].payload, 16), 0);
});

Deno.test("DEVICE_GET_REGION_INFO: a capability placed inside the fixed struct is refused", () => {
  // argsz 48: the struct (32 bytes) and one 16-byte capability header at offset 32 whose
  // `next` points back into the struct (offset 16), where the size field would be read as
  // a capability header.
  const b = new Uint8Array(48);
  const d = new DataView(b.buffer);
  d.setUint32(0, 48, true); // argsz
  d.setUint32(4, 1 << 3, true); // VFIO_REGION_INFO_FLAG_CAPS
  d.setUint32(12, 32, true); // cap_offset
  d.setBigUint64(16, 4096n, true); // size
  d.setUint16(32, 99, true); // an unknown capability id
  d.setUint32(36, 16, true); // next: inside the struct
  assert.throws(() => decodeRegionInfo(b), RangeError);
});

Deno.test("DEVICE_GET_REGION_INFO: argsz below the struct or beyond 64 KiB is refused", () => {
  const reply = (argsz: number) => {
    const r = new Uint8Array(32);
    const v = new DataView(r.buffer);
    v.setUint32(0, argsz, true);
    v.setUint32(8, 4, true);
    v.setBigUint64(16, 0x4000n, true);
    return r;
  };
  assert.throws(() => decodeRegionInfo(reply(16)), /region 4 info argsz 16 is below the 32 bytes/);
  // A server asking for 1 MiB would have the client allocate and request that much.
  assert.throws(
    () => decodeRegionInfo(reply(1 << 20)),
    /region 4 info argsz 1048576 is beyond 65536 bytes/,
  );
  assert.equal(decodeRegionInfo(reply(65536)).argsz, 65536);
});

Deno.test("DEVICE_GET_REGION_INFO: a region ending past 2^63 (the largest file offset) is refused", () => {
  const reply = (offset: bigint, size: bigint) => {
    const r = new Uint8Array(32);
    const v = new DataView(r.buffer);
    v.setUint32(0, 32, true);
    v.setUint32(8, 4, true);
    v.setBigUint64(16, size, true);
    v.setBigUint64(24, offset, true);
    return r;
  };
  // The mmap offset of the region's fd is a signed 64-bit off_t.
  assert.throws(
    () => decodeRegionInfo(reply((1n << 63n) - 0x1000n, 0x2000n)),
    /region 4 \(offset 0x7ffffffffffff000, size 0x2000\) ends past 2\^63/,
  );
  assert.throws(
    () => decodeRegionInfo(reply(0xffff_ffff_ffff_f000n, 0x2000n)),
    /ends past 2\^63/,
  );
  assert.equal(decodeRegionInfo(reply((1n << 63n) - 0x2000n, 0x2000n)).size, 0x2000);
});
