/**
 * Offloads (docs/offloads.md) against QEMU's virtio-net through kernel VFIO in the VM bed,
 * NICs with `csum=on,guest_csum=on,host_tso4=on,guest_tso4=on,host_tso6=on,guest_tso6=on,
 * mrg_rxbuf=on`: l2fwd with examples/scripts/offload.ts forwards from NIC 0 to NIC 1.
 *
 * The host sends into NIC 0's tap through AF_PACKET with PACKET_VNET_HDR
 * (tests/bed/offload_host.py): UDP frames with a right checksum, with a wrong one, and
 * with a partial one (NEEDS_CSUM), then 64,000-byte TCP/IPv4 and TCP/IPv6 super-frames
 * (GSO, MSS 1,448 and 1,428), which arrive as large receives spanning many 2 KiB
 * buffers. The script reports each frame's checksum state as the device gave it and asks
 * for TSO (TSO4, TSO6) with MSS 1,000. NIC 1's tap passes the super-frames to the host kernel whole; a plain tap bridged with it,
 * read without offloads, makes the kernel segment and checksum them in software, so its
 * reader sees what would go on a wire: segments of 1,000 payload bytes, every checksum
 * checked there (`--rx-csum auto --lro auto`). Then the same with the receive offloads off
 * (l2fwd's default, here spelled out: `--rx-csum off --lro off`): the host kernel completes the checksums and segments before the tap, and every frame
 * arrives with no checksum state.
 *
 * Run: `deno test --allow-all tests/offload_vm_test.ts` (under the bed lock).
 *
 * @module
 */

import assert from "node:assert/strict";
import { l2fwdCmd, startL2fwd } from "./bed/l2fwd_guest.ts";
import { VmBed } from "./bed/vm.ts";
import { summaryOf } from "./l2fwd_checks.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const HOST = `${ROOT}/tests/bed/offload_host.py`;
const SCRIPT = `${ROOT}/examples/scripts/offload.ts`;
const PROPS =
  "csum=on,guest_csum=on,host_tso4=on,guest_tso4=on,host_tso6=on,guest_tso6=on,mrg_rxbuf=on";
/** UDP frames of each kind. */
const N = 50;
/** TCP/IPv4 super-frames of 64,000 payload bytes, and TCP/IPv6 ones. */
const SUPER = 2, SUPER6 = 2;
const MSS = 1000;
const SEGMENTS = SUPER * Math.ceil(64000 / MSS), SEGMENTS6 = SUPER6 * Math.ceil(64000 / MSS);

/** What offload_host.py's reader saw. */
interface ReadResult {
  frames: number;
  udp: Record<"G" | "B" | "P", [good: number, bad: number]>;
  tcp: TcpSeen;
  tcp6: TcpSeen;
}

/** The TCP segments of one address family the reader saw. */
interface TcpSeen {
  segments: number;
  csumOk: number;
  csumBad: number;
  ipBad: number;
  sizes: Record<string, number>;
  payloadBad: number;
  maxFrame: number;
}

/** Puts a plain tap `ot0` into the bridge of NIC 1's tap (made if none) and lets guest frames in. */
function readerSetup(tap: string): string {
  return [
    "set -e",
    `B=$(basename "$(readlink /sys/class/net/${tap}/master || true)")`,
    `if [ -z "$B" ]; then B=ob0; ip link add name ob0 type bridge stp_state 0; ` +
    `ip link set ${tap} master ob0; ip link set dev ${tap} type bridge_slave learning off; ` +
    `ip link set ob0 up; fi`,
    // The bed drops guest frames at the tap's ingress (netns.ts): here they are wanted.
    `tc qdisc del dev ${tap} clsact 2>/dev/null || true`,
    "ip tuntap add dev ot0 mode tap",
    "echo 1 > /proc/sys/net/ipv6/conf/ot0/disable_ipv6",
    "ip link set ot0 master $B",
    "ip link set ot0 up",
  ].join("\n");
}

