/**
 * Indirect descriptors (VIRTIO_F_INDIRECT_DESC, docs/indirect.md) against DPDK's vhost-user
 * back-end, which offers them together with VIRTIO_F_IN_ORDER: testpmd feeds jumbo UDP
 * frames (up to 9,014 bytes) from pcaps into its vhost ports, l2fwd forwards them between
 * the two ports in 2 KiB mergeable buffers, each frame that spans buffers sent through one
 * ring slot naming a table of its pieces, and testpmd writes what comes back into pcaps:
 * every frame back byte for byte, every flow in order, on packed and split rings, and with
 * `--indirect off` (a descriptor chain a frame).
 *
 * Needs root (huge pages) and the DPDK packages of tools/setup.sh.
 * Run: `deno test --allow-all tests/indirect_vhost_user_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { udpFrames } from "./bed/frames.ts";
import { startHostL2fwd } from "./bed/host_l2fwd.ts";
import { VhostUserBed } from "./bed/vhost_user_bed.ts";
import { assertSameFramesPerFlow, summaryOf } from "./l2fwd_checks.ts";

const isRoot = Deno.uid() === 0;

const RUNS = [
  { ring: "packed", indirect: "auto", seed: 81 },
  { ring: "split", indirect: "auto", seed: 83 },
  { ring: "split", indirect: "off", seed: 85 },
] as const;

for (const { ring, indirect, seed } of RUNS) {
  Deno.test({
    name:
      `l2fwd in the vhost-user bed: jumbo frames in 2 KiB buffers, ${ring} rings, --indirect ${indirect}, byte for byte and in order`,
    ignore: !isRoot,
    async fn() {
      const N = 2000, FLOWS = 16;
      const a = udpFrames({ seed, count: N, flows: FLOWS, maxSize: 9014 });
      await using bed = await VhostUserBed.start({ vhostPorts: 2, pcap: { in: [[a]] } });
      const ringArgs = ring === "split" ? ["--ring", "split"] : [];
      const run = await startHostL2fwd(
        { portName: (i: number) => `vhost-user:${bed.socket(i)}` },
        ["--indirect", indirect, ...ringArgs],
      );
      await bed.startForwarding();
      await bed.waitPcapTx(1, N, 60000);
      const r = await run.interrupt();
      assert.equal(r.code, 0, r.stderr);
      const s = summaryOf(r.stdout);
      for (const p of s.ports) {
        assert.equal(p.ring, ring);
        assert.ok(p.features?.includes("VIRTIO_NET_F_MRG_RXBUF"), `features ${p.features}`);
        assert.ok(p.features?.includes("VIRTIO_F_IN_ORDER"), `features ${p.features}`);
        assert.equal(
          p.features?.includes("VIRTIO_F_INDIRECT_DESC"),
          indirect === "auto",
          `features ${p.features}`,
        );
      }
      assert.equal(s.ports[0].rxPackets, N);
      assert.equal(s.ports[1].txPackets, N);
      const out = (await bed.outputFrames(1)).flat();
      assert.ok(Math.max(...out.map((f) => f.length)) > 8000, "jumbo frames came back");
      assert.ok(a.filter((f) => f.length > 2048 - 12).length > N / 2, "most span buffers");
      assert.equal(assertSameFramesPerFlow(a, out, (f) => f, "IN0 → l2fwd → OUT1"), FLOWS);
      for (const st of await bed.stats()) {
        assert.equal(st.fwdTxDropped + st.rxMissed + st.rxErrors, 0, `${st.name}: losses`);
      }
    },
  });
}
