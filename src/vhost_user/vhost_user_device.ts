/**
 * A vhost-user device seen from the front-end: the session with one back-end (its
 * features, protocol features and queue count), its memory table, and its vrings with
 * their kick and call eventfds. Knows nothing of virtio-net: src/virtio/ builds the virtio
 * transport on top.
 *
 * The session starts as session.ts says.
 *
 * A vring is started with SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR, SET_VRING_KICK,
 * SET_VRING_CALL (QEMU's vhost_virtqueue_start order; "Ring states": a ring starts when
 * its kick fd is set) and stopped with GET_VRING_BASE, whose reply means the back-end no
 * longer touches it. With protocol features negotiated a started ring is still disabled
 * until SET_VRING_ENABLE 1.
 *
 * Rings are split (virtio 1.x §2.7) or, when SET_FEATURES acked VIRTIO_F_RING_PACKED,
 * packed (§2.8): then the "avail" and "used" addresses of SET_VRING_ADDR are the driver
 * and device event suppression areas, and the vring bases carry the wrap counter
 * ({@linkcode VringBase}).
 *
 * @module
 */

import { Eventfd } from "../../ffi/eventfd.ts";
import { DriverError } from "../errors.ts";
import { DEFAULT_TIMEOUT_MS, VhostUserConnection } from "./connection.ts";
import { EventfdKick } from "./kick.ts";
import { MemoryTable } from "./memory_table.ts";
import {
  decodeVringBase,
  decodeVringState,
  encodeMemoryTable,
  encodeU64,
  encodeVringAddr,
  encodeVringBase,
  encodeVringState,
  VRING_STATE_SIZE,
  type VringBase,
  vringFdPayload,
} from "./payloads.ts";
import { VHOST_USER_F_PROTOCOL_FEATURES, VhostUserRequest as R } from "./protocol.ts";
import { startSession } from "./session.ts";

/**
 * VIRTIO_F_RING_PACKED (virtio 1.x §6): a transport bit, named here as vhost_user/ does
 * not import virtio/.
 */
const RING_PACKED = 34;

/** Where a vring lives (process addresses), its format, and where processing starts. */
export interface VringSetup {
  /** Vring index. */
  index: number;
  /** Number of descriptors (a power of two up to 32768). */
  size: number;
  /**
   * A packed ring (§2.8); must agree with VIRTIO_F_RING_PACKED in the features acked with
   * {@linkcode VhostUserDevice.setFeatures}, which is how the back-end learns the format.
   */
  packed: boolean;
  /** Process (user) address of the descriptor table (split) or descriptor ring (packed). */
  desc: bigint;
  /** Process address of the available ring (split) or driver event suppression area. */
  avail: bigint;
  /** Process address of the used ring (split) or device event suppression area. */
  used: bigint;
  /**
   * Where the back-end starts (SET_VRING_BASE, encoded for the format):
   * `freshVringBase(packed)` for a new ring.
   */
  base: VringBase;
}

interface Vring {
  kick: Eventfd;
  call: Eventfd;
  started: boolean;
  enabled: boolean;
  packed: boolean;
  size: number;
}

/**
 * One vhost-user session.
 *
 * @example
 * ```ts ignore
 * import { VhostUserDevice } from "./vhost_user_device.ts";
 * const d = VhostUserDevice.connect("/tmp/a.sock");
 * console.log(d.features.toString(16), d.queuePairs);
 * d.close();
 * ```
 */
export class VhostUserDevice {
  /** How users name it, e.g. `vhost-user:/tmp/a.sock`. */
  readonly name: string;
  /** The connection. */
  readonly connection: VhostUserConnection;
  /** The memory table: what DMA memory is mapped for. */
  readonly memory: MemoryTable;
  /** Features the back-end offers (GET_FEATURES), VHOST_USER_F_PROTOCOL_FEATURES included. */
  readonly features: bigint;
  /** Protocol features negotiated (0 without VHOST_USER_F_PROTOCOL_FEATURES). */
  readonly protocolFeatures: bigint;
  /** Queue pairs the back-end serves (GET_QUEUE_NUM with protocol feature MQ, else 1). */
  readonly queuePairs: number;
  readonly #vrings = new Map<number, Vring>();
  #acked: bigint | null = null;

