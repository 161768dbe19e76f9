/**
 * Which memory a device can reach (docs/security.md): a port maps for its device exactly
 * its own DmaRegion (rings, control buffer and packet pool, one memfd, whole) and, when it
 * forwards on a shared pool, that pool's region; every address the driver hands the device
 * lies inside them; a vhost-user back-end is sent exactly those memfds. Against the fake
 * virtio-net function of fake_virtio_pci.ts: no device, no VFIO, no root.
 *
 *     deno test --allow-all tests/unit/dma_reach_test.ts   # prints the table it checks
 */

import assert from "node:assert/strict";
import { createSharedPool } from "../../src/dma/buffer_pool.ts";
import type { DmaSegment } from "../../src/dma/dma_target.ts";
import { alignUp, DmaRegion } from "../../src/dma/memory.ts";
import { F_GET_SEALS, F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, libc } from "../../ffi/libc.ts";
import { DriverError } from "../../src/errors.ts";
import { CONTROL_BUFFER_BYTES } from "../../src/net/control_queue.ts";
import type { VirtioNetPort } from "../../src/net/port.ts";
import { MemoryTable } from "../../src/vhost_user/memory_table.ts";
import type { MemoryRegion } from "../../src/vhost_user/payloads.ts";
import { splitRingLayout } from "../../src/virtio/ring_math.ts";
import { type FakePci, openFakePort, portDevice } from "./fake_virtio_pci.ts";

/** VIRTIO_NET_F_CTRL_VQ: offered so that the port has a control queue and its buffer. */
const CTRL_VQ = 1n << 17n;

interface Mapped extends DmaSegment {
  iova: bigint;
}

/** `dev` with every DMA mapping the driver asks for recorded, in order. */
function recording(dev: FakePci): Mapped[] {
  const maps: Mapped[] = [];
  const dmaMap = dev.dmaMap.bind(dev);
  dev.dmaMap = (segment, iova) => {
    maps.push({ ...segment, iova });
    dmaMap(segment, iova);
  };
  return maps;
}

/** The mapping of this process's /proc/self/maps that starts at `vaddr`, as its line. */
function mapsLine(vaddr: bigint): { size: bigint; line: string } {
  for (const line of Deno.readTextFileSync("/proc/self/maps").split("\n")) {
    const [range] = line.split(" ");
    const [start, end] = (range ?? "").split("-").map((h) => BigInt(`0x${h || "0"}`));
    if (start === vaddr) return { size: end - start, line };
  }
  throw new Error(`no mapping starts at 0x${vaddr.toString(16)}`);
}

/** Checks that `m` is a whole memfd of the driver's, mapped once, and returns its name. */
function assertWholeMemfd(m: Mapped): string {
  const name = Deno.readLinkSync(`/proc/self/fd/${m.fd}`);
  assert.match(name, /^\/memfd:virtio-net-dma/, "DMA memory is a memfd of the driver's");
  assert.equal(m.fdOffset, 0, "mapped from the memfd's first byte");
  assert.equal(Deno.statSync(`/proc/self/fd/${m.fd}`).size, m.size, "the memfd is no larger");
  const maps = mapsLine(m.vaddr);
  assert.equal(maps.size, BigInt(m.size), "one process mapping of the same size");
  assert.match(maps.line, /rw-s .*memfd:virtio-net-dma/);
  return name;
}

const hex = (n: bigint | number) => `0x${n.toString(16)}`;

/** Every IOVA the driver gave the device: queue registers and posted descriptors. */
function iovasGiven(dev: FakePci, port: VirtioNetPort): { what: string; at: number }[] {
  const out: { what: string; at: number }[] = [];
  for (const [q, regs] of dev.bar4.queues.entries()) {
    if (!regs.enable) continue;
    const pairs = { desc: regs.desc, driver: regs.driver, device: regs.device };
    for (const [part, [lo, hi]] of Object.entries(pairs)) {
      out.push({ what: `queue ${q} ${part}`, at: lo + hi * 2 ** 32 });
    }
  }
  const vq = port.rx(0).vq;
  const desc = new DataView(vq.ringMemory, vq.ringOffset, 16 * vq.size);
  for (let i = 0; i < vq.size; i++) {
    const len = desc.getUint32(16 * i + 8, true);
    if (len === 0) continue;
    const at = desc.getUint32(16 * i, true) + desc.getUint32(16 * i + 4, true) * 2 ** 32;
    out.push({ what: `receive descriptor ${i}`, at }, { what: `its end`, at: at + len - 1 });
  }
  return out;
}

