/**
 * The vfio-user transport against QEMU's real vfio-user server (test bed 2,
 * tests/bed/vfio_user_bed.ts): the device layer alone, the whole driver moving frames
 * through a tap, and the failures a user meets (no server, wrong path, server killed,
 * refused DMA map, device without ACCESS_PLATFORM).
 *
 * Needs root (network namespace, taps) and the QEMU built by
 * tools/build_bed_qemu.sh (the bed builds it on first use, 6–7 minutes).
 * Run: `deno test --allow-all tests/vfio_user_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DriverError } from "../src/errors.ts";
import { NO_BUFFER } from "../src/dma/buffer_pool.ts";
import { DmaRegion } from "../src/dma/memory.ts";
import { VirtioNetPort } from "../src/net/port.ts";
import { parsePortSpec } from "../src/port_name.ts";
import { featureNames } from "../src/virtio/features.ts";
import { openPort, pciTransport } from "../src/open_port.ts";
import { VfioUserDevice, type VfioUserOpenOptions } from "../src/vfio_user/vfio_user_device.ts";
import { parseTestFrame, TEST_ETHERTYPE, testFrames } from "./bed/frames.ts";
import { CaptureError, sendFrames, startCapture } from "./bed/traffic.ts";
import { VfioUserBed } from "./bed/vfio_user_bed.ts";

const isRoot = Deno.uid() === 0;

/**
 * Sockets and memfds open in this process: what the driver opens (the vfio-user socket,
 * DMA memory). Other descriptors come and go with the bed's QEMU processes (pipes, pidfds).
 */
function fdCount(): number {
  let n = 0;
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      const target = Deno.readLinkSync(`/proc/self/fd/${e.name}`);
      if (target.startsWith("socket:") || target.startsWith("/memfd:")) n++;
    } catch { /* the directory being listed */ }
  }
  return n;
}

/** VirtioNetPort.open over a vfio-user device opened here, not through openPort(). */
function openDirect(name: string, options: VfioUserOpenOptions = {}): VirtioNetPort {
  const spec = parsePortSpec(name);
  if (spec.kind !== "vfio-user") throw new Error(`not a vfio-user port: ${spec.name}`);
  return VirtioNetPort.open(pciTransport(VfioUserDevice.open(spec.socketPath, options)));
}

function rate(n: number, ms: number): string {
  return `${Math.round((n * 1000) / ms).toLocaleString("en-US")} frames/s`;
}

function micros(ms: number, n: number): string {
  return `${((ms * 1000) / n).toFixed(1)} µs`;
}

/** Asserts `fn` throws a DriverError with `code` and returns its message. */
function driverError(fn: () => unknown, code: string): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof DriverError, `expected a DriverError, got ${e}`);
    assert.equal(e.code, code, e.message);
    return e.message;
  }
  assert.fail(`expected a DriverError ${code}`);
}

const yieldToLoop = () => new Promise((r) => setTimeout(r, 0));

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, k) => x === b[k]);
}