  private constructor(
    name: string,
    c: VhostUserConnection,
    features: bigint,
    protocolFeatures: bigint,
    queuePairs: number,
  ) {
    this.name = name;
    this.connection = c;
    this.features = features;
    this.protocolFeatures = protocolFeatures;
    this.queuePairs = queuePairs;
    this.memory = new MemoryTable(name, (regions, fds, what) => {
      c.send(R.SET_MEM_TABLE, encodeMemoryTable(regions), fds, {
        what,
        fix: "its log says why (DPDK: mmap of the memfd failed, or more than 8 regions)",
      });
    }, () => c.connected);
  }

  /**
   * Connects to the back-end at `path` and starts the session. Throws TRANSPORT (or
   * BAD_ADDRESS, PERMISSION) when it cannot connect, DEVICE_MISBEHAVED when the back-end
   * reports an impossible queue count.
   */
  static connect(
    path: string,
    options: { name?: string; timeoutMs?: number } = {},
  ): VhostUserDevice {
    const name = options.name ?? `vhost-user:${path}`;
    const c = VhostUserConnection.connect(path, {
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    });
    try {
      const { features, protocolFeatures, queuePairs } = startSession(c);
      return new VhostUserDevice(name, c, features, protocolFeatures, queuePairs);
    } catch (e) {
      c.close();
      throw e;
    }
  }

  /** True when VHOST_USER_F_PROTOCOL_FEATURES is in use (rings then start disabled). */
  get hasProtocolFeatures(): boolean {
    return (this.features & bit(VHOST_USER_F_PROTOCOL_FEATURES)) !== 0n;
  }

  /**
   * SET_FEATURES with `features` plus VHOST_USER_F_PROTOCOL_FEATURES when the back-end
   * offered it (it must be acked for rings to start disabled). Throws DEVICE_REFUSED when
   * the back-end refuses (with REPLY_ACK), TRANSPORT when it drops the connection.
   */
  setFeatures(features: bigint): void {
    const value = this.hasProtocolFeatures
      ? features | bit(VHOST_USER_F_PROTOCOL_FEATURES)
      : features;
    this.connection.send(R.SET_FEATURES, encodeU64(value), [], {
      what: `features 0x${value.toString(16)}`,
      fix: "it does not support that set; offer it fewer features",
    });
    this.#acked = features;
  }

  /** True when the features last acked with SET_FEATURES make every ring packed. */
  get packedRings(): boolean {
    return this.#acked !== null && (this.#acked & bit(RING_PACKED)) !== 0n;
  }

  /**
   * Starts vring `s.index`: SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR, then its kick
   * and call eventfds (made once per vring, kept across stops). The ring is disabled until
   * {@linkcode VhostUserDevice.setVringEnable} when protocol features are in use.
   * RangeError when `s.packed` disagrees with the features acked, or `s.base` does not fit
   * the format.
   */
  startVring(s: VringSetup): void {
    if (!Number.isInteger(s.index) || s.index < 0 || s.index >= 2 * this.queuePairs) {
      throw new RangeError(`${this.name} has no vring ${s.index} (${this.queuePairs} pairs)`);
    }
    if (!Number.isInteger(s.size) || s.size < 1 || s.size > 32768 || (s.size & (s.size - 1))) {
      throw new RangeError(`vring size ${s.size} is not a power of two up to 32768`);
    }
    if (this.#acked !== null && s.packed !== this.packedRings) {
      throw new RangeError(
        `${this.name}'s vring ${s.index} is set up ${
          s.packed ? "packed" : "split"
        }, but SET_FEATURES ${this.packedRings ? "acked" : "did not ack"} VIRTIO_F_RING_PACKED`,
      );
    }
    const base = encodeVringBase(s.base, s.packed);
    if (s.packed && s.base.avail >= s.size) {
      throw new RangeError(`vring base slot ${s.base.avail} is outside a ring of ${s.size}`);
    }
    let v = this.#vrings.get(s.index);
    if (v?.started) throw new RangeError(`${this.name}'s vring ${s.index} is already started`);
    if (!v) {
      const kick = Eventfd.create();
      let call: Eventfd;
      try {
        call = Eventfd.create();
      } catch (e) {
        kick.close();
        throw e;
      }
      v = {
        kick,
        call,
        started: false,
        enabled: !this.hasProtocolFeatures,
        packed: false,
        size: 0,
      };
      this.#vrings.set(s.index, v);
    }
    v.packed = s.packed;
    v.size = s.size;
    const c = this.connection, what = `vring ${s.index}`;
    c.send(R.SET_VRING_NUM, encodeVringState({ index: s.index, num: s.size }), [], {
      what: `${what}: ${s.size} entries`,
    });
    c.send(R.SET_VRING_BASE, encodeVringState({ index: s.index, num: base }), [], { what });
    c.send(
      R.SET_VRING_ADDR,
      encodeVringAddr({
        index: s.index,
        flags: 0,
        desc: s.desc,
        used: s.used,
        avail: s.avail,
        log: 0n,
      }),
      [],
      { what, fix: "the ring addresses lie outside the memory table" },
    );
    v.started = true; // from the kick on, a stop (GET_VRING_BASE) is owed
    v.enabled = !this.hasProtocolFeatures;
    c.send(R.SET_VRING_KICK, encodeU64(vringFdPayload(s.index, true)), [v.kick.fd], { what });
    c.send(R.SET_VRING_CALL, encodeU64(vringFdPayload(s.index, true)), [v.call.fd], { what });
  }

