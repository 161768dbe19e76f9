/**
 * The rig of the receive and transmit queue tests: a SplitQueue in a plain ArrayBuffer, a
 * BufferPool in real DMA memory, and a device's view of both (FakeNic) that reads
 * descriptors, reads or writes buffer bytes at their IOVA, and writes used-ring entries.
 */

import { BufferPool } from "../../src/dma/buffer_pool.ts";
import { DmaRegion } from "../../src/dma/memory.ts";
import { splitRingLayout } from "../../src/virtio/ring_math.ts";
import { SplitQueue } from "../../src/virtio/split_queue.ts";

/** A virtio-net device's view of one queue and of the DMA region. */
export class FakeNic {
  readonly ring: DataView;
  readonly size: number;
  readonly layout;
  readonly mem: Uint8Array;
  /** Where the device sees the region (its IOVA). */
  readonly iova: number;
  lastAvail = 0;
  usedIdx = 0;

  constructor(ringMemory: ArrayBuffer, size: number, region: DmaRegion) {
    this.ring = new DataView(ringMemory);
    this.size = size;
    this.layout = splitRingLayout(size);
    this.mem = new Uint8Array(region.buffer);
    this.iova = region.iova;
  }
  get availIdx(): number {
    return this.ring.getUint16(this.layout.availOffset + 2, true);
  }
  desc(d: number) {
    const at = this.layout.descOffset + 16 * d;
    return {
      addr: Number(this.ring.getBigUint64(at, true)),
      len: this.ring.getUint32(at + 8, true),
      flags: this.ring.getUint16(at + 12, true),
    };
  }
  /** Newly available descriptor ids. */
  takeAvail(): number[] {
    const ids: number[] = [];
    while (this.lastAvail !== this.availIdx) {
      const slot = this.lastAvail & (this.size - 1);
      ids.push(this.ring.getUint16(this.layout.availOffset + 4 + 2 * slot, true));
      this.lastAvail = (this.lastAvail + 1) & 0xffff;
    }
    return ids;
  }
  /** The bytes a descriptor points at (IOVA translated to the region). */
  bytes(d: number): Uint8Array {
    const { addr, len } = this.desc(d);
    return this.mem.subarray(addr - this.iova, addr - this.iova + len);
  }
  /** Pool buffer index of a descriptor, for a pool at region offset 0. */
  bufferOf(d: number, bufferSize: number): number {
    return (this.desc(d).addr - this.iova) / bufferSize;
  }
  use(entries: [id: number, len: number][]): void {
    for (const [id, len] of entries) {
      const at = this.layout.usedOffset + 4 + 8 * (this.usedIdx & (this.size - 1));
      this.ring.setUint32(at, id, true);
      this.ring.setUint32(at + 4, len, true);
      this.usedIdx = (this.usedIdx + 1) & 0xffff;
    }
    this.ring.setUint16(this.layout.usedOffset + 2, this.usedIdx, true);
  }
}

export interface Rig {
  region: DmaRegion;
  pool: BufferPool;
  vq: SplitQueue;
  nic: FakeNic;
  kicks: () => number;
}

export function rig(ringSize: number, poolCount: number, bufferSize = 2048): Rig {
  const region = DmaRegion.allocate(poolCount * bufferSize, { hugePages: false });
  const pool = new BufferPool(region, 0, poolCount, bufferSize);
  const ringMemory = new ArrayBuffer(splitRingLayout(ringSize).totalBytes);
  let kicks = 0;
  const vq = new SplitQueue(ringMemory, 0, {
    index: 0,
    size: ringSize,
    eventIdx: false,
    notify: { notify: () => kicks++ },
    name: "test queue",
  });
  return { region, pool, vq, nic: new FakeNic(ringMemory, ringSize, region), kicks: () => kicks };
}

export function withRig(
  ringSize: number,
  poolCount: number,
  fn: (r: Rig) => void,
  bufferSize = 2048,
) {
  const r = rig(ringSize, poolCount, bufferSize);
  try {
    fn(r);
  } finally {
    r.region.free();
  }
}

/** A frame of `len` bytes whose contents identify it. */
export function frame(len: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (seed * 31 + i) & 0xff);
}