/** One l2fwd run with the script: what the host's reader saw and l2fwd's summary. */
async function forward(bed: VmBed, want: number, args: string[]) {
  const reader = new Deno.Command("ip", {
    args: ["netns", "exec", bed.netns, "/usr/bin/python3", HOST, "read", "ot0", `${want}`, "240"],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const out = reader.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("READY")) {
    const r = await out.read();
    assert.ok(!r.done, `the reader did not start: ${text}`);
    text += r.value;
  }
  const run = await startL2fwd(
    bed,
    l2fwdCmd(bed, ["--script", SCRIPT, "--script-arg", `tso=${MSS}`, ...args], [
      `--allow-read=${SCRIPT}`,
    ]),
  );
  const host = ["/usr/bin/python3", HOST, "send", bed.tapName(0), bed.nicMac(0)];
  const sent = JSON.parse(await bed.ns.exec([...host, `${N}`, `${SUPER}`, `${SUPER6}`]));
  assert.equal(sent.sent, 3 * N + SUPER + SUPER6);
  for (;;) {
    const r = await out.read();
    if (r.done) break;
    text += r.value;
  }
  await reader.status;
  const r = await run.interrupt();
  assert.equal(r.code, 0, r.stderr);
  const s = summaryOf(r.stdout);
  const seen: ReadResult = JSON.parse(text.split("\n").find((l) => l.startsWith("{"))!);
  const [p0, p1] = s.ports;
  const pick = (o: object, keys: string[]) =>
    JSON.stringify(Object.fromEntries(keys.map((k) => [k, (o as Record<string, unknown>)[k]])));
  console.log(`host saw ${JSON.stringify(seen)}`);
  console.log(`script ${JSON.stringify(s.script?.counters)}`);
  console.log(
    `port 0 ${
      pick(p0, ["rxPackets", "rxCsumValid", "rxCsumPartial", "rxGso", "dropsBadOffload"])
    }; port 1 ${pick(p1, ["txPackets", "txOffloaded", "dropsTxOffload"])}`,
  );
  return { seen, s, counters: s.script!.counters, p0, p1 };
}

const OFFLOADS = [
  "VIRTIO_NET_F_CSUM",
  "VIRTIO_NET_F_GUEST_CSUM",
  "VIRTIO_NET_F_HOST_TSO4",
  "VIRTIO_NET_F_GUEST_TSO4",
  "VIRTIO_NET_F_HOST_TSO6",
  "VIRTIO_NET_F_GUEST_TSO6",
];

Deno.test("offloads: receive checksum states as sent, large receive, TSO asked by a script segmented with valid checksums", async (t) => {
  const bed = await VmBed.start({ nics: 2, nicProps: PROPS, hugepages: 64 });
  try {
    assert.equal((await bed.exec("modprobe vfio-pci")).code, 0);
    await bed.ns.exec(["sh", "-c", readerSetup(bed.tapName(1))]);

    await t.step("all offloads on", async () => {
      const want = 3 * N + SEGMENTS + SEGMENTS6, supers = SUPER + SUPER6;
      const { seen, s, counters: c, p0, p1 } = await forward(bed, want, [
        "--rx-csum",
        "auto",
        "--lro",
        "auto",
      ]);
      for (const f of [...OFFLOADS, "VIRTIO_NET_F_MRG_RXBUF"]) {
        for (const p of s.ports) assert.ok(p.features?.includes(f), `port ${p.port} lacks ${f}`);
      }
      // Receive: each frame's checksum state is what the host sent: partial for the
      // NEEDS_CSUM frames and the super-frames, nothing for the others (whose checksums the
      // script then finds right or wrong as sent); the super-frames came as large receives.
      assert.equal(p0.rxPackets, 3 * N + supers);
      assert.equal(p0.dropsBadOffload, 0);
      assert.equal(p0.rxCsumPartial, N + supers);
      assert.equal(p0.rxCsumValid, 0);
      assert.equal(p0.rxGso, supers);
      assert.equal(c.csumPartial, N + supers);
      assert.equal(c.csumNone, 2 * N);
      assert.equal(c.csumValid, 0);
      assert.equal(c.swGood, N);
      assert.equal(c.swBad, N);
      assert.equal(
        c.pseudoGood,
        N + supers,
        "the partial frames' fields hold the pseudo-header sum",
      );
      assert.equal(c.superFrames, supers);
      assert.equal(c.tso, supers);
      // Transmit: the partial frames and the super-frames went out with their requests.
      assert.equal(p1.txPackets, 3 * N + supers);
      assert.equal(p1.txOffloaded, N + supers);
      assert.equal(p1.dropsTxOffload, 0);
      // The host: checksums completed where asked, wrong ones left wrong, and each
      // super-frame cut into segments of the script's MSS, every checksum valid, the payload
      // intact.
      assert.equal(seen.frames, want);
      assert.deepEqual(seen.udp, { G: [N, 0], B: [0, N], P: [N, 0] });
      assert.equal(seen.tcp.segments, SEGMENTS);
      assert.deepEqual(seen.tcp.sizes, { [MSS]: SEGMENTS });
      assert.equal(seen.tcp.csumOk, SEGMENTS);
      assert.equal(seen.tcp.csumBad, 0);
      assert.equal(seen.tcp.ipBad, 0);
      assert.equal(seen.tcp.payloadBad, 0);
      assert.equal(seen.tcp.maxFrame, 14 + 20 + 20 + MSS);
      assert.deepEqual(seen.tcp6, {
        segments: SEGMENTS6,
        csumOk: SEGMENTS6,
        csumBad: 0,
        ipBad: 0,
        sizes: { [MSS]: SEGMENTS6 },
        payloadBad: 0,
        maxFrame: 14 + 40 + 20 + MSS,
      });
    });

    await t.step(
      "receive offloads off: the host completes and segments, frames come plain",
      async () => {
        // The host kernel segments each super-frame at the host's MSS (1,448 for IPv4, 1,428
        // for IPv6) before the tap.
        const segments = SUPER * Math.ceil(64000 / 1448);
        const segments6 = SUPER6 * Math.ceil(64000 / 1428), want = 3 * N + segments + segments6;
        const { seen, s, counters: c, p0, p1 } = await forward(bed, want, [
          "--rx-csum",
          "off",
          "--lro",
          "off",
        ]);
        for (const p of s.ports) {
          assert.ok(!p.features?.includes("VIRTIO_NET_F_GUEST_CSUM"));
          assert.ok(!p.features?.includes("VIRTIO_NET_F_GUEST_TSO4"));
          assert.ok(!p.features?.includes("VIRTIO_NET_F_GUEST_TSO6"));
          assert.ok(p.features?.includes("VIRTIO_NET_F_HOST_TSO4"));
        }
        assert.equal(p0.rxPackets, want);
        assert.deepEqual([p0.rxCsumPartial, p0.rxCsumValid, p0.rxGso], [0, 0, 0]);
        assert.equal(c.csumNone, want);
        assert.equal(c.swGood, N + N + segments + segments6, "checksums completed by the host");
        assert.equal(c.swBad, N);
        assert.equal(c.tso, 0, "no frame longer than 1,514 bytes");
        assert.equal(p1.txOffloaded, 0);
        assert.equal(seen.frames, want);
        assert.deepEqual(seen.udp, { G: [N, 0], B: [0, N], P: [N, 0] });
        assert.equal(seen.tcp.segments, segments);
        assert.equal(seen.tcp.csumOk, segments);
        assert.equal(seen.tcp.payloadBad, 0);
        assert.equal(seen.tcp6.segments, segments6);
        assert.equal(seen.tcp6.csumOk, segments6);
        assert.equal(seen.tcp6.payloadBad, 0);
      },
    );
  } finally {
    await bed.close();
  }
});
