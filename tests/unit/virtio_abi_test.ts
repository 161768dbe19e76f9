/**
 * virtio constants and layouts the driver encodes (feature bits, status bits, the
 * virtio-pci capability and common configuration, struct virtio_net_hdr_v1 and
 * struct virtio_net_config) checked against Linux's uapi headers, compiled with `cc`:
 * linux/virtio_config.h, virtio_ring.h, virtio_pci.h and virtio_net.h.
 *
 * Names the installed headers do not define yet (newer feature bits) are skipped by
 * #ifdef and listed in the assertion messages; the rest must agree.
 */

import assert from "node:assert/strict";
import { readNetConfig } from "../../src/net/config.ts";
import * as netConfig from "../../src/net/config.ts";
import * as netFeatures from "../../src/net/features.ts";
import * as header from "../../src/net/header.ts";
import { MappedRegionIo, type RegionIo } from "../../src/pci/pci_device.ts";
import * as virtioFeatures from "../../src/virtio/features.ts";
import { bit } from "../../src/virtio/features.ts";
import * as transport from "../../src/virtio/pci_transport.ts";
import type { VirtioPciTransport } from "../../src/virtio/pci_transport.ts";
import * as status from "../../src/virtio/status.ts";
import { CC, cProbeAvailable, runCProbe } from "./c_probe.ts";

const HEADERS = [
  "linux/virtio_config.h",
  "linux/virtio_ring.h",
  "linux/virtio_pci.h",
  "linux/virtio_net.h",
];

const HAVE_C = cProbeAvailable(HEADERS).ok;
const REASON = CC === null ? "no `cc` in PATH" : "linux/virtio_*.h headers are missing";
const name = (what: string) => HAVE_C ? what : `${what} [SKIPPED: ${REASON}]`;

function numbers(mod: Record<string, unknown>, re: RegExp): Record<string, number> {
  return Object.fromEntries(
    Object.entries(mod).filter(([k, v]) => re.test(k) && typeof v === "number"),
  ) as Record<string, number>;
}

/** TS constant name -> C expression (a macro, guarded by #ifdef, or an offsetof/sizeof). */
function probes(): { macros: Record<string, string>; exprs: Record<string, string> } {
  const macros: Record<string, string> = {};
  for (const k of Object.keys(numbers(netFeatures, /^VIRTIO_NET_F_/))) macros[k] = k;
  for (const k of Object.keys(numbers(virtioFeatures, /^VIRTIO_F_/))) macros[k] = k;
  macros.VIRTIO_F_INDIRECT_DESC = "VIRTIO_RING_F_INDIRECT_DESC";
  macros.VIRTIO_F_EVENT_IDX = "VIRTIO_RING_F_EVENT_IDX";
  for (const k of Object.keys(numbers(status, /^VIRTIO_CONFIG_S_/))) macros[k] = k;
  for (const k of Object.keys(numbers(netConfig, /^VIRTIO_NET_S_/))) macros[k] = k;
  for (const k of Object.keys(numbers(header, /^VIRTIO_NET_HDR_(F|GSO)_/))) macros[k] = k;
  for (const k of Object.keys(numbers(transport, /^VIRTIO_PCI_CAP_|^VIRTIO_MSI_/))) {
    macros[k] = k;
  }
  for (const k of Object.keys(numbers(transport, /^COMMON_/))) {
    if (k !== "COMMON_CFG_MIN_LEN") macros[k] = `VIRTIO_PCI_${k}`;
  }
  const exprs: Record<string, string> = {
    HDR_FLAGS: "offsetof(struct virtio_net_hdr_v1, flags)",
    HDR_GSO_TYPE: "offsetof(struct virtio_net_hdr_v1, gso_type)",
    HDR_HDR_LEN: "offsetof(struct virtio_net_hdr_v1, hdr_len)",
    HDR_GSO_SIZE: "offsetof(struct virtio_net_hdr_v1, gso_size)",
    HDR_CSUM_START: "offsetof(struct virtio_net_hdr_v1, csum_start)",
    HDR_CSUM_OFFSET: "offsetof(struct virtio_net_hdr_v1, csum_offset)",
    HDR_NUM_BUFFERS: "offsetof(struct virtio_net_hdr_v1, num_buffers)",
    HDR_HASH_VALUE: "offsetof(struct virtio_net_hdr_v1_hash, hash_value)",
    HDR_HASH_REPORT: "offsetof(struct virtio_net_hdr_v1_hash, hash_report)",
    VIRTIO_NET_HDR_SIZE: "sizeof(struct virtio_net_hdr_v1)",
    VIRTIO_NET_HDR_HASH_SIZE: "sizeof(struct virtio_net_hdr_v1_hash)",
    // The part of the common configuration this driver uses ends after queue_used_hi.
    COMMON_CFG_MIN_LEN: "offsetof(struct virtio_pci_common_cfg, queue_used_hi) + 4",
    // Layouts the code reads with literal offsets (checked below by behaviour).
    "cap.cfg_type": "offsetof(struct virtio_pci_cap, cfg_type)",
    "cap.bar": "offsetof(struct virtio_pci_cap, bar)",
    "cap.offset": "offsetof(struct virtio_pci_cap, offset)",
    "cap.length": "offsetof(struct virtio_pci_cap, length)",
    "notify_cap.notify_off_multiplier":
      "offsetof(struct virtio_pci_notify_cap, notify_off_multiplier)",
    "net.mac": "offsetof(struct virtio_net_config, mac)",
    "net.status": "offsetof(struct virtio_net_config, status)",
    "net.max_virtqueue_pairs": "offsetof(struct virtio_net_config, max_virtqueue_pairs)",
    "net.mtu": "offsetof(struct virtio_net_config, mtu)",
    "net.rss_max_key_size": "offsetof(struct virtio_net_config, rss_max_key_size)",
    "net.rss_max_indirection_table_length":
      "offsetof(struct virtio_net_config, rss_max_indirection_table_length)",
    "net.supported_hash_types": "offsetof(struct virtio_net_config, supported_hash_types)",
  };
  return { macros, exprs };
}