Deno.test({
  name: "vfio-user device: VERSION, device and region info, config space, register round trips",
  ignore: !isRoot,
  async fn() {
    await using bed = await VfioUserBed.start({ ports: 1, queues: 2 });
    const fds0 = fdCount();
    const dev = VfioUserDevice.open(bed.socketPath(0), { maxDataXferSize: 64 });
    try {
      const c = dev.client;
      console.log(
        `server: vfio-user ${c.version}, max_msg_fds ${c.server.maxMsgFds}, max_data_xfer_size ${c.server.maxDataXferSize}`,
      );
      assert.equal(c.version, "0.1");
      assert.equal(c.maxDataXferSize, 64); // ours, the smaller one
      console.log(`device info: ${JSON.stringify(dev.info)}`);
      assert.equal(dev.info.numRegions, 10);
      assert.equal(dev.info.numIrqs, 5);
      assert.equal(dev.config.read16(0), 0x1af4);
      assert.equal(dev.config.read16(2), 0x1041);
      assert.equal(dev.config.size, 256);
      for (let i = 0; i < dev.info.numRegions; i++) {
        const r = dev.regionInfo(i);
        if (r.size) console.log(`region ${i}: ${r.size} bytes, flags 0x${r.flags.toString(16)}`);
      }
      const bar4 = dev.bar(4);
      assert.equal(bar4.size, 16384);
      assert.equal(bar4.mapped, false, "QEMU 7.2 offers no mmap for BAR4");
      for (let i = 0; i < 5; i++) console.log(`irq ${i}: ${JSON.stringify(dev.irqInfo(i))}`);

      // max_data_xfer_size: 256 bytes of config space arrive in 4 reads of 64 and match
      // what 4-byte register reads give.
      const whole = c.regionRead(7, 0, 256);
      for (let off = 0; off < 256; off += 4) {
        assert.equal(
          new DataView(whole.buffer).getUint32(off, true),
          dev.config.read32(off),
          `config 0x${off.toString(16)}`,
        );
      }

      // Round trips: queue_select of the common configuration (BAR4 offset 22 in QEMU's
      // layout) is harmless to write and read.
      const N = 2000;
      let t = performance.now();
      for (let i = 0; i < N; i++) bar4.write16(22, 0);
      const writeMs = performance.now() - t;
      t = performance.now();
      for (let i = 0; i < N; i++) bar4.read16(22);
      const readMs = performance.now() - t;
      t = performance.now();
      for (let i = 0; i < N; i++) c.writeSmall(4, 22, 2, 0, true);
      bar4.read16(22); // the reply to this read comes after every posted write ran
      const postedMs = performance.now() - t;
      console.log(
        `REGION_WRITE round trip ${micros(writeMs, N)}, REGION_READ round trip ${
          micros(readMs, N)
        }, posted REGION_WRITE ${micros(postedMs, N)} each`,
      );
    } finally {
      dev.close();
      dev.close(); // idempotent
    }
    assert.equal(fdCount(), fds0, "file descriptors left open");
    assert.ok(await bed.waitExit(0), "QEMU exits when its client leaves");
  },
});

/** Opens a port on the bed, receives `n` frames sent into the tap, transmits `n`. */
async function rxTx(bed: VfioUserBed, n: number, options: VfioUserOpenOptions): Promise<void> {
  // Both ways of opening: VirtioNetPort.open on a transport, and openPort().
  const port = options.postedWrites
    ? openPort(bed.portName(0), { vfioUser: options })
    : openDirect(bed.portName(0), options);
  const mode = options.postedWrites ? "posted writes" : "acknowledged writes";
  try {
    console.log(`offered: ${featureNames(port.deviceFeatures).join(" ")}`);
    console.log(`negotiated: ${port.negotiatedFeatureNames().join(" ")}`);
    const { pool } = port, data = pool.data;
    const bufs = new Uint32Array(32), lens = new Uint32Array(32);

    // Host → tap → device → driver.
    const toDriver = testFrames({ seed: 11, count: n });
    const sending = sendFrames(bed, 0, toDriver);
    const received: Uint8Array[] = [];
    let others = 0, tFirst = 0;
    const deadline = performance.now() + 60000;
    while (received.length < n && performance.now() < deadline) {
      const k = port.rx().rxBurst(bufs, lens, 32);
      for (let i = 0; i < k; i++) {
        const off = port.frameOffset(bufs[i]);
        if (((data[off + 12] << 8) | data[off + 13]) === TEST_ETHERTYPE) {
          if (!received.length) tFirst = performance.now();
          received.push(data.slice(off, off + lens[i]));
        } else {
          others++;
        }
        pool.free(bufs[i]);
      }
      if (k === 0) await yieldToLoop();
    }
    const rxMs = performance.now() - tFirst;
    const sent = await sending;
    assert.equal(sent.sent, n);
    assert.equal(received.length, n, `received ${received.length} of ${n} frames`);
    received.forEach((f, i) => assert.deepEqual(f, toDriver[i], `received frame ${i}`));
    console.log(
      `rx (${mode}): ${n} frames intact and in order, ${others} other frames, ${rate(n, rxMs)}`,
    );

    // Driver → device → tap → host.
    const tapDropped0 = await bed.tapStat(0, "rx_dropped");
    const capture = await startCapture(bed, 0, {
      count: n,
      timeoutMs: 60000,
      ethertype: TEST_ETHERTYPE,
    });
    const fromDriver = testFrames({ seed: 12, count: n });
    const txq = port.tx();
    const t0 = performance.now();
    let done = 0;
    while (done < n && performance.now() < deadline) {
      let k = 0;
      while (k < 32 && done + k < n) {
        const b = pool.alloc();
        if (b === NO_BUFFER) break;
        const f = fromDriver[done + k];
        data.set(f, port.frameOffset(b));
        bufs[k] = b;
        lens[k] = f.length;
        k++;
      }
      const took = txq.txBurst(bufs, lens, k);
      for (let i = took; i < k; i++) pool.free(bufs[i]);
      done += took;
      if (took < k) txq.reclaim();
    }
    while (txq.vq.inFlight > 0 && performance.now() < deadline) txq.reclaim();
    const txMs = performance.now() - t0;
    assert.equal(done, n, "the driver queued every frame");
    assert.equal(txq.vq.inFlight, 0, "the device completed every frame");
    let captured: Uint8Array[];
    try {
      captured = await capture.done();
    } catch (e) {
      if (!(e instanceof CaptureError)) throw e;
      captured = e.frames;
    }
    // A frame QEMU wrote into the tap reaches the capture unless the host drops it on
    // receive (the CPU's backlog full under an unpaced burst): the tap counts it in
    // rx_dropped. Every frame is one or the other; those captured are intact and in order.
    const hostDropped = await bed.tapStat(0, "rx_dropped") - tapDropped0;
    assert.equal(
      captured.length + hostDropped,
      n,
      `captured ${captured.length}, dropped by the host ${hostDropped}, of ${n}`,
    );
    assert.ok(captured.length >= n / 2, `only ${captured.length} of ${n} captured`);
    let j = 0;
    captured.forEach((f, i) => {
      assert.ok(parseTestFrame(f), `captured frame ${i} is not a test frame`);
      while (j < n && !sameBytes(fromDriver[j], f)) j++;
      assert.ok(j < n, `captured frame ${i} is not one the driver sent, in order`);
      j++;
    });
    if (hostDropped) console.log(`tx (${mode}): the host dropped ${hostDropped} on receive`);
    console.log(
      `tx (${mode}): ${n} frames intact and in order, ${
        rate(n, txMs)
      }, ${txq.vq.kicks} kicks, ${txq.vq.kicksSuppressed} suppressed`,
    );
  } finally {
    port.close();
  }
}

