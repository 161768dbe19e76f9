/**
 * The control queue (src/net/control_queue.ts) against a hostile device (issue 13, item 2):
 * a million commands under `deno task soak`, 100,000 in CI. The device answers inside the
 * notification, as QEMU does: mostly as §5.1.6.5 says, sometimes not at all, with a wrong
 * length, an ack that is neither OK nor ERR, a wrong or out-of-range id, an answer given
 * twice or replayed before the real one, or a used index far ahead. Every outcome is
 * predicted: a good answer returns (OK) or throws ControlCommandError (ERR), anything else
 * throws DEVICE_MISBEHAVED and
 * breaks the queue, which then sends nothing until it is set up again (a device reset).
 */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import type { DmaRegion } from "../../src/dma/memory.ts";
import {
  CONTROL_BUFFER_BYTES,
  CONTROL_DATA_MAX,
  ControlCommandError,
  ControlQueue,
  VIRTIO_NET_ERR,
  VIRTIO_NET_OK,
} from "../../src/net/control_queue.ts";
import {
  splitRingLayout,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
} from "../../src/virtio/ring_math.ts";
import { SplitQueue } from "../../src/virtio/split_queue.ts";
import { fuzzSeed, Prng } from "./fuzz/prng.ts";
import { soakLength } from "./soak_length.ts";

const COMMANDS = soakLength(1_000_000, 100_000);
const IOVA = 0x4000_0000;
const BEHAVIOURS = [
  "ok",
  "err",
  "bad-ack",
  "silent",
  "len",
  "id",
  "twice",
  "replay",
  "ahead",
] as const;
type Behaviour = typeof BEHAVIOURS[number];

/** The device side of a control queue, answering in its notify callback. */
class HostileControlDevice {
  readonly rng: Prng;
  readonly bytes: Uint8Array;
  readonly u16: Uint16Array;
  readonly u32: Uint32Array;
  size = 0;
  #avail = 0;
  #used = 0;
  #lastHead = 0;
  behaviour: Behaviour = "ok";
  /** The ack written by the last good answer. */
  ack = 0;
  notifications = 0;
  /** What the driver should have put in the command buffer. */
  expected = new Uint8Array(0);

  constructor(rng: Prng, memory: ArrayBuffer) {
    this.rng = rng;
    this.bytes = new Uint8Array(memory);
    this.u16 = new Uint16Array(memory);
    this.u32 = new Uint32Array(memory);
  }

  reset(size: number): void {
    this.size = size;
    this.#avail = this.#used = 0;
  }

  #answer(id: number, len: number): void {
    const l = splitRingLayout(this.size),
      e = (l.usedOffset >> 2) + 1 + 2 * (this.#used & (this.size - 1));
    this.u32[e] = id;
    this.u32[e + 1] = len;
    this.#used = (this.#used + 1) & 0xffff;
  }

