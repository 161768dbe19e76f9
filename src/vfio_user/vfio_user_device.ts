/**
 * A PCI function served over vfio-user (QEMU's `x-vfio-user-server`): the
 * {@linkcode PciDevice} implementation for test bed 2, where the driver runs on the host
 * and the device model lives in another process. Config space is region 7 reached by
 * REGION_READ/WRITE; BARs are mmap'd where the server offers an fd and messages
 * otherwise; DMA memory is shared by passing its memfd with DMA_MAP (vfio-user.rst,
 * "Client memory access"). Interrupt routing (SET_IRQS and the MSI-X enabling the client
 * does itself) lives in irq_routing.ts.
 *
 * @module
 */

import {
  addressOf,
  EACCES,
  ENOENT,
  libc,
  MAP_FAILED,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  strerror,
  SysError,
} from "../../ffi/libc.ts";
import {
  closeFds,
  ECONNREFUSED,
  ENAMETOOLONG,
  ENOTSOCK,
  ETIMEDOUT,
  UNIX_PATH_MAX,
} from "../../ffi/unix_socket.ts";
import type { Doorbell } from "../dma/doorbell.ts";
import { postedWrite16 } from "./posted_write.ts";
import { DriverError, ReleaseStack } from "../errors.ts";
import { PCI_COMMAND, PCI_COMMAND_MEMORY } from "../pci/capabilities.ts";
import {
  checkRegister16,
  type DmaSegment,
  mappedDoorbell16,
  MappedRegionIo,
  type PciDevice,
  type RegionIo,
} from "../pci/pci_device.ts";
import { type ClientOptions, VfioUserClient, VfioUserCommandError } from "./client.ts";
import {
  decodeDeviceInfo,
  decodeRegionInfo,
  DEVICE_FLAGS_PCI,
  DEVICE_FLAGS_RESET,
  type DeviceInfo,
  DMA_REGION_READ,
  DMA_REGION_WRITE,
  encodeDeviceInfoRequest,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeRegionInfoRequest,
  type IrqInfo,
  REGION_INFO_FLAG_MMAP,
  REGION_INFO_SIZE,
  type RegionInfo,
  VFIO_USER_DEVICE_GET_INFO,
  VFIO_USER_DEVICE_GET_REGION_INFO,
  VFIO_USER_DEVICE_RESET,
  VFIO_USER_DMA_MAP,
  VFIO_USER_DMA_UNMAP,
} from "./protocol.ts";
import { assignBars, restoreBars, saveBars } from "./bar_assignment.ts";
import { VfioUserIrqs } from "./irq_routing.ts";
import { type MappedArea, MessageRegionIo, SparseRegionIo } from "./region_io.ts";

/** Region index of PCI config space (VFIO_PCI_CONFIG_REGION_INDEX). */
export const CONFIG_REGION = 7;
/** First IOVA handed out: above the 32-bit space. */
export const IOVA_START = 1n << 32n;
/** End of the IOVA space offered (exclusive): 48 bits. */
export const IOVA_END = 1n << 48n;
/** Room for the capability list asked for with each DEVICE_GET_REGION_INFO. */
const REGION_INFO_ARGSZ = REGION_INFO_SIZE + 256;

/** Options of {@linkcode VfioUserDevice.open}. */
export interface VfioUserOpenOptions extends ClientOptions {
  /**
   * Send BAR writes with No_reply (posted, as PCI memory writes are): a notification is
   * one message instead of a round trip, but an error the server meets is not seen.
   * Config space writes always wait. Default false.
   */
  postedWrites?: boolean;
}

/**
 * The one-sentence wording of a failed connect(2) to a vfio-user socket.
 *
 * @example
 * ```ts
 * import { connectFailure } from "./vfio_user_device.ts";
 * connectFailure("/tmp/x.sock", 2).message;
 * // "No vfio-user server listens on /tmp/x.sock (no such file): start QEMU with -object x-vfio-user-server,id=vfu0,type=unix,path=/tmp/x.sock,device=NIC-ID or check the path."
 * ```
 */