Deno.test({
  name: "vfio-user driver: negotiates features, receives and transmits frames through the tap",
  ignore: !isRoot,
  async fn() {
    await using bed = await VfioUserBed.start({ ports: 1, queues: 2 });
    const fds0 = fdCount();
    await rxTx(bed, 5000, {});
    assert.ok(await bed.waitExit(0));
    await bed.restart(0); // one client per server: a fresh one for the second run
    await rxTx(bed, 5000, { postedWrites: true });
    assert.equal(fdCount(), fds0, "file descriptors left open");
  },
});

Deno.test({
  name: "vfio-user bad input: no server, wrong path, not a socket, relative path",
  ignore: !isRoot,
  async fn() {
    const fds0 = fdCount();
    const dir = await Deno.makeTempDir({ prefix: "vfu-bad-" });
    try {
      const missing = `${dir}/nothing.sock`;
      let msg = driverError(() => VfioUserDevice.open(missing), "TRANSPORT");
      console.log(`wrong path: ${msg}`);
      assert.match(msg, /^No vfio-user server listens on .*nothing\.sock .*x-vfio-user-server/);
      msg = driverError(
        () => openDirect(`vfio-user:${missing}`),
        "TRANSPORT",
      );
      assert.match(msg, /^No vfio-user server listens on/);

      const file = `${dir}/plain-file`;
      await Deno.writeTextFile(file, "");
      msg = driverError(() => VfioUserDevice.open(file), "BAD_ADDRESS");
      console.log(`not a socket: ${msg}`);

      msg = driverError(() => VfioUserDevice.open(`${dir}/${"x".repeat(120)}`), "BAD_ADDRESS");
      console.log(`path too long: ${msg}`);

      msg = driverError(
        () => openPort("vfio-user:net0.sock"),
        "BAD_ADDRESS",
      );
      console.log(`relative path: ${msg}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }

    // A socket file whose server is gone (QEMU killed): connection refused.
    await using bed = await VfioUserBed.start({ ports: 1, queues: 1 });
    await bed.kill(0);
    const msg = driverError(() => VfioUserDevice.open(bed.socketPath(0)), "TRANSPORT");
    console.log(`server not running: ${msg}`);
    assert.match(msg, /^No vfio-user server listens on .*connection refused/);
    assert.equal(fdCount(), fds0, "file descriptors left open");
  },
});

Deno.test({
  name: "vfio-user bad input: a second client times out while the server serves the first",
  ignore: !isRoot,
  async fn() {
    await using bed = await VfioUserBed.start({ ports: 1, queues: 1 });
    const first = VfioUserDevice.open(bed.socketPath(0));
    try {
      const fds0 = fdCount();
      const msg = driverError(
        () => VfioUserDevice.open(bed.socketPath(0), { timeoutMs: 1000 }),
        "TRANSPORT",
      );
      console.log(`second client: ${msg}`);
      assert.match(msg, /did not answer VFIO_USER_VERSION within 1000 ms/);
      assert.equal(fdCount(), fds0);
      assert.equal(first.config.read16(0), 0x1af4, "the first client still works");
    } finally {
      first.close();
    }
  },
});

Deno.test({
  name: "vfio-user bad input: server killed mid-run",
  ignore: !isRoot,
  async fn() {
    await using bed = await VfioUserBed.start({ ports: 1, queues: 2 });
    const fds0 = fdCount();
    const port = openDirect(bed.portName(0));
    let closeError: unknown = null;
    try {
      assert.ok(port.readConfig().linkUp);
      await bed.kill(0);
      const msg = driverError(() => port.readConfig(), "TRANSPORT");
      console.log(`server killed: ${msg}`);
      assert.match(
        msg,
        /^The vfio-user server at .* closed the connection during VFIO_USER_REGION_READ \(QEMU exited or was killed\): restart it and open the port again\.$/,
      );
      // Every later operation says the same.
      const bufs = new Uint32Array([port.pool.alloc()]), lens = new Uint32Array([60]);
      assert.equal(
        driverError(() => {
          port.tx().txBurst(bufs, lens, 1);
          port.transport.status; // a register read, should the kick have been suppressed
        }, "TRANSPORT"),
        msg,
      );
    } finally {
      try {
        port.close();
      } catch (e) {
        closeError = e; // the reset in close() cannot reach the device either
      }
    }
    if (closeError) console.log(`close after the kill: ${(closeError as Error).message}`);
    assert.equal(fdCount(), fds0, "file descriptors left open");
  },
});

Deno.test({
  name: "vfio-user bad input: a refused DMA map",
  ignore: !isRoot,
  async fn() {
    await using bed = await VfioUserBed.start({ ports: 1, queues: 1 });
    const fds0 = fdCount();
    const dev = VfioUserDevice.open(bed.socketPath(0));
    const region = DmaRegion.allocate(1 << 16, { hugePages: false });
    try {
      const seg = { vaddr: region.vaddr, size: region.size, fd: region.fd, fdOffset: 0 };
      const iova = 1n << 36n;
      dev.dmaMap(seg, iova);
      // A range overlapping it: the spec has the server answer EEXIST, libvfio-user
      // answers EINVAL. (An exact repeat of a mapping is accepted as a no-op.)
      let msg = driverError(() => dev.dmaMap(seg, iova + 4096n), "DMA");
      console.log(`refused DMA map (overlap): ${msg}`);
      assert.match(
        msg,
        /refused to map 65536 bytes of DMA memory at IOVA 0x1000001000 \((Invalid argument|File exists)\): .*overlaps a mapping made before/,
      );
      // A region larger than the server takes (libvfio-user: 8 TiB): ENOSPC.
      msg = driverError(() => dev.dmaMap({ ...seg, size: 2 ** 44 }, 1n << 45n), "DMA");
      console.log(`refused DMA map (size): ${msg}`);
      assert.match(msg, /larger than the server accepts/);
      assert.equal(dev.config.read16(0), 0x1af4, "the connection survives a refusal");
      dev.dmaUnmap(iova, region.size);
    } finally {
      dev.close();
      region.free();
    }
    assert.equal(fdCount(), fds0, "file descriptors left open");
  },
});

Deno.test({
  name: "vfio-user bad input: a device without iommu_platform=on is refused",
  ignore: !isRoot,
  async fn() {
    await using bed = await VfioUserBed.start({ ports: 1, queues: 1, iommuPlatform: false });
    const fds0 = fdCount();
    const msg = driverError(
      () => openDirect(bed.portName(0)),
      "MISSING_FEATURE",
    );
    console.log(`no ACCESS_PLATFORM: ${msg}`);
    assert.match(msg, /iommu_platform=on/);
    assert.equal(fdCount(), fds0, "file descriptors left open");
  },
});
