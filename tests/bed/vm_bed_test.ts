/**
 * Proves the VM test bed: boot, command channel, NIC placement and IOMMU groups, and the
 * traffic tools end to end with the guest kernel's own virtio_net driver as the reference.
 *
 * Needs root, QEMU, a Debian kernel under /boot, busybox-static, tcpdump and tcpreplay.
 * Run: `deno test --allow-all tests/bed/vm_bed_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { VmBed } from "./vm.ts";
import { listNetns } from "./netns.ts";
import { sendFrames, startCapture } from "./traffic.ts";
import { parseTestFrame, TEST_ETHERTYPE, testFrames } from "./frames.ts";
import { encodePcap, readPcapFrames } from "../../src/pcap/pcap.ts";

async function ok(bed: VmBed, cmd: string, timeoutMs = 60000): Promise<string> {
  const r = await bed.exec(cmd, { timeoutMs });
  assert.equal(r.code, 0, `guest: ${cmd}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Brings up the guest kernel's netdev of NIC `nic` (virtio_net) and returns its name. */
async function guestNetdev(bed: VmBed, nic: number): Promise<string> {
  await ok(bed, "modprobe virtio_net");
  const dev = (await ok(bed, `ls /sys/bus/pci/devices/${bed.nicAddress(nic)}/virtio*/net/`))
    .trim();
  // No IPv6 on it: the guest kernel then sends nothing of its own on the link.
  await ok(
    bed,
    `echo 1 > /proc/sys/net/ipv6/conf/${dev}/disable_ipv6; ip link set ${dev} up promisc on`,
  );
  return dev;
}

function assertSameFrames(got: Uint8Array[], want: Uint8Array[]): void {
  assert.equal(got.length, want.length, "frame count");
  got.forEach((f, i) => {
    assert.ok(parseTestFrame(f), `frame ${i} is not an intact test frame`);
    assert.deepEqual(f, want[i], `frame ${i} differs`);
  });
}

