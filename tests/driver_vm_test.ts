/**
 * The driver against QEMU's virtio-net device through real kernel VFIO, in the VM bed:
 * binding, negotiated features by name, 10,000 frames received and 10,000 transmitted byte
 * for byte, and every bad-input case with its one-sentence error and nothing left behind.
 *
 * Needs root, QEMU, a Debian kernel (tools/setup.sh installs them).
 * Run: `deno test --allow-all tests/driver_vm_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { testFrames } from "./bed/frames.ts";
import { exchangeFrames, guestDeno } from "./bed/guest_run.ts";
import { VmBed } from "./bed/vm.ts";

const FRAMES = 10_000;

interface BadInputResult {
  code: string | null;
  message: string;
  leakedFds: string[];
  leakedMaps: string[];
  driverBefore: string | null;
  driverAfter: string | null;
}

/** Runs tests/guest/bad_input.ts on `port` and checks the shared promises of every case. */
async function badInput(
  bed: VmBed,
  port: string,
  bind: boolean,
  code: string,
  mention: RegExp,
): Promise<BadInputResult> {
  const args = bind ? ["--bind", port] : [port];
  const r = await bed.exec(guestDeno("tests/guest/bad_input.ts", args), { timeoutMs: 60000 });
  assert.equal(r.code, 0, `bad_input.ts failed: ${r.stderr}`);
  const res = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as BadInputResult;
  assert.equal(res.code, code, `expected ${code}, got ${res.code}: ${res.message}`);
  assert.match(res.message, mention);
  // One sentence: problem, colon, fix; ends with a period; no line breaks.
  assert.match(res.message, /^[^\n]+: [^\n]+\.$/, `not one sentence: ${res.message}`);
  assert.deepEqual(res.leakedFds, [], "file descriptors left open");
  assert.deepEqual(res.leakedMaps, [], "VFIO or DMA mappings left");
  assert.equal(res.driverAfter, res.driverBefore, "the device's driver binding changed");
  // The command-line tool says the same sentence: exit 2 for a malformed name (usage), 1
  // for what the machine refuses.
  const cli = await bed.exec(guestDeno("examples/port_info.ts", args), { timeoutMs: 60000 });
  const status = code === "BAD_ADDRESS" ? 2 : 1;
  assert.equal(cli.code, status, `port_info.ts exit code: ${cli.stdout} ${cli.stderr}`);
  assert.equal(cli.stderr.trim(), `error: ${res.message}`);
  return res;
}