  notify(): void {
    this.notifications++;
    const l = splitRingLayout(this.size);
    const idx = this.u16[(l.availOffset >> 1) + 1];
    assert.equal((idx - this.#avail) & 0xffff, 1, "one command is in flight at a time");
    const head = this.u16[(l.availOffset >> 1) + 2 + (this.#avail & (this.size - 1))];
    this.#avail = idx;
    // With EVENT_IDX: notify me at the next command (§2.7.10's avail_event).
    this.u16[(l.usedOffset >> 1) + 2 + 4 * this.size] = idx;
    // §5.1.6.5: a device-readable descriptor with the command, then a writable one for the ack.
    const d = (i: number) => ({
      addr: this.u32[i * 4] + this.u32[i * 4 + 1] * 2 ** 32,
      len: this.u32[i * 4 + 2],
      flags: this.u16[i * 8 + 6],
      next: this.u16[i * 8 + 7],
    });
    const cmd = d(head);
    assert.equal(cmd.flags, VIRTQ_DESC_F_NEXT);
    const ack = d(cmd.next);
    assert.equal(ack.flags, VIRTQ_DESC_F_WRITE);
    assert.equal(ack.len, 1);
    assert.deepEqual(
      this.bytes.subarray(cmd.addr - IOVA, cmd.addr - IOVA + cmd.len),
      this.expected,
      "the command buffer holds class, command and data",
    );
    const b = this.behaviour, rng = this.rng;
    if (b === "ok" || b === "err" || b === "bad-ack") {
      this.ack = b === "ok" ? VIRTIO_NET_OK : b === "err" ? VIRTIO_NET_ERR : 2 + rng.below(254);
      this.bytes[ack.addr - IOVA] = this.ack;
      this.#answer(head, 1);
    } else if (b === "len") this.#answer(head, rng.chance(0.5) ? 0 : 2 + rng.below(1 << 16));
    else if (b === "id") {
      this.#answer(rng.chance(0.5) ? cmd.next : this.size + rng.below(1 << 16), 1);
    } else if (b === "twice") {
      this.#answer(head, 1);
      this.#answer(head, 1);
    } else if (b === "replay") {
      this.#answer(this.#lastHead, 1); // the previous command's again, then this one's
      this.#answer(head, 1);
    }
    this.#lastHead = head;
    const usedIdx = (splitRingLayout(this.size).usedOffset >> 1) + 1;
    this.u16[usedIdx] = b === "ahead" ? (this.#used + 2 + rng.below(0xfff0)) & 0xffff : this.#used;
  }
}

Deno.test("the control queue takes only a good answer to the command in flight, and a bad one breaks it for good", () => {
  const seed = fuzzSeed(), rng = new Prng(seed);
  const ringBytes = Math.ceil(splitRingLayout(64).totalBytes / 64) * 64;
  const memory = new ArrayBuffer(ringBytes + Math.ceil(CONTROL_BUFFER_BYTES / 4) * 4);
  // ControlQueue needs only the bytes and their device address of a DmaRegion.
  const region = { buffer: memory, iova: IOVA } as unknown as DmaRegion;
  const dev = new HostileControlDevice(rng, memory);
  const outcomes: Record<string, number> = {};
  const count = (k: string) => (outcomes[k] = (outcomes[k] ?? 0) + 1);
  let cq!: ControlQueue;
  const setUp = () => {
    const size = rng.pick([2, 4, 8, 64]);
    dev.reset(size);
    const vq = new SplitQueue(memory, 0, {
      index: 2,
      size,
      eventIdx: rng.chance(0.5),
      notify: dev,
      name: "controlq",
    });
    cq = new ControlQueue("fuzz", vq, region, ringBytes);
  };
  setUp();
  let step = 0;
  try {
    for (; step < COMMANDS; step++) {
      const big = rng.chance(0.001);
      const data = new Uint8Array(big ? CONTROL_DATA_MAX + 1 - rng.below(2) : rng.below(64));
      for (let i = 0; i < data.length; i += 7) data[i] = rng.u32();
      const cls = rng.below(256), cmd = rng.below(256);
      dev.expected = new Uint8Array([cls, cmd, ...data]);
      dev.behaviour = rng.chance(0.9) ? rng.pick(["ok", "err"] as const) : rng.pick(BEHAVIOURS);
      const sent = dev.notifications;
      try {
        cq.command(cls, cmd, data, 0);
        assert.equal(dev.behaviour, "ok", "a command returned without a good answer");
        count("ok");
      } catch (e) {
        if (e instanceof ControlCommandError) {
          assert.equal(
            dev.behaviour,
            "err",
            `a "${dev.behaviour}" answer taken as a refusal: ${e.message}`,
          );
          assert.equal(e.ack, dev.ack);
          count("err");
          continue;
        }
        assert.ok(e instanceof DriverError, `threw ${e}`);
        if (e.code === "BAD_ARGUMENT") {
          assert.ok(data.length > CONTROL_DATA_MAX && dev.notifications === sent);
          count("refused-too-long");
          continue;
        }
        assert.equal(e.code, "DEVICE_MISBEHAVED", e.message);
        assert.ok(!["ok", "err"].includes(dev.behaviour), `${dev.behaviour}: ${e.message}`);
        assert.ok(cq.broken, "a bad answer left the queue working");
        count(dev.behaviour);
        // Broken: the next command is not even sent.
        const before = dev.notifications;
        assert.throws(() => cq.command(0, 0, new Uint8Array(1), 0), /broken/);
        assert.equal(dev.notifications, before, "a broken queue sent a command");
        setUp();
      }
    }
  } catch (e) {
    throw new Error(
      `fuzz failed at command ${step} (replay: VIRTIO_FUZZ_SEED=${seed}): ${(e as Error).message}`,
      { cause: e },
    );
  }
  console.log(
    `control queue fuzz: seed ${seed}, ${COMMANDS} commands; ` +
      Object.entries(outcomes).map(([k, n]) => `${k} ${n}`).join(", "),
  );
  for (const b of BEHAVIOURS) assert.ok(outcomes[b] > 0, `no command met "${b}"`);
});
