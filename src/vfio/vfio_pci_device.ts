/**
 * A PCI function opened through kernel VFIO: the {@linkcode PciDevice} implementation for
 * the production path. Opening follows Documentation/driver-api/vfio.rst: check the
 * function in sysfs, bind it to vfio-pci if asked, open container and group, check the
 * group is viable, attach, select type1v2, get the device fd; regions are mmap'd where
 * VFIO allows it (whole region or the sparse-mmap areas) and reached by pread/pwrite
 * otherwise.
 *
 * @module
 */

import {
  addressOf,
  check,
  libc,
  MAP_FAILED,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  SysError,
} from "../../ffi/libc.ts";
import {
  argszBuffer,
  decodeDeviceInfo,
  decodeIrqInfo,
  decodeRegionInfo,
  type DeviceInfo,
  encodeIrqInfoRequest,
  encodeIrqSetEventfds,
  encodeRegionInfoRequest,
  type IrqInfo,
  type RegionInfo,
  SIZEOF_DEVICE_INFO,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_RESET,
  VFIO_DEVICE_SET_IRQS,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_REGION_INFO_FLAG_MMAP,
} from "../../ffi/vfio_uapi.ts";
import type { Doorbell } from "../dma/doorbell.ts";
import { DriverError, ReleaseStack } from "../errors.ts";
import { formatPciAddress, type PciAddress } from "../pci/address.ts";
import {
  checkIrqRange,
  checkRegister16,
  type DmaSegment,
  mappedDoorbell16,
  MappedRegionIo,
  type PciDevice,
  type RegionIo,
} from "../pci/pci_device.ts";
import { isVirtioNet, notVirtioNetMessage, SysfsPciFunction } from "../pci/sysfs.ts";
import { VfioContainer } from "./container.ts";
import { VfioGroup } from "./group.ts";

/** Options for {@linkcode openVfioPci}. */
export interface OpenVfioOptions {
  /**
   * Take the function from its kernel driver (driver_override + drivers_probe). Without
   * it, a function bound to another driver is refused with BOUND_TO_KERNEL_DRIVER.
   */
  bind?: boolean;
  /**
   * On close, hand the function back to the driver it had before this process bound it;
   * a function that was on vfio-pci already stays there.
   */
  restoreDriver?: boolean;
  /** Skip the virtio-net identity check (for tools that drive other functions). */
  anyDevice?: boolean;
  /**
   * With `bind`: take the function even when its network interface carries this host's
   * traffic (up with addresses or routes), which is refused otherwise.
   */
  force?: boolean;
  /** Directory holding `sys/` and `proc/` (default "/"); tests point it at a fake tree. */
  root?: string;
}

/** Register access by pread/pwrite on the device fd, for regions that cannot be mmap'd. */
class PreadRegionIo implements RegionIo {
  readonly mapped = false;
  readonly size: number;
  /** The device fd. */
  readonly fd: number;
  /** Where the region starts in the device fd (VFIO_DEVICE_GET_REGION_INFO's offset). */
  readonly regionOffset: bigint;
  readonly #fd: number;
  readonly #offset: bigint;
  readonly #buf = new Uint8Array(4);
  readonly #view = new DataView(this.#buf.buffer);

  constructor(fd: number, info: RegionInfo) {
    this.#fd = fd;
    this.#offset = info.offset;
    this.fd = fd;
    this.regionOffset = info.offset;
    this.size = info.size;
  }
  #read(offset: number, width: number): DataView {
    const n = libc.pread(this.#fd, this.#buf, BigInt(width), this.#offset + BigInt(offset));
    if (Number(n) !== width) throw new SysError("pread", `region offset ${offset}`);
    return this.#view;
  }
  #write(offset: number, width: number): void {
    const n = libc.pwrite(this.#fd, this.#buf, BigInt(width), this.#offset + BigInt(offset));
    if (Number(n) !== width) throw new SysError("pwrite", `region offset ${offset}`);
  }
  read8(offset: number): number {
    return this.#read(offset, 1).getUint8(0);
  }
  read16(offset: number): number {
    return this.#read(offset, 2).getUint16(0, true);
  }
  read32(offset: number): number {
    return this.#read(offset, 4).getUint32(0, true);
  }
  write8(offset: number, value: number): void {
    this.#view.setUint8(0, value);
    this.#write(offset, 1);
  }
  write16(offset: number, value: number): void {
    this.#view.setUint16(0, value, true);
    this.#write(offset, 2);
  }
  write32(offset: number, value: number): void {
    this.#view.setUint32(0, value, true);
    this.#write(offset, 4);
  }
}

