/**
 * struct virtio_net_config (virtio 1.x §5.1.4): the device-specific configuration.
 *
 * Fields are read only when the feature that defines them was negotiated, and validated:
 * values come from the device.
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import { hasFeature } from "../virtio/features.ts";
import type { VirtioTransport } from "../virtio/transport.ts";
import {
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_HASH_REPORT,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_RSS,
  VIRTIO_NET_F_STATUS,
} from "./features.ts";

/** status bit: the link is up. */
export const VIRTIO_NET_S_LINK_UP = 1;
/** status bit: the device asks the driver to send gratuitous packets. */
export const VIRTIO_NET_S_ANNOUNCE = 2;

/** The decoded configuration. */
export interface NetConfig {
  /** MAC address as 6 bytes (zeroes when VIRTIO_NET_F_MAC is absent). */
  mac: Uint8Array;
  /** Link up (true when VIRTIO_NET_F_STATUS is absent: the link is assumed up). */
  linkUp: boolean;
  /** The device asks for an announcement (VIRTIO_NET_S_ANNOUNCE). */
  announce: boolean;
  /** max_virtqueue_pairs (1 without VIRTIO_NET_F_MQ). */
  maxVirtqueuePairs: number;
  /** MTU (1500 without VIRTIO_NET_F_MTU). */
  mtu: number;
  /** rss_max_key_size (0 without RSS). */
  rssMaxKeySize: number;
  /** rss_max_indirection_table_length (0 without RSS). */
  rssMaxIndirectionTableLength: number;
  /** supported_hash_types (0 without RSS or HASH_REPORT). */
  supportedHashTypes: number;
}

/**
 * Formats a MAC address as aa:bb:cc:dd:ee:ff.
 *
 * @example
 * ```ts
 * import { formatMac } from "./config.ts";
 * formatMac(new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56])); // "52:54:00:12:34:56"
 * ```
 */
export function formatMac(mac: Uint8Array): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * Bytes of struct virtio_net_config that the fields valid under `features` span (§5.1.4):
 * a device-configuration structure shorter than this cannot be read.
 *
 * @example
 * ```ts
 * import { netConfigLength, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MTU } from "../../mod.ts";
 * netConfigLength((1n << BigInt(VIRTIO_NET_F_MAC)) | (1n << BigInt(VIRTIO_NET_F_MTU))); // 12
 * ```
 */
export function netConfigLength(features: bigint): number {
  const f = (n: number) => hasFeature(features, n);
  // rss_max_key_size (17), rss_max_indirection_table_length (18), supported_hash_types (20)
  if (f(VIRTIO_NET_F_RSS) || f(VIRTIO_NET_F_HASH_REPORT)) return 24;
  if (f(VIRTIO_NET_F_MTU)) return 12; // mtu (10)
  if (f(VIRTIO_NET_F_MQ)) return 10; // max_virtqueue_pairs (8)
  if (f(VIRTIO_NET_F_STATUS)) return 8; // status (6)
  return f(VIRTIO_NET_F_MAC) ? 6 : 0;
}

/** The smallest rss_max_key_size a device with RSS or HASH_REPORT may report (§5.1.4.1). */
export const RSS_MIN_KEY_SIZE = 40;

/** The smallest rss_max_indirection_table_length a device with RSS may report (§5.1.4.1). */
export const RSS_MIN_TABLE_LENGTH = 128;

/**
 * Checks the values a device reported against what virtio 1.x allows (§5.1.4.1) and what
 * the negotiated `features` need; throws DEVICE_MISBEHAVED naming the first bad field.
 * {@linkcode readNetConfig} calls it on every read.
 *
 * @example
 * ```ts
 * import { validateNetConfig } from "./config.ts";
 * const cfg = {
 *   mac: new Uint8Array(6), linkUp: true, announce: false, maxVirtqueuePairs: 1, mtu: 1500,
 *   rssMaxKeySize: 0, rssMaxIndirectionTableLength: 0, supportedHashTypes: 0,
 * };
 * validateNetConfig("0000:00:04.0", cfg, 1n << 32n); // fine: throws nothing
 * ```
 */