function assertInside(given: { what: string; at: number }[], maps: Mapped[]): void {
  for (const g of given) {
    const inside = maps.some((m) => g.at >= m.iova && g.at < m.iova + BigInt(m.size));
    assert.ok(inside, `${g.what} at IOVA ${hex(g.at)} lies outside every mapping`);
  }
}

Deno.test("a port maps one memfd for its device: its rings, control buffer and pool, nothing else", () => {
  const dev = portDevice("vfio-user:/fake-reach");
  dev.bar4.deviceFeatures |= CTRL_VQ;
  const maps = recording(dev);
  const port = openFakePort(dev);
  try {
    assert.equal(maps.length, 1, "one mapping");
    const [m] = maps;
    const region = port.pool.region;
    assert.deepEqual([m.vaddr, m.fd, m.iova], [region.vaddr, region.fd, BigInt(region.iova)]);
    // The region is the rings (receiveq1, transmitq1, controlq), the control command and
    // ack buffer, and the pool: port.ts lays it out so, and its size says nothing else fits.
    const rings = [port.rx(0).vq, port.tx(0).vq, port.control!.vq]
      .map((q) => alignUp(splitRingLayout(q.size).totalBytes, 4096));
    const pool = port.pool.count * port.pool.bufferSize;
    const parts = rings.reduce((a, b) => a + b, 0) + alignUp(CONTROL_BUFFER_BYTES, 4096) + pool;
    assert.equal(m.size, alignUp(parts, 4096));
    const name = assertWholeMemfd(m);
    const given = iovasGiven(dev, port);
    assertInside(given, maps);
    console.log(
      `${port.name}: the device can reach IOVA ${hex(m.iova)}–${
        hex(m.iova + BigInt(m.size) - 1n)
      }` +
        ` (${m.size} bytes) = ${name} (fd ${m.fd}) at ${hex(m.vaddr)} in this process:\n` +
        `  rings ${rings.join(" + ")} B, control buffer ${
          alignUp(CONTROL_BUFFER_BYTES, 4096)
        } B, pool ${port.pool.count} × ${port.pool.bufferSize} B;` +
        ` all ${given.length} IOVAs the driver gave it lie inside`,
    );
  } finally {
    port.close();
  }
  assert.deepEqual(dev.events.slice(-3), ["reset", `dmaUnmap ${maps[0].iova}`, "close"]);
});

Deno.test("ports on a shared pool each map their own region and the pool, at one IOVA for all", () => {
  const pool = createSharedPool(512, 2048, { hugePages: false });
  const devs = [portDevice("vfio-user:/fake-a"), portDevice("vfio-user:/fake-b")];
  const maps = devs.map(recording);
  const ports = devs.map((d) => openFakePort(d, { pool }));
  try {
    for (const [i, m] of maps.entries()) {
      assert.equal(m.length, 2, "its rings' region, then the pool");
      assert.equal(m[1].fd, pool.region.fd);
      assert.equal(m[1].iova, BigInt(pool.region.iova), "the pool at the same IOVA everywhere");
      m.forEach(assertWholeMemfd);
      assertInside(iovasGiven(devs[i], ports[i]), m);
    }
    // Regions never overlap in IOVA space (src/dma/iova.ts: one process-wide allocator).
    const all = [maps[0][0], maps[1][0], maps[0][1]];
    for (const a of all) {
      for (const b of all) {
        if (a === b) continue;
        assert.ok(a.iova + BigInt(a.size) <= b.iova || b.iova + BigInt(b.size) <= a.iova);
      }
    }
    console.log(
      all.map((m, i) =>
        `${["port a's rings", "port b's rings", "shared pool (both)"][i]}: IOVA ${
          hex(m.iova)
        }, ${m.size} bytes`
      ).join("; "),
    );
  } finally {
    for (const p of ports) p.close();
    pool.region.free();
  }
});