Deno.test("VmBed with 2 NICs: boots, runs commands, places NICs as documented, carries traffic", async (t) => {
  const bed = await VmBed.start({ nics: 2, queuePairs: [1, 2] });
  const { netns, dir } = bed;
  try {
    console.log(`boot: ${bed.bootMs} ms`);

    await t.step("exec returns the guest kernel's `uname -r`", async () => {
      const r = await bed.exec("uname -r");
      assert.deepEqual(r, { code: 0, stdout: `${bed.kernelVersion}\n`, stderr: "" });
    });

    await t.step(
      "exec keeps stdout, stderr and exit status apart; a round trip is fast",
      async () => {
        const r = await bed.exec("echo out; echo err >&2; exit 7");
        assert.deepEqual(r, { code: 7, stdout: "out\n", stderr: "err\n" });
        const times: number[] = [];
        for (let i = 0; i < 10; i++) {
          const t0 = performance.now();
          await bed.exec("true");
          times.push(performance.now() - t0);
        }
        times.sort((a, b) => a - b);
        console.log(
          `exec round trip: median ${times[5].toFixed(0)} ms, max ${times[9].toFixed(0)} ms`,
        );
        assert.ok(times[5] < 1000);
      },
    );

    await t.step("the guest environment has PATH, HOME and DENO_DIR on tmpfs", async () => {
      const out = await ok(bed, 'echo "$PATH|$HOME|$DENO_DIR"; stat -f -c %T "$HOME" "$DENO_DIR"');
      const [vars, fs1, fs2] = out.trim().split("\n");
      const [path, home, denoDir] = vars.split("|");
      assert.ok(path.split(":").includes("/usr/bin"));
      assert.deepEqual([home, denoDir, fs1, fs2], ["/run/home", "/run/deno", "tmpfs", "tmpfs"]);
    });

    await t.step("exec honours cwd and env, and kills a command at its timeout", async () => {
      const out = await ok(bed, 'pwd; echo "$FOO"', 10000);
      assert.equal(out, "/\n\n");
      const r = await bed.exec('pwd; echo "$FOO"', { cwd: "/run", env: { FOO: "a b'c" } });
      assert.equal(r.stdout, "/run\na b'c\n");
      await assert.rejects(bed.exec("sleep 30", { timeoutMs: 500 }), /not within 500 ms/);
    });

    await t.step("spawn: waitForOutput sees READY, kill ends the whole process group", async () => {
      const p = await bed.spawn("sh -c 'sleep 300' & echo READY; wait");
      await p.waitForOutput(/READY/, 20000);
      const r = await p.kill();
      assert.equal(r.code, 128 + 15);
      const left = await bed.exec("pgrep -f 'sleep 300'");
      assert.equal(left.stdout, "", "the child of the killed command is gone too");
    });

    await t.step("hostPath/guestPath exchange files through the writable share", async () => {
      await Deno.writeTextFile(bed.hostPath("/run/bed/from-host.txt"), "hello guest\n");
      assert.equal(await ok(bed, "cat /run/bed/from-host.txt"), "hello guest\n");
      await ok(bed, "echo hello host > /run/bed/from-guest.txt");
      const host = `${bed.shareDir}/from-guest.txt`;
      assert.equal(await Deno.readTextFile(host), "hello host\n");
      assert.equal(bed.guestPath(host), "/run/bed/from-guest.txt");
      assert.throws(() => bed.hostPath("/etc/passwd"), /not under/);
    });

    await t.step(
      "NICs are modern virtio-net at 0000:00:04.0 and :05.0, bound to virtio-pci",
      async () => {
        assert.deepEqual([bed.nicAddress(0), bed.nicAddress(1)], ["0000:00:04.0", "0000:00:05.0"]);
        for (let i = 0; i < 2; i++) {
          const a = bed.nicAddress(i);
          const out = await ok(
            bed,
            `cd /sys/bus/pci/devices/${a} && cat vendor device && basename $(readlink driver)`,
          );
          assert.equal(out, "0x1af4\n0x1041\nvirtio-pci\n", a);
        }
      },
    );

    await t.step("each NIC is alone in its own IOMMU group", async () => {
      const groups: string[] = [];
      for (let i = 0; i < 2; i++) {
        const g = (await ok(
          bed,
          `basename $(readlink /sys/bus/pci/devices/${bed.nicAddress(i)}/iommu_group)`,
        )).trim();
        const members = (await ok(bed, `ls /sys/kernel/iommu_groups/${g}/devices`)).trim();
        assert.equal(members, bed.nicAddress(i));
        groups.push(g);
      }
      assert.notEqual(groups[0], groups[1]);
    });

    await t.step("vfio-pci is not loaded at boot but can be loaded", async () => {
      const r = await bed.exec("test -d /sys/bus/pci/drivers/vfio-pci");
      assert.notEqual(r.code, 0);
      const mods = await ok(bed, "cat /proc/modules");
      assert.ok(!/^vfio_pci /m.test(mods));
      await ok(bed, "modprobe vfio-pci && test -d /sys/bus/pci/drivers/vfio-pci");
      const drv = await ok(
        bed,
        `basename $(readlink /sys/bus/pci/devices/${bed.nicAddress(0)}/driver)`,
      );
      assert.equal(drv, "virtio-pci\n", "loading vfio-pci binds nothing by itself");
    });

    await t.step(
      "taps are up with txqueuelen 20000, in a namespace without IPv6",
      async () => {
        for (let i = 0; i < 2; i++) {
          const out = await bed.ns.exec(["ip", "link", "show", bed.tapName(i)]);
          assert.match(out, /qlen 20000/);
          assert.match(out, /[<,]UP[,>]/);
        }
        const v6 = await bed.ns.exec(["cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6"]);
        assert.equal(v6.trim(), "1");
      },
    );

    const dev = await guestNetdev(bed, 0);

    await t.step("NIC 1 has 2 queue pairs; both of its tap's rx queues go to CPU 0", async () => {
      const rps = async () =>
        (await bed.ns.exec([
          "sh",
          "-c",
          `cat /sys/class/net/${bed.tapName(1)}/queues/rx-*/rps_cpus`,
        ])).trim().split("\n").map((s) => parseInt(s, 16));
      const dev1 = await guestNetdev(bed, 1);
      const out = await ok(bed, `ls /sys/class/net/${dev1}/queues`);
      assert.deepEqual(out.trim().split("\n").sort(), ["rx-0", "rx-1", "tx-0", "tx-1"]);
      // QEMU attaches the tap's second queue once the guest driver enables queue pair 2.
      await bed.steerRxToOneCpu(1);
      assert.deepEqual(await rps(), [1, 1]);
    });

    await t.step(
      "100 frames sent by the host reach the guest (virtio_net + tcpdump) byte for byte",
      async () => {
        const frames = testFrames({ seed: 11, count: 100, dst: bed.nicMac(0) });
        const p = await bed.spawn(
          `tcpdump -i ${dev} -w /run/bed/rx.pcap -U -c 100 ether proto 0x88b5`,
        );
        await p.waitForOutput(/listening on/, 30000, "stderr");
        const sent = await sendFrames(bed, 0, frames);
        assert.deepEqual([sent.sent, sent.dropped], [100, 0]);
        const r = await p.wait(30000);
        assert.equal(r.code, 0, r.stderr);
        assertSameFrames(
          readPcapFrames(await Deno.readFile(bed.hostPath("/run/bed/rx.pcap"))),
          frames,
        );
      },
    );

    await t.step(
      "100 frames sent by the guest (tcpreplay) are captured on the host byte for byte",
      async () => {
        const frames = testFrames({ seed: 12, count: 100, src: bed.nicMac(0) });
        await Deno.writeFile(bed.hostPath("/run/bed/tx.pcap"), encodePcap(frames));
        await bed.steerRxToOneCpu(0);
        const cap = await startCapture(bed, 0, {
          count: 100,
          timeoutMs: 60000,
          ethertype: TEST_ETHERTYPE,
        });
        try {
          await ok(bed, `tcpreplay -i ${dev} /run/bed/tx.pcap`);
          assertSameFrames(await cap.done(), frames);
        } finally {
          await cap.kill();
        }
      },
    );

    await t.step(
      "a burst of 10,000 host frames is queued by the tap, not dropped, and all reach the guest",
      async () => {
        const rx = async () =>
          Number(await ok(bed, `cat /sys/class/net/${dev}/statistics/rx_packets`));
        const before = await rx();
        const frames = testFrames({ seed: 14, count: 10000, dst: bed.nicMac(0) });
        const sent = await sendFrames(bed, 0, frames);
        assert.deepEqual([sent.sent, sent.dropped], [10000, 0]);
        const deadline = Date.now() + 120000;
        let got = 0;
        while ((got = (await rx()) - before) < 10000 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 500));
        }
        console.log(`10,000 frames: host sent in ${sent.elapsedMs.toFixed(0)} ms`);
        assert.equal(got, 10000);
      },
    );

    await t.step("a capture that gets too few frames fails saying how many arrived", async () => {
      const cap = await startCapture(bed, 0, {
        count: 5,
        timeoutMs: 3000,
        ethertype: TEST_ETHERTYPE,
      });
      await Deno.writeFile(
        bed.hostPath("/run/bed/tx2.pcap"),
        encodePcap(testFrames({ seed: 13, count: 2 })),
      );
      await ok(bed, `tcpreplay -i ${dev} /run/bed/tx2.pcap`);
      await assert.rejects(cap.done(), /2 of 5 frames arrived/);
    });
  } finally {
    await bed.close();
  }

  // Teardown leaves nothing behind.
  assert.ok(!listNetns().includes(netns), "namespace removed");
  assert.ok(!exists(dir), "temp dir removed");
});