  /** Vring indices started and not yet stopped. */
  get startedVrings(): number[] {
    return [...this.#vrings].filter(([, v]) => v.started).map(([i]) => i);
  }

  /** True when vring `index` is started. */
  isStarted(index: number): boolean {
    return this.#vrings.get(index)?.started ?? false;
  }

  /** True when vring `index` is started and enabled. */
  isEnabled(index: number): boolean {
    const v = this.#vrings.get(index);
    return v !== undefined && v.started && v.enabled;
  }

  /** The kick eventfd of vring `index` (after its first start). */
  kickFd(index: number): number {
    return this.#vring(index).kick.fd;
  }

  /** The own call eventfd of vring `index` (after its first start). */
  callFd(index: number): number {
    return this.#vring(index).call.fd;
  }

  /** A notifier that kicks vring `index`; `what` names the queue for messages. */
  kicker(index: number, what: string): EventfdKick {
    return new EventfdKick(this.#vring(index).kick.fd, what);
  }

  /** SET_VRING_CALL: the back-end signals `fd` (default: the vring's own call eventfd). */
  setVringCall(index: number, fd?: number): void {
    const v = this.#vring(index);
    this.connection.send(
      R.SET_VRING_CALL,
      encodeU64(vringFdPayload(index, true)),
      [fd ?? v.call.fd],
      { what: `vring ${index}` },
    );
  }

  /**
   * SET_VRING_ENABLE (only with protocol features; without them a started ring is always
   * enabled). Sends nothing when the ring is already in that state.
   */
  setVringEnable(index: number, enable: boolean): void {
    const v = this.#vring(index);
    if (!this.hasProtocolFeatures || v.enabled === enable) return;
    this.connection.send(
      R.SET_VRING_ENABLE,
      encodeVringState({ index, num: enable ? 1 : 0 }),
      [],
      { what: `vring ${index} ${enable ? "on" : "off"}` },
    );
    v.enabled = enable;
  }

  /**
   * GET_VRING_BASE: stops vring `index` and returns where the back-end stopped, read for
   * the ring's format (null when it was not started). Once this returns, the back-end no
   * longer touches the ring or its buffers. The ring counts as stopped even when this
   * throws (the back-end is gone then).
   */
  stopVring(index: number): VringBase | null {
    const v = this.#vring(index);
    if (!v.started) return null;
    v.started = false;
    v.enabled = !this.hasProtocolFeatures;
    const reply = decodeVringState(
      this.connection.call(R.GET_VRING_BASE, encodeVringState({ index, num: 0 }), VRING_STATE_SIZE),
    );
    const base = decodeVringBase(reply.num, v.packed);
    if (reply.index !== index || reply.num > 0xffff || (v.packed && base.avail >= v.size)) {
      throw new DriverError(
        "TRANSPORT",
        `The vhost-user back-end at ${this.connection.path} answered GET_VRING_BASE of ${
          v.packed ? "packed" : "split"
        } vring ${index} (${v.size} entries) with vring ${reply.index}, base 0x${
          reply.num.toString(16)
        }: it is broken; restart it, then the program.`,
      );
    }
    return base;
  }

  /** Throws TRANSPORT when the back-end closed the connection (a look, no waiting). */
  checkOpen(): void {
    this.connection.checkOpen();
  }

  /** Closes the connection and every eventfd. Idempotent. */
  close(): void {
    this.connection.close();
    for (const v of this.#vrings.values()) {
      v.kick.close();
      v.call.close();
    }
  }

  #vring(index: number): Vring {
    const v = this.#vrings.get(index);
    if (!v) throw new RangeError(`${this.name}'s vring ${index} was never set up`);
    return v;
  }
}

function bit(n: number): bigint {
  return 1n << BigInt(n);
}