Deno.test("a vhost-user back-end is sent exactly the port's memfds, whole, at their IOVAs", () => {
  // The port's DMA goes through the vhost-user memory table (src/vhost_user/memory_table.ts)
  // as on a vhost-user transport; `sent` records each SET_MEM_TABLE: regions and fds.
  const sent: { regions: MemoryRegion[]; fds: number[] }[] = [];
  const table = new MemoryTable("vhost-user:/fake", (regions, fds) => {
    sent.push({ regions, fds });
  }, () => true);
  const dev = portDevice("vhost-user:/fake");
  dev.iovaRanges = () => table.iovaRanges();
  const maps = recording(dev);
  const dmaMap = dev.dmaMap.bind(dev);
  dev.dmaMap = (segment, iova) => {
    dmaMap(segment, iova);
    table.dmaMap(segment, iova);
  };
  const dmaUnmap = dev.dmaUnmap.bind(dev);
  dev.dmaUnmap = (iova, size) => {
    dmaUnmap(iova, size);
    table.dmaUnmap(iova, size);
  };
  const pool = createSharedPool(512, 2048, { hugePages: false });
  const port = openFakePort(dev, { pool });
  try {
    const last = sent[sent.length - 1];
    assert.equal(last.fds.length, 2, "one fd per region: the port's rings, the pool");
    for (const m of maps) {
      const i = last.fds.indexOf(m.fd);
      assert.ok(i >= 0, `memfd ${m.fd} was sent`);
      assert.deepEqual(last.regions[i], {
        guestPhysAddr: m.iova,
        size: BigInt(m.size),
        userspaceAddr: m.vaddr,
        mmapOffset: 0n,
      });
      assertWholeMemfd(m);
    }
    // Nothing outside the regions is reachable through the table either.
    const low = Math.min(...maps.map((m) => Number(m.iova)));
    const high = Math.max(...maps.map((m) => Number(m.iova) + m.size));
    assert.equal(table.bytes(low - 1, 1), null);
    assert.equal(table.bytes(high, 1), null);
  } finally {
    port.close();
    pool.region.free();
  }
  assert.deepEqual(sent[sent.length - 1].fds, [], "closing the port empties the table");
});

Deno.test("a device without VIRTIO_F_ACCESS_PLATFORM is refused before any DMA memory is mapped", () => {
  const dev = portDevice("vfio-user:/fake-no-iommu");
  dev.bar4.deviceFeatures &= ~(1n << 33n);
  const maps = recording(dev);
  assert.throws(() => openFakePort(dev), (e: unknown) => {
    assert.ok(e instanceof DriverError);
    assert.equal(e.code, "MISSING_FEATURE");
    assert.match(e.message, /VIRTIO_F_ACCESS_PLATFORM/);
    return true;
  });
  assert.equal(maps.length, 0, "nothing was mapped");
});

Deno.test("a DMA region's memfd is sealed at its size: whoever it is sent to cannot shrink or grow it", () => {
  for (const hugePages of [false, true]) {
    const r = DmaRegion.allocate(3 * 4096, { hugePages });
    try {
      assert.equal(
        libc.fcntl_int(r.fd, F_GET_SEALS, 0),
        F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL,
      );
      // What a vhost-user back-end or vfio-user server could do with the fd it was sent.
      assert.equal(libc.ftruncate(r.fd, 0n), -1, "the memfd shrank");
      assert.equal(libc.ftruncate(r.fd, BigInt(r.size * 2)), -1, "the memfd grew");
      new Uint8Array(r.buffer)[r.size - 1] = 1; // still all there
    } finally {
      r.free();
    }
  }
});
