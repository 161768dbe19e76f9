import assert from "node:assert/strict";
import { bridgeRefuses, bridgeSetupScript, injectionNames } from "../bed/netns.ts";
import { decodeTpacketStats } from "../bed/packet_socket.ts";
import { parseMac } from "../bed/frames.ts";

function frame(dst: string, src: string): Uint8Array {
  const f = new Uint8Array(60);
  f.set(parseMac(dst), 0);
  f.set(parseMac(src), 6);
  return f;
}

Deno.test("a bed tap's injection veth, peer and bridge are named after it and fit IFNAMSIZ", () => {
  const n = injectionNames("vb-2hjsg-zz-15");
  assert.deepEqual(n, {
    inject: "vi-2hjsg-zz-15",
    peer: "vp-2hjsg-zz-15",
    bridge: "vr-2hjsg-zz-15",
  });
  for (const name of Object.values(n)) assert.ok(name.length <= 15);
  assert.throws(() => injectionNames("eth0"), /not a bed tap name/);
});

Deno.test("the bridge setup keeps guest frames out of the veth and the host stack out of the bed", () => {
  const s = bridgeSetupScript("vb-1-0-0");
  assert.match(s, /stp_state 0/);
  assert.match(
    s,
    /vp-1-0-0 type bridge_slave learning off flood off mcast_flood off bcast_flood off/,
  );
  assert.match(s, /vb-1-0-0 type bridge_slave learning off/);
  assert.match(s, /tc filter add dev vb-1-0-0 ingress bpf da bytecode "1,6 0 0 2,"/);
  assert.match(s, /bridge-nf-call-/);
  for (const d of ["vi-1-0-0", "vp-1-0-0", "vr-1-0-0"]) {
    assert.ok(s.includes(`/proc/sys/net/ipv6/conf/${d}/disable_ipv6`), d);
  }
});

Deno.test("frames a bridge would drop uncounted are named; ordinary ones pass", () => {
  assert.equal(bridgeRefuses(frame("52:54:00:12:34:50", "02:00:00:00:00:01")), null);
  assert.equal(bridgeRefuses(frame("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01")), null);
  assert.match(bridgeRefuses(frame("52:54:00:12:34:50", "ff:ff:ff:ff:ff:ff"))!, /multicast/);
  assert.match(bridgeRefuses(frame("52:54:00:12:34:50", "00:00:00:00:00:00"))!, /all zeros/);
  assert.match(bridgeRefuses(frame("01:80:c2:00:00:0e", "02:00:00:00:00:01"))!, /link-local/);
  assert.equal(bridgeRefuses(frame("01:80:c2:00:00:10", "02:00:00:00:00:01")), null);
  assert.match(bridgeRefuses(new Uint8Array(10))!, /shorter/);
});

Deno.test("struct tpacket_stats decodes as packets then drops, little endian", () => {
  const b = new Uint8Array([0x40, 0x0d, 0x03, 0x00, 0xd2, 0x00, 0x00, 0x00]);
  assert.deepEqual(decodeTpacketStats(b), { packets: 200000, drops: 210 });
  assert.throws(() => decodeTpacketStats(new Uint8Array(4)), /8 bytes/);
});