Deno.test("VmBed sharedGroup: two NICs behind a pcie-pci-bridge share one IOMMU group", async (t) => {
  await using bed = await VmBed.start({ nics: 1, sharedGroup: true, hugepages: 32 });
  console.log(`boot: ${bed.bootMs} ms`);

  await t.step("the shared pair is NICs 1 and 2 at 0000:01:01.0 and 0000:01:02.0", async () => {
    assert.deepEqual(bed.sharedGroupNics, [1, 2]);
    assert.deepEqual([bed.nicAddress(1), bed.nicAddress(2)], ["0000:01:01.0", "0000:01:02.0"]);
    for (const i of [0, 1, 2]) {
      const out = await ok(
        bed,
        `cd /sys/bus/pci/devices/${bed.nicAddress(i)} && cat device && basename $(readlink driver)`,
      );
      assert.equal(out, "0x1041\nvirtio-pci\n");
    }
  });

  await t.step(
    "the bridge and both NICs are one IOMMU group; NIC 0 is alone in another",
    async () => {
      const group = async (a: string) =>
        (await ok(bed, `basename $(readlink /sys/bus/pci/devices/${a}/iommu_group)`)).trim();
      const g1 = await group(bed.nicAddress(1));
      assert.equal(await group(bed.nicAddress(2)), g1);
      assert.notEqual(await group(bed.nicAddress(0)), g1);
      const members = (await ok(bed, `ls /sys/kernel/iommu_groups/${g1}/devices`)).trim().split(
        "\n",
      );
      assert.deepEqual(
        members.sort(),
        [bed.sharedBridgeAddress(), bed.nicAddress(1), bed.nicAddress(2)].sort(),
      );
    },
  );

  await t.step("the guest reserved the requested 2 MiB huge pages", async () => {
    const out = await ok(bed, "grep -E 'HugePages_Total|Hugepagesize' /proc/meminfo");
    assert.match(out, /HugePages_Total:\s+32\n/);
    assert.match(out, /Hugepagesize:\s+2048 kB/);
    assert.match(await ok(bed, "mount"), /hugetlbfs on \/dev\/hugepages/);
  });
});