/** A PCI function opened through kernel VFIO. */
export class VfioPciDevice implements PciDevice {
  readonly name: string;
  readonly config: RegionIo;
  /** VFIO_DEVICE_GET_INFO of the device. */
  readonly info: DeviceInfo;
  readonly #fd: number;
  readonly #container: VfioContainer;
  readonly #release: ReleaseStack;
  readonly #bars = new Map<number, RegionIo>();
  readonly #restore: { onClose: boolean };
  /** Per IRQ type set up with eventfds: the fd VFIO holds for each vector 0… (-1: none). */
  readonly #irqs = new Map<number, number[]>();
  #closed = false;

  private constructor(
    name: string,
    fd: number,
    container: VfioContainer,
    release: ReleaseStack,
    restore: { onClose: boolean },
  ) {
    this.#restore = restore;
    this.name = name;
    this.#fd = fd;
    this.#container = container;
    this.#release = release;
    const b = argszBuffer(SIZEOF_DEVICE_INFO);
    check(libc.ioctl(fd, BigInt(VFIO_DEVICE_GET_INFO), b), "ioctl VFIO_DEVICE_GET_INFO");
    this.info = decodeDeviceInfo(b);
    if (!(this.info.flags & VFIO_DEVICE_FLAGS_PCI)) {
      throw new DriverError("VFIO", `${name} is not a vfio-pci device.`);
    }
    this.config = new PreadRegionIo(fd, this.regionInfo(VFIO_PCI_CONFIG_REGION_INDEX));
  }

  /**
   * Opens `address` through kernel VFIO. Everything taken is released again if any step
   * fails, and by {@linkcode VfioPciDevice.close}.
   *
   * @example
   * ```ts ignore
   * import { openVfioPci } from "../../mod.ts";
   * const dev = VfioPciDevice.open({ domain: 0, bus: 0, device: 4, fn: 0 }, { bind: true });
   * dev.close();
   * ```
   */
  static open(address: PciAddress, options: OpenVfioOptions = {}): VfioPciDevice {
    const name = formatPciAddress(address);
    const release = new ReleaseStack();
    const restore = { onClose: options.restoreDriver ?? false };
    try {
      const fn = new SysfsPciFunction(name, options.root);
      const id = fn.identity();
      if (!options.anyDevice && !isVirtioNet(id)) {
        throw new DriverError("NOT_VIRTIO_NET", notVirtioNetMessage(name, id));
      }
      const driver = fn.driver();
      if (driver !== null && driver !== "vfio-pci" && !options.bind) {
        throw new DriverError(
          "BOUND_TO_KERNEL_DRIVER",
          `${name} is bound to the kernel driver ${driver}: pass --bind (option bind: true) to hand it to vfio-pci, or unbind it yourself.`,
        );
      }
      if (driver !== "vfio-pci") {
        const previous = fn.bindVfioPci({ force: options.force });
        // A failed open gives the function back to the driver it had; a successful one
        // keeps it on vfio-pci after close unless restoreDriver asks otherwise.
        release.push(`return ${name} to ${previous ?? "no driver"}`, () => {
          if (restore.onClose) fn.restoreDriver(previous);
        });
      }
      // A function already on vfio-pci was bound by someone else (another process or a
      // VM may hold it): neither a failure nor restoreDriver unbinds it; we undo only ours.
      const groupNo = fn.iommuGroup();
      if (groupNo === null) {
        throw new DriverError(
          "VFIO",
          `${name} has no IOMMU group: turn the IOMMU on (intel_iommu=on or amd_iommu=on on the kernel command line).`,
        );
      }
      const container = VfioContainer.open();
      release.push("close VFIO container", () => container.close());
      const group = VfioGroup.open(groupNo);
      release.push(`close VFIO group ${groupNo}`, () => group.close());
      group.requireViable();
      group.setContainer(container);
      container.setIommu();
      const fd = group.deviceFd(name);
      release.push(`close device fd of ${name}`, () => libc.close(fd));
      return new VfioPciDevice(name, fd, container, release, restore);
    } catch (e) {
      restore.onClose = true;
      release.releaseAll();
      throw e;
    }
  }