export function connectFailure(path: string, errno: number, cause?: unknown): DriverError {
  const start =
    `start QEMU with -object x-vfio-user-server,id=vfu0,type=unix,path=${path},device=NIC-ID or check the path.`;
  switch (errno) {
    case ENOENT:
      return new DriverError(
        "TRANSPORT",
        `No vfio-user server listens on ${path} (no such file): ${start}`,
        { cause },
      );
    case ECONNREFUSED:
      return new DriverError(
        "TRANSPORT",
        `No vfio-user server listens on ${path} (connection refused: the server exited, or already serves its one client): ${start}`,
        { cause },
      );
    case EACCES:
      return new DriverError(
        "PERMISSION",
        `Permission denied connecting to ${path}: run as root or as the owner of the socket.`,
        { cause },
      );
    case ENOTSOCK:
      return new DriverError(
        "BAD_ADDRESS",
        `${path} is not a socket: give the path that QEMU's x-vfio-user-server listens on.`,
        { cause },
      );
    case ETIMEDOUT:
      return new DriverError(
        "TRANSPORT",
        `The vfio-user server at ${path} accepted no connection in time (its listen queue is full: it is stuck, or busy with other clients): restart it, or check the path.`,
        { cause },
      );
    case ENAMETOOLONG:
      return new DriverError(
        "BAD_ADDRESS",
        `The socket path ${path} is longer than ${UNIX_PATH_MAX} bytes: put the socket in a shorter directory.`,
        { cause },
      );
    default:
      return new DriverError(
        "TRANSPORT",
        `Connecting to the vfio-user server at ${path} failed: ${
          strerror(errno)
        } (errno ${errno}).`,
        { cause },
      );
  }
}

function hex(n: bigint | number): string {
  return "0x" + n.toString(16);
}

/** A PCI function opened over vfio-user. */
export class VfioUserDevice implements PciDevice {
  readonly name: string;
  readonly config: RegionIo;
  /** DEVICE_GET_INFO of the device. */
  readonly info: DeviceInfo;
  /** The connection (for tools and measurements). */
  readonly client: VfioUserClient;
  readonly #release = new ReleaseStack();
  readonly #bars = new Map<number, RegionIo>();
  readonly #dma = new Map<bigint, number>();
  readonly #posted: boolean;
  readonly #irqs: VfioUserIrqs;
  #closed = false;

