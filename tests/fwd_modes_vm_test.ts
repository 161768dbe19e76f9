/**
 * examples/testpmd.ts's forwarding modes in the VM bed, through real kernel VFIO on QEMU's
 * virtio-net, one boot and each mode in turn (one queue pair, so each NIC's frames keep
 * their order): macswap and 5tswap send out of NIC 1 exactly the frames the host sent
 * into NIC 0 with their MACs (and for 5tswap addresses and ports) swapped, compared frame
 * by frame over mixed traffic (IPv4/IPv6 UDP/TCP, 802.1Q-tagged, ARP); rxonly receives
 * every frame sent into both NICs (its receive counters say so) and sends nothing;
 * icmpecho answers (busybox) `ping` from an address on NIC 0's tap (ARP resolves to the NIC's MAC,
 * every echo request gets its reply) and answers no other frame (counted in dropsMode).
 *
 * Needs root, QEMU, a Debian kernel (tools/setup.sh installs them).
 * Run: `flock /tmp/vd-bed.lock deno test --allow-all --no-check tests/fwd_modes_vm_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { mixedFrames } from "./bed/mixed_frames.ts";
import { udpFrames } from "./bed/frames.ts";
import { sendFrames, startCapture } from "./bed/traffic.ts";
import { shellQuote, VmBed } from "./bed/vm.ts";
import { startL2fwd } from "./bed/l2fwd_guest.ts";
import { fiveTupleSwap } from "../src/engine/fwd_modes/five_tuple_swap.ts";
import { framesOf, summaryOf } from "./l2fwd_checks.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** Frames per mode and direction: every kind of mixed frame many times over. */
const FRAMES = 1200;
/** Frames per second offered: what the TCG guest forwards without loss. */
const RATE = 2000;

/** `deno run` of testpmd in the guest on the bed's two NICs, JSON statistics. */
function testpmdCmd(bed: VmBed, args: string[]): string {
  return [
    "deno run --quiet --allow-ffi",
    shellQuote(`${ROOT}/examples/testpmd.ts`),
    "--bind --stats json --prewarm=0",
    ...args.map(shellQuote),
    bed.nicAddress(0),
    bed.nicAddress(1),
  ].join(" ");
}