let facts: Promise<Record<string, number>> | null = null;

/** Compiles and runs the probe once: `name value` per line, for what the headers define. */
function cFacts(): Promise<Record<string, number>> {
  facts ??= (async () => {
    const { macros, exprs } = probes();
    const lines = ["#include <stdio.h>", "#include <stddef.h>"];
    for (const h of HEADERS) lines.push(`#include <${h}>`);
    lines.push("int main(void) {");
    for (const [ts, c] of Object.entries(macros)) {
      lines.push(`#ifdef ${c}`, `  printf("${ts} %lld\\n", (long long)(${c}));`, "#endif");
    }
    for (const [ts, c] of Object.entries(exprs)) {
      lines.push(`  printf("${ts} %lld\\n", (long long)(${c}));`);
    }
    lines.push("  return 0;", "}");
    const out: Record<string, number> = {};
    for (const l of (await runCProbe(lines.join("\n") + "\n")).trim().split("\n")) {
      const [k, v] = l.split(" ");
      out[k] = Number(v);
    }
    return out;
  })();
  return facts;
}

/** Every exported constant of `mod` matching `re` that the header defines must agree. */
async function checkAgainstHeaders(mod: Record<string, unknown>, re: RegExp, min: number) {
  const c = await cFacts();
  const mine = numbers(mod, re);
  const missing: string[] = [];
  let checked = 0;
  for (const [k, v] of Object.entries(mine)) {
    if (!(k in c)) {
      missing.push(k);
      continue;
    }
    assert.equal(v, c[k], `${k}: TS ${v}, C ${c[k]}`);
    checked++;
  }
  assert.ok(checked >= min, `checked ${checked} (not in the headers: ${missing.join(", ")})`);
}

Deno.test({
  name: name("virtio-net feature bits match linux/virtio_net.h"),
  ignore: !HAVE_C,
  // Linux 6.1 has 28 of them; newer ones (DEVICE_STATS, VQ_NOTF_COAL, …) are skipped.
  fn: () => checkAgainstHeaders(netFeatures, /^VIRTIO_NET_F_/, 25),
});

Deno.test({
  name: name("device-independent feature bits match linux/virtio_config.h and virtio_ring.h"),
  ignore: !HAVE_C,
  fn: () => checkAgainstHeaders(virtioFeatures, /^VIRTIO_F_/, 9),
});

