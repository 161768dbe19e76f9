/**
 * Malformed replies from an untrusted vfio-user server (too short, wrong length fields,
 * broken capability chains, sparse mmap areas outside their region) are one
 * DEVICE_MISBEHAVED sentence naming the command and the server, never a RangeError or a
 * mapping of something the region does not hold. Against fake_vfio_user_server.ts in
 * "device" mode.
 */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import { VfioUserDevice } from "../../src/vfio_user/vfio_user_device.ts";
import type { DeviceOptions } from "./fake_vfio_user_server.ts";
import { startFakeServer } from "./vfio_user_test_server.ts";

/** The DEVICE_MISBEHAVED sentence of a malformed reply to `command`. */
function malformed(command: string, detail: string): RegExp {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(
    `^The vfio-user server at \\S+s\\.sock sent a malformed ${command} reply \\(${
      esc(detail)
    }\\): the device model is broken; fix the server or use another\\.$`,
  );
}

function isSentence(re: RegExp) {
  return (e: unknown) =>
    e instanceof DriverError && e.code === "DEVICE_MISBEHAVED" && re.test(e.message);
}

/** Runs `use` against a fake device with `options`; the device is closed afterwards. */
async function withServer(
  options: DeviceOptions,
  use: (path: string) => void,
): Promise<void> {
  const server = await startFakeServer("device", options);
  try {
    use(server.path);
  } finally {
    await server.closed;
    await server.stop();
  }
}

Deno.test("sparse mmap areas outside the region, wrapping or overlapping are refused", async () => {
  const cases: [[bigint, bigint][], string][] = [
    [
      [[0x3000n, 0x2000n]],
      "sparse mmap area 0 (offset 0x3000, size 0x2000) ends past the region's 0x4000 bytes",
    ],
    [
      [[0x1000n, 0x1000n], [0xffff_ffff_ffff_f000n, 0x2000n]],
      "sparse mmap area 1 (offset 0xfffffffffffff000, size 0x2000) ends past the region's 0x4000 bytes",
    ],
    [[[0x2000n, 0x1000n], [0n, 0x1000n], [0x1000n, 0x1800n]], "sparse mmap areas 0 and 2 overlap"],
  ];
  for (const [sparse, detail] of cases) {
    await withServer({ sparse }, (path) => {
      let dev: VfioUserDevice | null = null;
      try {
        assert.throws(() => {
          dev = VfioUserDevice.open(path, { timeoutMs: 3000 });
          dev.bar(4);
        }, isSentence(malformed("VFIO_USER_DEVICE_GET_REGION_INFO", detail)));
      } finally {
        (dev as VfioUserDevice | null)?.close();
      }
    });
  }
  // Areas inside the region, apart, are mapped.
  await withServer({ sparse: [[0n, 0x1000n], [0x3000n, 0x1000n]] }, (path) => {
    const dev = VfioUserDevice.open(path, { timeoutMs: 3000 });
    try {
      dev.bar(4).write32(0x3000, 0x12345678);
      assert.equal(dev.bar(4).read32(0x3000), 0x12345678);
    } finally {
      dev.close();
    }
  });
});

Deno.test("a malformed reply is one DEVICE_MISBEHAVED sentence naming command and server", async () => {
  const atOpen: [DeviceOptions["malform"], RegExp][] = [
    [
      "shortDeviceInfo",
      malformed("VFIO_USER_DEVICE_GET_INFO", "a DEVICE_GET_INFO reply needs 16 bytes, got 8"),
    ],
    [
      "shortRegionInfo",
      malformed(
        "VFIO_USER_DEVICE_GET_REGION_INFO",
        "a DEVICE_GET_REGION_INFO reply needs 32 bytes, got 20",
      ),
    ],
    [
      "capabilityLoop",
      malformed(
        "VFIO_USER_DEVICE_GET_REGION_INFO",
        "VFIO capability chain is malformed at offset 32",
      ),
    ],
  ];
  for (const [malform, sentence] of atOpen) {
    await withServer({ malform }, (path) => {
      assert.throws(
        () => VfioUserDevice.open(path, { timeoutMs: 3000 }).close(),
        isSentence(sentence),
      );
    });
  }
  await withServer({ malform: "shortIrqInfo" }, (path) => {
    const dev = VfioUserDevice.open(path, { timeoutMs: 3000 });
    try {
      assert.throws(
        () => dev.irqCount(2),
        isSentence(
          malformed(
            "VFIO_USER_DEVICE_GET_IRQ_INFO",
            "a DEVICE_GET_IRQ_INFO reply needs 16 bytes, got 8",
          ),
        ),
      );
    } finally {
      dev.close();
    }
  });
  // A REGION_READ reply whose count is not the count asked for.
  await withServer({ malform: "readCount" }, (path) => {
    const dev = VfioUserDevice.open(path, { timeoutMs: 3000 });
    try {
      assert.throws(
        () => dev.client.readSmall(2, 0, 4),
        isSentence(
          /^The vfio-user server at \S+s\.sock answered a 4-byte read of region 2 at 0x0 with 8 bytes: the device model is broken\.$/,
        ),
      );
    } finally {
      dev.close();
    }
  });
});