  /** VFIO_DEVICE_GET_REGION_INFO with the capability chain. */
  regionInfo(index: number): RegionInfo {
    let b = encodeRegionInfoRequest(index);
    check(libc.ioctl(this.#fd, BigInt(VFIO_DEVICE_GET_REGION_INFO), b), "ioctl GET_REGION_INFO");
    let info = this.#decodeRegionInfo(b, index);
    if (info.argsz > b.length) {
      b = encodeRegionInfoRequest(index, info.argsz);
      check(libc.ioctl(this.#fd, BigInt(VFIO_DEVICE_GET_REGION_INFO), b), "ioctl GET_REGION_INFO");
      info = this.#decodeRegionInfo(b, index);
    }
    return info;
  }

  /** The decoder's RangeError (a reply that breaks its own layout) as one sentence. */
  #decodeRegionInfo(b: Uint8Array, index: number): RegionInfo {
    try {
      return decodeRegionInfo(b);
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      throw new DriverError(
        "DEVICE_MISBEHAVED",
        `VFIO described region ${index} of ${this.name} inconsistently (${e.message}): check the device and its kernel driver, then open it again.`,
      );
    }
  }

  bar(index: number): RegionIo {
    const cached = this.#bars.get(index);
    if (cached) return cached;
    const info = this.regionInfo(index);
    if (info.size === 0) {
      throw new DriverError("DEVICE_MISBEHAVED", `${this.name} has no BAR${index}.`);
    }
    // mmap when VFIO allows the whole region (no sparse list, or one area covering it);
    // virtio's capability structures then cost a plain load/store each.
    const whole = !info.sparseAreas ||
      info.sparseAreas.some((a) => a.offset === 0 && a.size >= info.size);
    let io: RegionIo;
    if ((info.flags & VFIO_REGION_INFO_FLAG_MMAP) && whole) {
      const p = libc.mmap(
        null,
        BigInt(info.size),
        PROT_READ | PROT_WRITE,
        MAP_SHARED,
        this.#fd,
        info.offset,
      );
      if (addressOf(p) === MAP_FAILED) throw new SysError("mmap", `${this.name} BAR${index}`);
      this.#release.push(`munmap BAR${index}`, () => libc.munmap(p, BigInt(info.size)));
      io = new MappedRegionIo(Deno.UnsafePointerView.getArrayBuffer(p!, info.size));
    } else {
      io = new PreadRegionIo(this.#fd, info);
    }
    this.#bars.set(index, io);
    return io;
  }

  doorbell16(bar: number, offset: number, value: number): Doorbell {
    const what = `BAR${bar} of ${this.name}`;
    const io = this.bar(bar);
    const bell = mappedDoorbell16(io, offset, value, what);
    if (bell) return bell;
    if (io instanceof PreadRegionIo) {
      // An I/O BAR (a legacy virtio device's BAR0) is never mmap'd: VFIO serves it through
      // pread/pwrite on the device fd, and so do the workers (vfio.h, region offsets).
      checkRegister16(io, offset, what);
      return { kind: "pwrite16", fd: io.fd, offset: io.regionOffset + BigInt(offset), value, what };
    }
    throw new DriverError(
      "UNSUPPORTED",
      `VFIO cannot mmap ${what}, so forwarding workers cannot notify through it: use a device whose notify BAR VFIO can map.`,
    );
  }

  iovaRanges(): { start: bigint; end: bigint }[] {
    return this.#container.iovaRanges();
  }

  dmaMap(segment: DmaSegment, iova: bigint): void {
    this.#container.mapDma(segment.vaddr, iova, segment.size);
  }

  dmaUnmap(iova: bigint, size: number): void {
    this.#container.unmapDma(iova, size);
  }

  reset(): void {
    if (this.info.flags & VFIO_DEVICE_FLAGS_RESET) {
      check(
        libc.ioctl(this.#fd, BigInt(VFIO_DEVICE_RESET), new Uint8Array(0)),
        "VFIO_DEVICE_RESET",
      );
    }
  }

  /** VFIO_DEVICE_GET_IRQ_INFO of IRQ type `index` (VFIO_PCI_*_IRQ_INDEX). */
  irqInfo(index: number): IrqInfo {
    const b = encodeIrqInfoRequest(index);
    check(libc.ioctl(this.#fd, BigInt(VFIO_DEVICE_GET_IRQ_INFO), b), "ioctl GET_IRQ_INFO");
    return decodeIrqInfo(b);
  }

  irqCount(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.info.numIrqs) return 0;
    return this.irqInfo(index).count;
  }

  setIrqEventfds(index: number, start: number, fds: number[]): void {
    const current = this.#irqs.get(index);
    if (fds.length === 0) {
      // vfio.h: "DATA_NONE with count 0 and ACTION_TRIGGER" turns the whole type off.
      if (current) {
        this.#irqs.delete(index);
        this.#setIrqs(index, 0, []);
      }
      return;
    }
    checkIrqRange(this.name, index, start, fds.length, this.irqCount(index));
    if (current && start + fds.length <= current.length) {
      this.#setIrqs(index, start, fds);
      fds.forEach((fd, i) => current[start + i] = fd);
      return;
    }
    // The first call enables the type with start + count vectors (vfio_pci_set_msi_trigger).
    // Linux before 6.5 cannot add vectors to an enabled MSI-X set (vfio_msi_set_block
    // answers EINVAL), so a call beyond it turns the type off and enables it anew with
    // every vector assigned so far; -1 leaves a vector without an eventfd.
    const next = current ? [...current] : [];
    while (next.length < start + fds.length) next.push(-1);
    fds.forEach((fd, i) => next[start + i] = fd);
    if (current) this.#setIrqs(index, 0, []);
    this.#irqs.delete(index);
    this.#setIrqs(index, 0, next);
    this.#irqs.set(index, next);
  }

  #setIrqs(index: number, start: number, fds: number[]): void {
    const b = encodeIrqSetEventfds(index, start, fds);
    if (libc.ioctl(this.#fd, BigInt(VFIO_DEVICE_SET_IRQS), b) < 0) {
      const e = new SysError("ioctl VFIO_DEVICE_SET_IRQS", `IRQ type ${index}`);
      throw new DriverError(
        "VFIO",
        `${this.name} refused to ${fds.length ? "route" : "turn off"} interrupts ${
          fds.length ? `${start}…${start + fds.length - 1} ` : ""
        }of IRQ type ${index} (${e.message}): check the host's interrupt remapping (dmesg) and that no other user holds them.`,
        { cause: e },
      );
    }
  }

  close(options: { restoreDriver?: boolean } = {}): void {
    if (options.restoreDriver) this.#restore.onClose = true;
    const failures: string[] = [];
    if (!this.#closed) {
      // Interrupts go off before the device fd closes (the kernel would tear them down
      // then too, but an explicit SET_IRQS reports a failure instead of hiding it).
      for (const index of [...this.#irqs.keys()]) {
        try {
          this.setIrqEventfds(index, 0, []);
        } catch (e) {
          failures.push(`turn off IRQ type ${index}: ${(e as Error).message}`);
        }
      }
      this.#closed = true;
    }
    failures.push(...this.#release.releaseAll());
    if (failures.length) {
      throw new DriverError("VFIO", `Releasing ${this.name}: ${failures.join("; ")}.`);
    }
  }
}