export function validateNetConfig(name: string, cfg: NetConfig, features: bigint): void {
  const f = (n: number) => hasFeature(features, n);
  const broken = (what: string) => {
    throw new DriverError("DEVICE_MISBEHAVED", `${name} reports ${what}: the device is broken.`);
  };
  if (cfg.mtu < 68) broken(`an MTU of ${cfg.mtu}, below IPv4's minimum of 68`);
  // §5.1.4.1: max_virtqueue_pairs lies in 1…0x8000 (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN/MAX).
  const pairs = cfg.maxVirtqueuePairs;
  if (pairs < 1 || pairs > 0x8000) {
    broken(`max_virtqueue_pairs = ${pairs}, outside 1…32768`);
  }
  // §5.1.2: the control queue is virtqueue 2·max_virtqueue_pairs; queue_select is 16 bits,
  // so 0x8000 pairs would select queue 0 (receiveq1) for it.
  if (
    f(VIRTIO_NET_F_CTRL_VQ) && (f(VIRTIO_NET_F_MQ) || f(VIRTIO_NET_F_RSS)) && 2 * pairs > 0xffff
  ) {
    broken(
      `max_virtqueue_pairs = ${pairs}, which puts the control queue at index ${
        2 * pairs
      }, beyond the 16-bit queue_select`,
    );
  }
  if (
    (f(VIRTIO_NET_F_RSS) || f(VIRTIO_NET_F_HASH_REPORT)) && cfg.rssMaxKeySize < RSS_MIN_KEY_SIZE
  ) {
    broken(`rss_max_key_size = ${cfg.rssMaxKeySize}, below the ${RSS_MIN_KEY_SIZE} bytes required`);
  }
  // §5.1.4.1: a device with RSS takes tables of at least 128 entries. The maximum need not
  // be a power of two; the tables the driver sends are (Steering uses 128 by default).
  const len = cfg.rssMaxIndirectionTableLength;
  if (f(VIRTIO_NET_F_RSS) && len < RSS_MIN_TABLE_LENGTH) {
    broken(
      `rss_max_indirection_table_length = ${len}, below the ${RSS_MIN_TABLE_LENGTH} entries required`,
    );
  }
}

/**
 * Reads the configuration for the negotiated `features`, consistently (config_generation),
 * and validates it ({@linkcode validateNetConfig}). Throws DEVICE_MISBEHAVED when the
 * device-configuration structure is too short for those features' fields.
 *
 * @example
 * ```ts ignore
 * import { readNetConfig } from "./config.ts";
 * const cfg = readNetConfig(transport, negotiated);
 * console.log(cfg.maxVirtqueuePairs);
 * ```
 */
export function readNetConfig(t: VirtioTransport, features: bigint): NetConfig {
  const f = (n: number) => hasFeature(features, n);
  const need = netConfigLength(features);
  const cfg = t.readConfig((c): NetConfig => {
    if (c.size < need) {
      throw new DriverError(
        "DEVICE_MISBEHAVED",
        `${t.name}'s device configuration structure is ${c.size} bytes, shorter than the ${need} bytes of struct virtio_net_config the negotiated features need: the device is broken.`,
      );
    }
    const mac = new Uint8Array(6);
    if (f(VIRTIO_NET_F_MAC)) { for (let i = 0; i < 6; i++) mac[i] = c.read8(i); }
    const status = f(VIRTIO_NET_F_STATUS) ? c.read16(6) : VIRTIO_NET_S_LINK_UP;
    // §5.1.4: max_virtqueue_pairs exists with MQ or RSS; rss_max_key_size and
    // supported_hash_types with RSS or HASH_REPORT; the table length with RSS.
    const rss = f(VIRTIO_NET_F_RSS), rssOrHash = rss || f(VIRTIO_NET_F_HASH_REPORT);
    return {
      mac,
      linkUp: (status & VIRTIO_NET_S_LINK_UP) !== 0,
      announce: (status & VIRTIO_NET_S_ANNOUNCE) !== 0,
      maxVirtqueuePairs: f(VIRTIO_NET_F_MQ) || rss ? c.read16(8) : 1,
      mtu: f(VIRTIO_NET_F_MTU) ? c.read16(10) : 1500,
      rssMaxKeySize: rssOrHash ? c.read8(17) : 0,
      rssMaxIndirectionTableLength: rss ? c.read16(18) : 0,
      supportedHashTypes: rssOrHash ? c.read32(20) : 0,
    };
  });
  validateNetConfig(t.name, cfg, features);
  return cfg;
}