Deno.test("kernel VFIO in a QEMU guest: the driver binds, negotiates, and moves 10,000 frames each way byte for byte; bad input fails cleanly", async (t) => {
  const bed = await VmBed.start({ nics: 1, sharedGroup: true, hugepages: 64 });
  try {
    const nic = bed.nicAddress(0);
    const [sharedA] = bed.sharedGroupNics.map((i) => bed.nicAddress(i));

    await t.step("without the vfio-pci module, --bind fails with NO_VFIO_PCI", async () => {
      await bed.exec("modprobe -r vfio-pci 2>/dev/null; true");
      const r = await badInput(bed, nic, true, "NO_VFIO_PCI", /modprobe vfio-pci/);
      assert.equal(r.driverAfter, "virtio-pci");
    });

    const mod = await bed.exec("modprobe vfio-pci && modprobe vfio_iommu_type1");
    assert.equal(mod.code, 0, mod.stderr);

    await t.step("a malformed PCI address is refused", async () => {
      await badInput(bed, "0000:zz:04.0", false, "BAD_ADDRESS", /not a PCI address/);
    });
    await t.step("an address with no device is refused", async () => {
      await badInput(bed, "0000:07:1f.7", false, "NO_DEVICE", /no PCI device at 0000:07:1f\.7/);
    });
    await t.step("a device that is not virtio-net is refused", async () => {
      await badInput(bed, "0000:00:00.0", true, "NOT_VIRTIO_NET", /not a virtio-net device/);
    });
    await t.step("a device bound to a kernel driver is refused without --bind", async () => {
      const r = await badInput(bed, nic, false, "BOUND_TO_KERNEL_DRIVER", /virtio-pci/);
      assert.equal(r.driverAfter, "virtio-pci");
    });
    await t.step("a non-viable IOMMU group is refused and the device handed back", async () => {
      const r = await badInput(bed, sharedA, true, "GROUP_NOT_VIABLE", /IOMMU group \d+/);
      assert.equal(r.driverAfter, "virtio-pci");
    });

    await t.step(
      "port_info runs with --allow-ffi only and prints the features by name",
      async () => {
        const r = await bed.exec(guestDeno("examples/port_info.ts", ["--bind", nic]), {
          timeoutMs: 60000,
        });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /negotiated .*VIRTIO_F_VERSION_1/);
        assert.match(r.stdout, /negotiated .*VIRTIO_F_ACCESS_PLATFORM/);
        assert.match(r.stdout, new RegExp(`mac +${bed.nicMac(0)}`));
        const drv = await bed.exec(`readlink /sys/bus/pci/devices/${nic}/driver`);
        assert.match(drv.stdout, /vfio-pci$/m);
      },
    );

    await t.step(
      "--restore-driver undoes only its own bind: a function already on vfio-pci stays there, one it took from virtio-pci goes back",
      async () => {
        const driver = async () =>
          (await bed.exec(`readlink /sys/bus/pci/devices/${nic}/driver`)).stdout.trim();
        const portInfo = async () => {
          const r = await bed.exec(
            guestDeno("examples/port_info.ts", ["--bind", "--restore-driver", nic]),
            { timeoutMs: 60000 },
          );
          assert.equal(r.code, 0, r.stderr);
        };
        // The step above left it on vfio-pci: this process did not bind it.
        assert.match(await driver(), /vfio-pci$/);
        await portInfo();
        assert.match(await driver(), /vfio-pci$/, "a bind this process did not make was undone");
        // Back to virtio-pci by hand, then a bind of its own, which it undoes at exit.
        const d = `/sys/bus/pci/devices/${nic}`;
        const back = await bed.exec(
          `echo ${nic} > ${d}/driver/unbind && echo > ${d}/driver_override && ` +
            `echo ${nic} > /sys/bus/pci/drivers_probe`,
        );
        assert.equal(back.code, 0, back.stderr);
        assert.match(await driver(), /virtio-pci$/);
        await portInfo();
        assert.match(await driver(), /virtio-pci$/);
      },
    );

    await t.step(`receives ${FRAMES} frames and transmits ${FRAMES}, byte for byte`, async () => {
      const toGuest = testFrames({ seed: 11, count: FRAMES, dst: bed.nicMac(0) });
      const fromGuest = testFrames({ seed: 22, count: FRAMES, src: bed.nicMac(0) });
      const sizes = toGuest.map((f) => f.length).concat(fromGuest.map((f) => f.length));
      assert.equal(Math.min(...sizes), 60);
      assert.equal(Math.max(...sizes), 1514);
      const { res, done, sent, received, captured } = await exchangeFrames(
        bed,
        0,
        nic,
        toGuest,
        fromGuest,
        240000,
      );
      assert.equal(sent.sent, FRAMES);
      console.log(`guest: ${JSON.stringify(done)}`);
      assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
      assert.equal(received.length, FRAMES);
      for (let i = 0; i < FRAMES; i++) {
        assert.deepEqual(received[i], toGuest[i], `received frame ${i} differs`);
      }
      assert.equal(captured.length, FRAMES);
      for (let i = 0; i < FRAMES; i++) {
        assert.deepEqual(captured[i], fromGuest[i], `transmitted frame ${i} differs`);
      }
      assert.equal(done.rxDropsRunt, 0);
      assert.equal(done.poolAvailable, 4096 - 256, "every buffer is back in the pool");
    });
  } finally {
    await bed.close();
  }
});
