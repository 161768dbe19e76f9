/**
 * Configuration parsing against a hostile device (issue 13, item 2): a million PCI config
 * spaces and struct virtio_net_config contents under `deno task soak`, 100,000 in CI. Each
 * starts from a good virtio-net function (fake_virtio_pci.ts) with a few bytes of its
 * capability list changed, random device-configuration fields, a configuration generation
 * that moves during reads, and a random feature set; the real VirtioPciTransport and
 * readNetConfig parse it. Either the result holds everything the spec promises and says
 * what the bytes say, or one DriverError sentence refuses the device.
 */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import { type NetConfig, readNetConfig } from "../../src/net/config.ts";
import {
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_HASH_REPORT,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_RSS,
  VIRTIO_NET_F_STATUS,
} from "../../src/net/features.ts";
import { bit, VIRTIO_F_VERSION_1 } from "../../src/virtio/features.ts";
import { VirtioPciTransport } from "../../src/virtio/pci_transport.ts";
import { configSpace, DEVCFG_AT, FakeBar4, FakePci } from "../unit/fake_virtio_pci.ts";
import { fuzzSeed, Prng } from "./fuzz/prng.ts";
import { soakLength } from "./soak_length.ts";

const ITERATIONS = soakLength(1_000_000, 100_000);
const FEATURES = [
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_RSS,
  VIRTIO_NET_F_HASH_REPORT,
  VIRTIO_NET_F_CTRL_VQ,
];
// The capability list of configSpace(): the pointer at 0x34 and four capabilities from 0x40
// to the notify capability's multiplier at 0x80.
const CAP_BYTES = [0x06, 0x34, ...Array.from({ length: 0x84 - 0x40 }, (_, i) => 0x40 + i)];

/** Random struct virtio_net_config bytes, mostly with fields in the spec's ranges. */
function deviceConfig(rng: Prng, bar: FakeBar4): boolean {
  for (let i = 0; i < 24; i++) bar.mem.write8(DEVCFG_AT + i, rng.below(256));
  if (!rng.chance(0.7)) return false;
  bar.mem.write16(DEVCFG_AT + 8, 1 + rng.below(0x7fff)); // max_virtqueue_pairs
  bar.mem.write16(DEVCFG_AT + 10, 68 + rng.below(0xffff - 68)); // mtu
  bar.mem.write8(DEVCFG_AT + 17, 40 + rng.below(216)); // rss_max_key_size
  bar.mem.write16(DEVCFG_AT + 18, 128 + rng.below(0xff00)); // rss_max_indirection_table_length
  return true;
}

/**
 * What §5.1.4 promises of a configuration the driver accepted, and that it says what the
 * bytes say where the (possibly changed) capability put them.
 */
function checkConfig(c: NetConfig, t: VirtioPciTransport, features: bigint): void {
  const f = (n: number) => (features & bit(n)) !== 0n, at = 0, m = t.deviceConfig;
  const rss = f(VIRTIO_NET_F_RSS), rssOrHash = rss || f(VIRTIO_NET_F_HASH_REPORT);
  for (let i = 0; i < 6; i++) assert.equal(c.mac[i], f(VIRTIO_NET_F_MAC) ? m.read8(at + i) : 0);
  assert.equal(c.linkUp, f(VIRTIO_NET_F_STATUS) ? (m.read16(at + 6) & 1) === 1 : true);
  assert.equal(c.maxVirtqueuePairs, f(VIRTIO_NET_F_MQ) || rss ? m.read16(at + 8) : 1);
  assert.ok(c.maxVirtqueuePairs >= 1 && c.maxVirtqueuePairs <= 0x8000);
  if (f(VIRTIO_NET_F_CTRL_VQ) && (f(VIRTIO_NET_F_MQ) || rss)) {
    assert.ok(2 * c.maxVirtqueuePairs <= 0xffff, "the control queue index fits queue_select");
  }
  assert.equal(c.mtu, f(VIRTIO_NET_F_MTU) ? m.read16(at + 10) : 1500);
  assert.ok(c.mtu >= 68);
  assert.equal(c.rssMaxKeySize, rssOrHash ? m.read8(at + 17) : 0);
  if (rssOrHash) assert.ok(c.rssMaxKeySize >= 40);
  assert.equal(c.rssMaxIndirectionTableLength, rss ? m.read16(at + 18) : 0);
  if (rss) assert.ok(c.rssMaxIndirectionTableLength >= 128);
  assert.equal(c.supportedHashTypes, rssOrHash ? m.read32(at + 20) : 0);
}

Deno.test("config space and device configuration from a hostile device parse into what the spec promises, or one sentence refuses them", () => {
  const seed = fuzzSeed(), rng = new Prng(seed);
  const good = configSpace();
  const outcomes: Record<string, number> = {};
  const count = (k: string) => (outcomes[k] = (outcomes[k] ?? 0) + 1);
  let i = 0;
  try {
    for (; i < ITERATIONS; i++) {
      const cfg = good.slice();
      const mutations = rng.below(4);
      for (let j = 0; j < mutations; j++) cfg[rng.pick(CAP_BYTES)] = rng.below(256);
      const bar = new FakeBar4(3);
      const plausible = deviceConfig(rng, bar);
      bar.configChanges = rng.chance(0.01) ? 1000 : rng.below(3);
      let features = bit(VIRTIO_F_VERSION_1);
      for (const n of FEATURES) if (rng.chance(0.5)) features |= bit(n);
      try {
        const t = new VirtioPciTransport(new FakePci(cfg, bar));
        checkConfig(readNetConfig(t, features), t, features);
        count(mutations ? "accepted with its capabilities changed" : "accepted");
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        assert.ok(e instanceof DriverError, `threw ${e}`);
        assert.ok(e.code === "DEVICE_MISBEHAVED" || e.code === "NOT_VIRTIO_NET", e.message);
        assert.match(e.message, /^[^\n]+\.$/, "one sentence");
        // A good function with fields in range, whose generation settles, is never refused.
        assert.ok(mutations > 0 || !plausible || bar.configChanges > 0, e.message);
        count(
          e.code === "NOT_VIRTIO_NET"
            ? "refused: a capability missing"
            : /generation/.test(e.message)
            ? "refused: generation never settled"
            : /capability list/.test(e.message)
            ? "refused: capability list malformed"
            : mutations
            ? "refused: a capability out of place"
            : "refused: a field out of range",
        );
      }
    }
  } catch (e) {
    throw new Error(
      `fuzz failed at iteration ${i} (replay: VIRTIO_FUZZ_SEED=${seed}): ${(e as Error).message}`,
      { cause: e },
    );
  }
  console.log(
    `config fuzz: seed ${seed}, ${ITERATIONS} devices; ` +
      Object.entries(outcomes).map(([k, n]) => `${k} ${n}`).join(", "),
  );
  assert.ok(outcomes["accepted"] > 0 && outcomes["refused: a field out of range"] > 0);
});
