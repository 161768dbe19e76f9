/**
 * vhost-user wire format against QEMU's docs/interop/vhost-user.rst ("Message
 * Specification") and DPDK's lib/vhost/vhost_user.h (struct VhostUserMsg, packed): every
 * offset asserted here is one from those layouts, counted from the end of the 12-byte
 * header. Plus the memory table's bookkeeping (memory_table.ts), which decides what
 * SET_MEM_TABLE carries.
 */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import { MemoryTable } from "../../src/vhost_user/memory_table.ts";
import {
  decodeMemoryTable,
  decodeU64,
  decodeVringBase,
  decodeVringState,
  encodeMemoryTable,
  encodeU64,
  encodeVringAddr,
  encodeVringBase,
  encodeVringState,
  freshVringBase,
  type MemoryRegion,
  vringFdPayload,
} from "../../src/vhost_user/payloads.ts";
import {
  decodeHeader,
  encodeMessage,
  FLAG_NEED_REPLY,
  FLAG_REPLY,
  HEADER_SIZE,
  replyHeaderProblem,
  requestName,
  VhostUserRequest,
} from "../../src/vhost_user/protocol.ts";

const le32 = (b: Uint8Array, o: number) => new DataView(b.buffer, b.byteOffset).getUint32(o, true);
const le64 = (b: Uint8Array, o: number) =>
  new DataView(b.buffer, b.byteOffset).getBigUint64(o, true);

Deno.test("a message is request, flags with version 1, payload size, then the payload", () => {
  const m = encodeMessage(VhostUserRequest.SET_FEATURES, encodeU64(0x1_4000_0000n));
  assert.equal(m.length, HEADER_SIZE + 8);
  assert.equal(le32(m, 0), 2);
  assert.equal(le32(m, 4), 0x1);
  assert.equal(le32(m, 8), 8);
  assert.equal(le64(m, 12), 0x1_4000_0000n);
});

Deno.test("need_reply is flag bit 3, next to the version", () => {
  const m = encodeMessage(VhostUserRequest.SET_VRING_NUM, new Uint8Array(8), FLAG_NEED_REPLY);
  assert.equal(le32(m, 4), 0x9);
  assert.equal(encodeMessage(VhostUserRequest.SET_OWNER).length, 12);
});

Deno.test("a header decodes back to its three fields", () => {
  const h = decodeHeader(encodeMessage(VhostUserRequest.GET_VRING_BASE, new Uint8Array(8)));
  assert.deepEqual(h, { request: 11, flags: 1, size: 8 });
  assert.throws(() => decodeHeader(new Uint8Array(11)), RangeError);
});

Deno.test("a reply must name the request, carry version 1 and the reply flag, and the expected size", () => {
  const ok = { request: 1, flags: 1 | FLAG_REPLY, size: 8 };
  assert.equal(replyHeaderProblem(ok, 1, 8), null);
  assert.match(
    replyHeaderProblem({ ...ok, request: 15 }, 1, 8)!,
    /GET_PROTOCOL_FEATURES instead of GET_FEATURES/,
  );
  assert.match(replyHeaderProblem({ ...ok, flags: 2 | FLAG_REPLY }, 1, 8)!, /version 2/);
  assert.equal(replyHeaderProblem({ ...ok, flags: 1 }, 1, 8), "its reply flag is not set");
  assert.match(replyHeaderProblem({ ...ok, size: 0 }, 1, 8)!, /0 payload bytes, not 8/);
});

Deno.test("u64 payloads are 8 little-endian bytes and refuse other lengths", () => {
  assert.deepEqual([...encodeU64(0x0102n)], [2, 1, 0, 0, 0, 0, 0, 0]);
  assert.equal(decodeU64(encodeU64((1n << 64n) - 1n)), (1n << 64n) - 1n);
  assert.throws(() => encodeU64(-1n), RangeError);
  assert.throws(() => encodeU64(1n << 64n), RangeError);
  assert.throws(() => decodeU64(new Uint8Array(4)), RangeError);
});

Deno.test("a vring state is index u32 then num u32", () => {
  const b = encodeVringState({ index: 3, num: 256 });
  assert.equal(b.length, 8);
  assert.equal(le32(b, 0), 3);
  assert.equal(le32(b, 4), 256);
  assert.deepEqual(decodeVringState(b), { index: 3, num: 256 });
  assert.throws(() => decodeVringState(new Uint8Array(12)), RangeError);
});