Deno.test({
  name: name("device status bits match linux/virtio_config.h"),
  ignore: !HAVE_C,
  fn: () => checkAgainstHeaders(status, /^VIRTIO_CONFIG_S_/, 6),
});

Deno.test({
  name: name("virtio-pci cfg types, MSI-X 'no vector' and common-cfg offsets match virtio_pci.h"),
  ignore: !HAVE_C,
  async fn() {
    await checkAgainstHeaders(transport, /^VIRTIO_PCI_CAP_|^VIRTIO_MSI_|^COMMON_/, 22);
  },
});

Deno.test({
  name: name("virtio_net_hdr offsets and sizes and the net status bits match virtio_net.h"),
  ignore: !HAVE_C,
  async fn() {
    await checkAgainstHeaders(header, /^HDR_|^VIRTIO_NET_HDR_/, 14);
    await checkAgainstHeaders(netConfig, /^VIRTIO_NET_S_/, 2);
  },
});

Deno.test({
  name: name("virtio_pci_cap field offsets are the ones findVirtioCaps reads"),
  ignore: !HAVE_C,
  async fn() {
    const c = await cFacts();
    // Build one notify capability at the C offsets and let findVirtioCaps decode it.
    const cfg = new Uint8Array(256);
    const v = new DataView(cfg.buffer);
    v.setUint16(0x06, 0x10, true);
    v.setUint8(0x34, 0x40);
    v.setUint8(0x40, 0x09);
    v.setUint8(0x42, 20); // cap_len: sizeof(struct virtio_pci_notify_cap)
    v.setUint8(0x40 + c["cap.cfg_type"], 2);
    v.setUint8(0x40 + c["cap.bar"], 4);
    v.setUint32(0x40 + c["cap.offset"], 0x3000, true);
    v.setUint32(0x40 + c["cap.length"], 0x1000, true);
    v.setUint32(0x40 + c["notify_cap.notify_off_multiplier"], 4, true);
    const caps = transport.findVirtioCaps(new MappedRegionIo(cfg.buffer));
    assert.deepEqual(caps.get(2), {
      type: 2,
      bar: 4,
      offset: 0x3000,
      length: 0x1000,
      notifyOffMultiplier: 4,
    });
  },
});

Deno.test({
  name: name("virtio_net_config field offsets are the ones readNetConfig reads"),
  ignore: !HAVE_C,
  async fn() {
    const c = await cFacts();
    const bytes = new Uint8Array(64);
    const v = new DataView(bytes.buffer);
    bytes.set([2, 0, 0, 0xaa, 0xbb, 0xcc], c["net.mac"]);
    v.setUint16(c["net.status"], 1, true);
    v.setUint16(c["net.max_virtqueue_pairs"], 8, true);
    v.setUint16(c["net.mtu"], 1400, true);
    v.setUint8(c["net.rss_max_key_size"], 52);
    v.setUint16(c["net.rss_max_indirection_table_length"], 256, true);
    v.setUint32(c["net.supported_hash_types"], 0x3f, true);
    const io: RegionIo = new MappedRegionIo(bytes.buffer);
    const t = {
      pci: { name: "test" },
      deviceConfig: io,
      readConfig: <T>(read: (cfg: RegionIo) => T): T => read(io),
    };
    const all = bit(netFeatures.VIRTIO_NET_F_MAC) | bit(netFeatures.VIRTIO_NET_F_STATUS) |
      bit(netFeatures.VIRTIO_NET_F_MQ) | bit(netFeatures.VIRTIO_NET_F_MTU) |
      bit(netFeatures.VIRTIO_NET_F_RSS);
    const got = readNetConfig(t as unknown as VirtioPciTransport, all);
    assert.deepEqual(got, {
      mac: new Uint8Array([2, 0, 0, 0xaa, 0xbb, 0xcc]),
      linkUp: true,
      announce: false,
      maxVirtqueuePairs: 8,
      mtu: 1400,
      rssMaxKeySize: 52,
      rssMaxIndirectionTableLength: 256,
      supportedHashTypes: 0x3f,
    });
  },
});