  private constructor(client: VfioUserClient, options: VfioUserOpenOptions) {
    this.client = client;
    this.name = `vfio-user:${client.socketPath}`;
    this.#posted = options.postedWrites ?? false;
    // "VFIO_USER_DEVICE_GET_INFO".
    const r = client.request(VFIO_USER_DEVICE_GET_INFO, encodeDeviceInfoRequest());
    this.info = client.decodeReply(VFIO_USER_DEVICE_GET_INFO, r.payload, decodeDeviceInfo);
    if (!(this.info.flags & DEVICE_FLAGS_PCI) || this.info.numRegions <= CONFIG_REGION) {
      throw new DriverError(
        "UNSUPPORTED",
        `The vfio-user device at ${client.socketPath} is not a PCI device (flags ${
          hex(this.info.flags)
        }, ${this.info.numRegions} regions): serve a PCI NIC such as virtio-net-pci.`,
      );
    }
    const cfg = this.regionInfo(CONFIG_REGION);
    this.config = new MessageRegionIo(client, CONFIG_REGION, cfg.size);
    this.#irqs = new VfioUserIrqs(
      client,
      this.name,
      this.config,
      this.info.numIrqs,
      (i) => this.bar(i),
    );
    // Act as firmware: QEMU's server reaches a BAR only once it has an address and memory
    // decoding is on (see bar_assignment.ts).
    const sizes = [0, 1, 2, 3, 4, 5].map((i) =>
      i < this.info.numRegions ? this.regionInfo(i).size : 0
    );
    assignBars(this.config, (i) => sizes[i]);
    const cmd = this.config.read16(PCI_COMMAND);
    if (!(cmd & PCI_COMMAND_MEMORY)) this.config.write16(PCI_COMMAND, cmd | PCI_COMMAND_MEMORY);
  }

  /**
   * Connects to the vfio-user server at `socketPath` and reads the device's info. A
   * missing or dead server gives a TRANSPORT {@linkcode DriverError} that says how to
   * start one.
   *
   * @example
   * ```ts ignore
   * import { VfioUserDevice } from "./vfio_user_device.ts";
   * const dev = VfioUserDevice.open("/tmp/vfu/net0.sock");
   * dev.config.read16(0).toString(16); // "1af4"
   * dev.close();
   * ```
   */
  static open(socketPath: string, options: VfioUserOpenOptions = {}): VfioUserDevice {
    let client: VfioUserClient;
    try {
      client = VfioUserClient.connect(socketPath, options);
    } catch (e) {
      if (e instanceof SysError && e.op === "connect") {
        throw connectFailure(socketPath, e.errno, e);
      }
      throw e;
    }
    try {
      return new VfioUserDevice(client, options);
    } catch (e) {
      client.close();
      throw e;
    }
  }

  /** False once the server went away or the device was closed. */
  get connected(): boolean {
    return this.client.connected;
  }

  /**
   * DEVICE_GET_REGION_INFO of region `index`, capabilities included (asked again with a
   * larger argsz when the reply needs more, "Message sizes"). Any fd that came with the
   * reply is handed to `takeFd`, or closed.
   */
  regionInfo(index: number, takeFd?: (fd: number) => void): RegionInfo {
    let argsz = REGION_INFO_ARGSZ;
    for (;;) {
      const r = this.client.request(
        VFIO_USER_DEVICE_GET_REGION_INFO,
        encodeRegionInfoRequest(index, argsz),
        { takeFds: takeFd !== undefined },
      );
      let info: RegionInfo;
      try {
        info = this.client.decodeReply(
          VFIO_USER_DEVICE_GET_REGION_INFO,
          r.payload,
          decodeRegionInfo,
        );
      } catch (e) {
        closeFds(r.fds);
        throw e;
      }
      if (info.argsz > argsz && argsz === REGION_INFO_ARGSZ) {
        closeFds(r.fds);
        argsz = info.argsz;
        continue;
      }
      if (takeFd && r.fds.length) {
        takeFd(r.fds[0]);
        closeFds(r.fds.slice(1));
      } else {
        closeFds(r.fds);
      }
      return info;
    }
  }

  /** DEVICE_GET_IRQ_INFO of IRQ type `index` (0 INTx, 1 MSI, 2 MSI-X, 3 ERR, 4 REQ). */
  irqInfo(index: number): IrqInfo {
    return this.#irqs.info(index);
  }

  irqCount(index: number): number {
    return this.#irqs.count(index);
  }

  setIrqEventfds(index: number, start: number, fds: number[]): void {
    this.#irqs.setEventfds(index, start, fds);
  }

  doorbell16(bar: number, offset: number, value: number): Doorbell {
    const what = `BAR${bar} of ${this.name}`;
    const io = this.bar(bar);
    const mapped = mappedDoorbell16(io, offset, value, what);
    if (mapped) return mapped;
    checkRegister16(io, offset, what);
    if (this.client.socketFd < 0) {
      throw new DriverError(
        "TRANSPORT",
        `${this.name} is closed, so forwarding workers cannot notify its queues: open the port again.`,
      );
    }
    return {
      kind: "message",
      fd: this.client.socketFd,
      bytes: postedWrite16(bar, offset, value),
      what: `the vfio-user server of ${this.name}`,
    };
  }

  bar(index: number): RegionIo {
    const cached = this.#bars.get(index);
    if (cached) return cached;
    if (!Number.isInteger(index) || index < 0 || index > 5) {
      throw new RangeError(`BAR index ${index} is not 0-5`);
    }
    let fd = -1;
    const info = this.regionInfo(index, (f) => fd = f);
    try {
      if (info.size === 0) {
        throw new DriverError("DEVICE_MISBEHAVED", `${this.name} has no BAR${index}.`);
      }
      const messages = new MessageRegionIo(this.client, index, info.size, {
        posted: this.#posted,
      });
      let io: RegionIo = messages;
      // "Region Information": with the MMAP flag the reply carries an fd to mmap at
      // `offset`; sparse areas are mapped at `offset` + area offset ("Sparse Regions").
      if ((info.flags & REGION_INFO_FLAG_MMAP) && fd >= 0) {
        const areas = info.sparseAreas ?? [{ offset: 0, size: info.size }];
        const mapped: MappedArea[] = areas.filter((a) => a.size > 0).map((a) => ({
          offset: a.offset,
          size: a.size,
          io: this.#mmap(fd, info.offset + BigInt(a.offset), a.size, index),
        }));
        const whole = mapped.find((a) => a.offset === 0 && a.size >= info.size);
        io = whole ? whole.io : new SparseRegionIo(messages, mapped);
      }
      this.#bars.set(index, io);
      return io;
    } finally {
      if (fd >= 0) libc.close(fd);
    }
  }

  #mmap(fd: number, offset: bigint, size: number, bar: number): MappedRegionIo {
    const p = libc.mmap(null, BigInt(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
    if (p === null || addressOf(p) === MAP_FAILED) {
      throw new DriverError(
        "TRANSPORT",
        `Mapping BAR${bar} of ${this.name} failed (${
          new SysError("mmap", "").message
        }): the server offered a region fd that cannot be mapped.`,
      );
    }
    this.#release.push(`munmap BAR${bar}`, () => libc.munmap(p, BigInt(size)));
    return new MappedRegionIo(Deno.UnsafePointerView.getArrayBuffer(p, size));
  }

  iovaRanges(): { start: bigint; end: bigint }[] {
    // The server maps whatever the client names (libvfio-user: up to 16 regions of up to
    // 8 TiB); start above 4 GiB so no IOVA looks like a 32-bit address.
    return [{ start: IOVA_START, end: IOVA_END - 1n }];
  }

  dmaMap(segment: DmaSegment, iova: bigint): void {
    // "VFIO_USER_DMA_MAP": the memfd goes along as SCM_RIGHTS; the server mmaps it at
    // `offset` for `size` bytes and serves DMA to [iova, iova + size) from it.
    const payload = encodeDmaMap({
      flags: DMA_REGION_READ | DMA_REGION_WRITE,
      offset: BigInt(segment.fdOffset),
      address: iova,
      size: BigInt(segment.size),
    });
    try {
      this.client.request(VFIO_USER_DMA_MAP, payload, { fds: [segment.fd] });
    } catch (e) {
      if (!(e instanceof VfioUserCommandError)) throw e;
      const why = e.errno === 17 /* EEXIST, as the spec has it */
        ? "that IOVA range overlaps a mapping made before"
        : e.errno === 22 /* EINVAL, what libvfio-user answers */
        ? "it overlaps a mapping made before, or the server already holds its most DMA regions (libvfio-user: 16); map fewer, larger regions"
        : e.errno === 28 /* ENOSPC */
        ? "the region is larger than the server accepts (libvfio-user: 8 TiB); map it in pieces"
        : "see the server's log for why";
      throw new DriverError(
        "DMA",
        `The vfio-user server at ${this.client.socketPath} refused to map ${segment.size} bytes of DMA memory at IOVA ${
          hex(iova)
        } (${e.errno ? strerror(e.errno) : "no errno"}): ${why}.`,
        { cause: e },
      );
    }
    this.#dma.set(iova, segment.size);
  }

  dmaUnmap(iova: bigint, size: number): void {
    if (!this.#dma.has(iova)) return;
    this.#dma.delete(iova);
    // A server that went away dropped every mapping with the connection ("Client
    // Disconnection"): nothing is left to unmap.
    if (!this.client.connected) return;
    // "VFIO_USER_DMA_UNMAP": address and size must match the mapping exactly.
    this.client.request(
      VFIO_USER_DMA_UNMAP,
      encodeDmaUnmap({ flags: 0, address: iova, size: BigInt(size) }),
    );
  }

  reset(): void {
    // "VFIO_USER_DEVICE_RESET": QEMU resets the whole function, config space included, so
    // BAR addresses and the command register are put back afterwards, as kernel VFIO
    // restores a function's config state around VFIO_DEVICE_RESET.
    if (!(this.info.flags & DEVICE_FLAGS_RESET)) return;
    const bars = saveBars(this.config);
    const cmd = this.config.read16(PCI_COMMAND);
    this.client.request(VFIO_USER_DEVICE_RESET);
    restoreBars(this.config, bars);
    this.config.write16(PCI_COMMAND, cmd);
    this.#irqs.afterReset();
  }

  close(_options: { restoreDriver?: boolean } = {}): void {
    if (this.#closed) return;
    this.#closed = true;
    const failures: string[] = [];
    // Interrupts go off first, while the device still has its BARs and the connection.
    for (const index of this.#irqs.routedTypes()) {
      try {
        if (this.client.connected) this.setIrqEventfds(index, 0, []);
      } catch (e) {
        if (this.client.connected) {
          failures.push(`turn off IRQ type ${index}: ${(e as Error).message}`);
        }
      }
    }
    this.#irqs.forget();
    for (const [iova, size] of [...this.#dma]) {
      try {
        this.dmaUnmap(iova, size);
      } catch (e) {
        // A server that died meanwhile took its mappings with it.
        if (this.client.connected) {
          failures.push(`unmap IOVA ${hex(iova)}: ${(e as Error).message}`);
        }
      }
    }
    this.#dma.clear();
    this.#bars.clear();
    failures.push(...this.#release.releaseAll());
    this.client.close();
    if (failures.length) {
      throw new DriverError("TRANSPORT", `Closing ${this.name}: ${failures.join("; ")}.`);
    }
  }
}