Deno.test("a packed vring base is the slot in bits 0-14 and the avail wrap counter in bit 15; a split one the whole index", () => {
  assert.equal(encodeVringBase(freshVringBase(true), true), 0x8000, "a fresh packed ring");
  assert.equal(encodeVringBase(freshVringBase(false), false), 0);
  assert.equal(encodeVringBase({ avail: 0x7fff, wrap: false }, true), 0x7fff);
  assert.equal(encodeVringBase({ avail: 0xffff, wrap: false }, false), 0xffff);
  assert.deepEqual(decodeVringBase(0x8005, true), { avail: 5, wrap: true });
  assert.deepEqual(decodeVringBase(0x0005, true), { avail: 5, wrap: false });
  assert.deepEqual(decodeVringBase(0x8005, false), { avail: 0x8005, wrap: false });
  for (
    const [base, packed] of [
      [{ avail: 0x8000, wrap: true }, true],
      [{ avail: 1, wrap: true }, false],
      [{ avail: 0x10000, wrap: false }, false],
      [{ avail: -1, wrap: false }, true],
    ] as const
  ) {
    assert.throws(() => encodeVringBase(base, packed), RangeError);
  }
});

Deno.test("a vring address is index, flags, then desc, used, avail and log as u64 (struct vhost_vring_addr)", () => {
  const b = encodeVringAddr({
    index: 5,
    flags: 0,
    desc: 0x1000n,
    used: 0x3000n,
    avail: 0x2000n,
    log: 0n,
  });
  assert.equal(b.length, 40);
  assert.equal(le32(b, 0), 5);
  assert.equal(le32(b, 4), 0);
  assert.equal(le64(b, 8), 0x1000n);
  assert.equal(le64(b, 16), 0x3000n);
  assert.equal(le64(b, 24), 0x2000n);
  assert.equal(le64(b, 32), 0n);
});

Deno.test("a memory table is nregions, padding, then 32-byte regions: guest address, size, user address, mmap offset", () => {
  const regions: MemoryRegion[] = [
    { guestPhysAddr: 1n << 32n, size: 0x200000n, userspaceAddr: 0x7f00_0000_0000n, mmapOffset: 0n },
    {
      guestPhysAddr: 1n << 33n,
      size: 0x400000n,
      userspaceAddr: 0x7f00_1000_0000n,
      mmapOffset: 0x1000n,
    },
  ];
  const b = encodeMemoryTable(regions);
  assert.equal(b.length, 8 + 2 * 32, "only the regions used are sent, as QEMU does");
  assert.equal(le32(b, 0), 2);
  assert.equal(le32(b, 4), 0);
  assert.equal(le64(b, 8 + 32), 1n << 33n);
  assert.equal(le64(b, 8 + 32 + 8), 0x400000n);
  assert.equal(le64(b, 8 + 32 + 16), 0x7f00_1000_0000n);
  assert.equal(le64(b, 8 + 32 + 24), 0x1000n);
  assert.deepEqual(decodeMemoryTable(b), regions);
});

Deno.test("a memory table holds at most 8 regions, both ways", () => {
  const r = { guestPhysAddr: 0n, size: 4096n, userspaceAddr: 0n, mmapOffset: 0n };
  assert.equal(encodeMemoryTable(Array(8).fill(r)).length, 264);
  assert.throws(() => encodeMemoryTable(Array(9).fill(r)), RangeError);
  const lying = new Uint8Array(8);
  lying[0] = 9;
  assert.throws(() => decodeMemoryTable(lying), RangeError);
  lying[0] = 1; // claims one region but carries none
  assert.throws(() => decodeMemoryTable(lying), RangeError);
});

Deno.test("SET_VRING_KICK/CALL payloads carry the index in bits 0-7 and bit 8 when no fd goes along", () => {
  assert.equal(vringFdPayload(0, true), 0n);
  assert.equal(vringFdPayload(255, true), 255n);
  assert.equal(vringFdPayload(2, false), 0x102n);
  assert.throws(() => vringFdPayload(256, true), RangeError);
});

Deno.test("request codes have their spec names", () => {
  assert.equal(requestName(5), "SET_MEM_TABLE");
  assert.equal(requestName(18), "SET_VRING_ENABLE");
  assert.equal(requestName(99), "request 99");
  assert.equal(VhostUserRequest.GET_QUEUE_NUM, 17);
  assert.equal(VhostUserRequest.SET_VRING_CALL, 13);
});

