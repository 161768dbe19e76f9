/**
 * The steering rules a port can be given, and what a device offers for them
 * (`Steering` in ./steering.ts puts them in force).
 *
 * @module
 */

/** All packets on queue pair 0. */
export interface SingleQueueRule {
  /** Mode name. */
  mode: "single";
  /** Hash reports with every packet (VIRTIO_NET_CTRL_MQ_HASH_CONFIG); default none. */
  hashReport?: HashReportOptions;
}

/** Automatic receive steering: receive follows transmit over `pairs` queue pairs. */
export interface AutoSteeringRule {
  /** Mode name. */
  mode: "auto";
  /** Queue pairs in use (2 … the port's queuePairs). */
  pairs: number;
  /** Hash reports with every packet (VIRTIO_NET_CTRL_MQ_HASH_CONFIG); default none. */
  hashReport?: HashReportOptions;
}

/**
 * What the device hashes for hash reports without RSS (§5.1.6.5.6.4): for a device with
 * VIRTIO_NET_F_HASH_REPORT but not VIRTIO_NET_F_RSS. With RSS, the rss mode reports hashes.
 */
export interface HashReportOptions {
  /** VIRTIO_NET_RSS_HASH_TYPE_* bits (default: every type the device supports). */
  hashTypes?: number;
  /** Toeplitz key (default: the 40-byte key of Microsoft's RSS verification suite). */
  key?: Uint8Array;
}

/**
 * Receive-side scaling: the device hashes each packet (Toeplitz, over the fields
 * `hashTypes` selects) and picks its queue from `indirectionTable[hash & (length - 1)]`.
 */
export interface RssSteeringRule {
  /** Mode name. */
  mode: "rss";
  /** Queue pairs in use: every table entry is below it (max_tx_vq is sent as all the port set up). */
  pairs: number;
  /** VIRTIO_NET_RSS_HASH_TYPE_* bits (default: every type the device supports). */
  hashTypes?: number;
  /** Toeplitz key (default: the 40-byte key of Microsoft's RSS verification suite). */
  key?: Uint8Array;
  /** Queue per hash bucket, a power-of-two length (default: round robin, 128 entries). */
  indirectionTable?: number[];
  /** Queue for packets that get no hash (default 0). */
  unclassifiedQueue?: number;
}

/**
 * The receive side of a switch when forwarding workers poll the port's receive queues
 * (src/engine/steering_mailbox.ts implements it): the main thread sends the command, the
 * workers keep the gate.
 */
export interface WorkerEpochs {
  /** Makes every worker stop taking the port's frames; throws when they cannot. */
  hold(): void;
  /**
   * Lets them go on: with a new epoch when `switched`, at `barriers` (per queue) or, when
   * not given, at the used indices of now.
   */
  release(switched: boolean, barriers?: readonly number[]): void;
}

/** A steering rule the device can be given. */
export type SteeringRule = SingleQueueRule | AutoSteeringRule | RssSteeringRule;

/** An RSS rule with every default filled in, as `Steering.current` reports it. */
export type ResolvedRssRule = Required<RssSteeringRule>;

/** What the device can do, from its features and configuration. */
export interface SteeringCapabilities {
  /** VIRTIO_NET_F_MQ: several queue pairs and automatic steering. */
  multiqueue: boolean;
  /** max_virtqueue_pairs. */
  maxVirtqueuePairs: number;
  /** Queue pairs the port set up. */
  queuePairs: number;
  /** VIRTIO_NET_F_RSS. */
  rss: boolean;
  /** VIRTIO_NET_F_HASH_REPORT. */
  hashReport: boolean;
  /** rss_max_key_size. */
  rssMaxKeySize: number;
  /** rss_max_indirection_table_length. */
  rssMaxIndirectionTableLength: number;
  /** supported_hash_types (VIRTIO_NET_RSS_HASH_TYPE_* bits). */
  supportedHashTypes: number;
}