/** A frame's bytes in hex, to compare and show. */
function hex(f: Uint8Array): string {
  return [...f].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Frames equal, one by one, with the first difference named. */
function assertSameFrames(got: Uint8Array[], want: Uint8Array[], what: string): void {
  assert.equal(got.length, want.length, `${what}: ${got.length} frames captured of ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    if (hex(got[i]) !== hex(want[i])) {
      assert.fail(`${what}: frame ${i} is\n${hex(got[i])}\nnot\n${hex(want[i])}`);
    }
  }
}

Deno.test("testpmd's forwarding modes in the VM bed: macswap, 5tswap, rxonly, icmpecho", async (t) => {
  const t0 = performance.now();
  const bed = await VmBed.start({ nics: 2, queuePairs: 1, hugepages: 64 });
  try {
    const mod = await bed.exec("modprobe vfio-pci && modprobe vfio_iommu_type1");
    assert.equal(mod.code, 0, mod.stderr);
    const mac = [bed.nicMac(0), bed.nicMac(1)];

    /** Runs testpmd in `mode`, sends `frames` into NIC 0, compares NIC 1's with `want`. */
    const swapping = async (mode: string, seed: number, swap: (f: Uint8Array) => void) => {
      const run = await startL2fwd(bed, testpmdCmd(bed, [`--forward-mode=${mode}`]));
      const frames = mixedFrames({ seed, count: FRAMES, dst: mac[0] });
      const cap = await startCapture(bed, 1, { count: FRAMES, timeoutMs: 60000 });
      const sent = await sendFrames(bed, 0, frames, { rate: RATE });
      const out = await framesOf(cap);
      const r = await run.interrupt();
      assert.equal(r.code, 0, r.stderr);
      const s = summaryOf(r.stdout);
      console.log(
        `${mode}: sent ${sent.sent} (host drops ${sent.dropped}), testpmd rx ${
          s.ports[0].rxPackets
        } tx ${s.ports[1].txPackets}, captured ${out.length}`,
      );
      const want = frames.map((f) => {
        const c = f.slice();
        swap(c);
        return c;
      });
      assertSameFrames(out, want, mode);
    };

    await t.step(
      "macswap: every frame out of NIC 1 with its MACs swapped, nothing else",
      () =>
        swapping("macswap", 41, (f) => {
          const d = f.slice(0, 6);
          f.copyWithin(0, 6, 12);
          f.set(d, 6);
        }),
    );

    await t.step(
      "5tswap: every frame out of NIC 1 as its reverse flow's (MACs, addresses, ports; tags kept)",
      () => swapping("5tswap", 42, (f) => fiveTupleSwap(f, 0, f.length)),
    );

    await t.step("rxonly: every frame received and counted, none sent", async () => {
      const run = await startL2fwd(bed, testpmdCmd(bed, ["--forward-mode=rxonly"]));
      const caps = await Promise.all(
        [0, 1].map((n) => startCapture(bed, n, { count: 1, timeoutMs: 8000 })),
      );
      const sent = await Promise.all(
        [0, 1].map((n) =>
          sendFrames(bed, n, udpFrames({ seed: 43 + n, count: FRAMES, dst: mac[n] }), {
            rate: RATE,
          })
        ),
      );
      const outs = await Promise.all(caps.map(framesOf));
      const r = await run.interrupt();
      assert.equal(r.code, 0, r.stderr);
      const s = summaryOf(r.stdout);
      for (const n of [0, 1]) {
        const p = s.ports[n];
        console.log(`rxonly port ${n}: sent ${sent[n].sent}, rx ${p.rxPackets} tx ${p.txPackets}`);
        assert.equal(sent[n].dropped, 0);
        assert.equal(p.rxPackets, FRAMES, `port ${n} received every frame`);
        assert.equal(p.txPackets, 0);
        assert.equal(outs[n].length, 0, `nothing came out of NIC ${n}`);
        assert.equal(p.dropsMode ?? 0, 0, "consumed frames are no drops");
      }
    });

    await t.step(
      "icmpecho: ping from NIC 0's tap is answered, ARP resolves, UDP is not",
      async () => {
        // NIC 0's tap leaves its bridge (whose filter drops what the guest sends) and gets an
        // address, so the host's own stack talks to the port.
        const tap = bed.tapName(0);
        await bed.ns.exec([
          "sh",
          "-c",
          `ip link set ${tap} nomaster && tc qdisc del dev ${tap} clsact && ` +
          `ip addr add 10.77.0.1/24 dev ${tap}`,
        ]);
        const run = await startL2fwd(bed, testpmdCmd(bed, ["--forward-mode=icmpecho"]));
        // Busybox's ping (the bed's initramfs needs busybox anyway); small and large requests.
        for (const size of ["56", "1400"]) {
          const ping = await bed.ns.exec(
            `busybox ping -c 5 -i 0.2 -s ${size} -W 5 -w 30 10.77.0.2`.split(" "),
          );
          console.log(ping.trim().split("\n").slice(-2).join("\n"));
          assert.match(ping, /5 packets transmitted, 5 packets received/);
        }
        const neigh = await bed.ns.exec(["ip", "neigh", "show", "10.77.0.2", "dev", tap]);
        assert.match(neigh, new RegExp(`lladdr ${mac[0]}`), neigh);
        // Neither ARP nor echo requests: unanswered, counted.
        const cap = await startCapture(bed, 0, { count: 1, timeoutMs: 8000, ethertype: 0x0800 });
        const udp = udpFrames({ seed: 45, count: 200, dst: mac[0] });
        const sent = await sendFrames(bed, 0, udp, { rate: RATE, via: "tap" });
        const out = await framesOf(cap);
        const r = await run.interrupt();
        assert.equal(r.code, 0, r.stderr);
        const p0 = summaryOf(r.stdout).ports[0];
        console.log(
          `icmpecho port 0: rx ${p0.rxPackets} tx ${p0.txPackets} dropsMode ${p0.dropsMode}; ` +
            `after ${sent.sent} UDP frames ${out.length} came back`,
        );
        assert.equal(out.length, 0, "no answer to UDP");
        assert.equal(p0.dropsMode, sent.sent, "every UDP frame counted unanswered");
        assert.equal(p0.txPackets, p0.rxPackets - sent.sent, "every other frame answered");
        assert.ok(p0.txPackets >= 11, "an ARP reply and 10 echo replies at least");
      },
    );
  } finally {
    await bed.close();
    console.log(`fwd modes bed test: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
});