function table(refuse = false) {
  const sent: { regions: MemoryRegion[]; fds: number[] }[] = [];
  let connected = true;
  const t = new MemoryTable("vhost-user:/x.sock", (regions, fds, what) => {
    if (refuse) throw new DriverError("DEVICE_REFUSED", `refused ${what}`);
    sent.push({ regions, fds });
  }, () => connected);
  return { t, sent, disconnect: () => void (connected = false) };
}
const MB2 = 2 * 1024 * 1024;
const G4 = 1n << 32n;

Deno.test("mapping sends the whole table again, in IOVA order, one fd per region", () => {
  const { t, sent } = table();
  t.dmaMap({ vaddr: 0x7f00_0020_0000n, size: MB2, fd: 11, fdOffset: 0 }, G4 + 0x400000n);
  t.dmaMap({ vaddr: 0x7f00_0000_0000n, size: MB2, fd: 10, fdOffset: 4096 }, G4);
  assert.equal(sent.length, 2);
  assert.deepEqual(sent[1].fds, [10, 11]);
  assert.deepEqual(sent[1].regions[0], {
    guestPhysAddr: G4,
    size: BigInt(MB2),
    userspaceAddr: 0x7f00_0000_0000n,
    mmapOffset: 4096n,
  });
});

Deno.test("IOVAs translate to process addresses only inside one region", () => {
  const { t } = table();
  t.dmaMap({ vaddr: 0x7f00_0000_0000n, size: MB2, fd: 10, fdOffset: 0 }, G4);
  assert.equal(t.toUserAddress(2 ** 32 + 0x100, 64), 0x7f00_0000_0100n);
  assert.equal(t.toUserAddress(2 ** 32 + MB2 - 8, 16), null, "runs past the region's end");
  assert.equal(t.toUserAddress(2 ** 32 - 4096, 16), null, "below every region");
  assert.equal(t.toUserAddress(-1, 16), null);
});

Deno.test("a ninth region, an overlap, unaligned memory or an IOVA outside [4 GiB, 2^48) is a DMA error", () => {
  const { t, sent } = table();
  for (let i = 0; i < 8; i++) {
    t.dmaMap(
      { vaddr: 0x7f00_0000_0000n + BigInt(i * MB2), size: MB2, fd: 10 + i, fdOffset: 0 },
      G4 + BigInt(i * MB2),
    );
  }
  const code = (f: () => void) =>
    assert.throws(f, (e: unknown) => e instanceof DriverError && e.code === "DMA");
  code(() => t.dmaMap({ vaddr: 0n, size: MB2, fd: 30, fdOffset: 0 }, G4 + BigInt(16 * MB2)));
  const fresh = table().t;
  fresh.dmaMap({ vaddr: 0x7f00_0000_0000n, size: MB2, fd: 3, fdOffset: 0 }, G4);
  code(() => fresh.dmaMap({ vaddr: 0n, size: MB2, fd: 4, fdOffset: 0 }, G4 + 4096n));
  code(() => fresh.dmaMap({ vaddr: 0n, size: 100, fd: 4, fdOffset: 0 }, G4 * 2n));
  code(() => fresh.dmaMap({ vaddr: 0n, size: MB2, fd: 4, fdOffset: 0 }, 0x100000n));
  code(() => fresh.dmaMap({ vaddr: 0n, size: MB2, fd: 4, fdOffset: 0 }, 1n << 48n));
  assert.equal(sent.length, 8, "nothing refused was sent");
});

Deno.test("a table the back-end refuses leaves the region out", () => {
  const { t } = table(true);
  assert.throws(
    () => t.dmaMap({ vaddr: 0x7f00_0000_0000n, size: MB2, fd: 10, fdOffset: 0 }, G4),
    /refused mapping 2097152 bytes at IOVA 0x100000000/,
  );
  assert.equal(t.regions.length, 0);
});

Deno.test("unmapping re-sends the table, unless the back-end is gone; an unknown range is a no-op", () => {
  const { t, sent, disconnect } = table();
  t.dmaMap({ vaddr: 0x7f00_0000_0000n, size: MB2, fd: 10, fdOffset: 0 }, G4);
  t.dmaMap({ vaddr: 0x7f00_0020_0000n, size: MB2, fd: 11, fdOffset: 0 }, G4 * 2n);
  t.dmaUnmap(G4 * 3n, MB2);
  assert.equal(sent.length, 2);
  t.dmaUnmap(G4, MB2);
  assert.equal(sent.length, 3);
  assert.deepEqual(sent[2].fds, [11]);
  disconnect();
  t.dmaUnmap(G4 * 2n, MB2);
  assert.equal(sent.length, 3);
  assert.equal(t.regions.length, 0);
});
