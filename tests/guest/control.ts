/**
 * Guest side of the control-queue tests (`--allow-ffi` only).
 *
 *     deno run --allow-ffi tests/guest/control.ts filter --port P
 *     deno run --allow-ffi tests/guest/control.ts announce --port P --seconds 30
 *
 * filter: goes through receive-filter phases — promiscuous (as started); promiscuous off;
 * all-multicast on; MAC address changed to 02:00:00:00:00:99; the MAC filter table given
 * 02:00:00:00:00:77; VLAN 10 added — and in each prints `{"phase":N,"ready":true}`, then
 * counts frames by destination (foreign unicast 02:00:00:00:00:99, multicast
 * 01:00:5e:01:02:03, the port's own MAC, the table's 02:00:00:00:00:77) and 802.1Q-tagged
 * ones by VLAN id (10, 20) until a broadcast frame of EtherType 0x88b5 ends the phase, and
 * prints the counts.
 *
 * announce: polls for the device's announcement request and answers it (a RARP and
 * VIRTIO_NET_CTRL_ANNOUNCE_ACK); prints `{"announced":…}` with the status bit re-read.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { formatMac, openPort, type VirtioNetPort } from "../../mod.ts";
import { guestMain, runMode } from "./guest_main.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string" },
    seconds: { type: "string", default: "30" },
  },
  allowPositionals: true,
});

const FOREIGN = new Uint8Array([0x02, 0, 0, 0, 0, 0x99]);
const MULTICAST = new Uint8Array([0x01, 0, 0x5e, 0x01, 0x02, 0x03]);
const TABLE = new Uint8Array([0x02, 0, 0, 0, 0, 0x77]);

function sameMac(data: Uint8Array, off: number, mac: Uint8Array): boolean {
  for (let i = 0; i < 6; i++) if (data[off + i] !== mac[i]) return false;
  return true;
}

function phase(port: VirtioNetPort, n: number, own: Uint8Array): Record<string, number> {
  console.log(JSON.stringify({ phase: n, ready: true }));
  const counts = {
    phase: n,
    foreign: 0,
    multicast: 0,
    own: 0,
    table: 0,
    vlan10: 0,
    vlan20: 0,
    other: 0,
  };
  const bufs = new Uint32Array(32), lens = new Uint32Array(32);
  const data = port.pool.data;
  const deadline = Date.now() + 60000;
  for (let done = false; !done && Date.now() < deadline;) {
    const k = port.rx().rxBurst(bufs, lens, 32);
    for (let i = 0; i < k; i++) {
      const off = port.frameOffset(bufs[i]);
      const vid = data[off + 12] === 0x81 && data[off + 13] === 0
        ? ((data[off + 14] << 8) | data[off + 15]) & 0xfff
        : -1;
      if (data[off] === 0xff && data[off + 12] === 0x88 && data[off + 13] === 0xb5) done = true;
      else if (vid === 10) counts.vlan10++;
      else if (vid === 20) counts.vlan20++;
      else if (sameMac(data, off, FOREIGN)) counts.foreign++;
      else if (sameMac(data, off, TABLE)) counts.table++;
      else if (sameMac(data, off, MULTICAST)) counts.multicast++;
      else if (sameMac(data, off, own)) counts.own++;
      else counts.other++;
      port.pool.free(bufs[i]);
    }
  }
  console.log(JSON.stringify(counts));
  return counts;
}

function filter(port: VirtioNetPort): number {
  const own = port.config.mac;
  phase(port, 1, own);
  port.rxFilter.setPromiscuous(false);
  phase(port, 2, own);
  port.rxFilter.setAllMulticast(true);
  phase(port, 3, own);
  port.rxFilter.setMacAddress(FOREIGN);
  console.log(JSON.stringify({ mac: formatMac(port.readConfig().mac) }));
  phase(port, 4, own);
  port.rxFilter.setMacTable([TABLE], []);
  phase(port, 5, own);
  port.rxFilter.addVlan(10);
  phase(port, 6, own);
  return 0;
}

function announce(port: VirtioNetPort): number {
  console.log(JSON.stringify({ ready: true, mac: formatMac(port.config.mac) }));
  const deadline = Date.now() + Number(values.seconds) * 1000;
  while (Date.now() < deadline) {
    if (port.pollAnnounce()) {
      while (port.tx().vq.inFlight > 0) port.tx().reclaim();
      console.log(JSON.stringify({
        announced: port.announcements,
        statusAfterAck: port.readConfig().announce,
      }));
      return 0;
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
  console.log(JSON.stringify({ announced: 0 }));
  return 3;
}

guestMain(() => {
  if (!values.port) throw new Error("--port is required");
  return runMode(openPort(values.port, { bind: true }), positionals[0], { filter, announce });
});
