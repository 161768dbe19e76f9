/**
 * Test bed 3: DPDK's testpmd as a vhost-user back-end. No emulator in the data path: the
 * driver under test (or any vhost-user front-end, e.g. DPDK's virtio-user) connects as
 * client to the socket of each `net_vhost` port, and testpmd forwards between those ports
 * and, optionally, two `net_pcap` ports that read frames from pcap files and write what they
 * get into pcap files.
 *
 * Port order (testpmd numbers the ports in `--vdev` order; checked with `show port summary
 * all`), and testpmd's default paired topology forwards port 2k ⇄ port 2k+1:
 *
 * | bed                    | testpmd ports                       | forwarding                       |
 * | ---------------------- | ----------------------------------- | -------------------------------- |
 * | `vhostPorts: N`        | vhost0 … vhostN-1 = 0 … N-1         | vhost0 ⇄ vhost1, vhost2 ⇄ vhost3 |
 * | `vhostPorts: 1`, pcap  | pcap0 = 0, vhost0 = 1               | pcap0 ⇄ vhost0                   |
 * | `vhostPorts: 2`, pcap  | pcap0 = 0, vhost0 = 1, vhost1 = 2, pcap1 = 3 | pcap0 ⇄ vhost0, vhost1 ⇄ pcap1 |
 *
 * So with two vhost ports and pcap: the frames of IN0 go to vhost0 (the front-end receives
 * them on its first port), what the front-end sends on vhost1 is written to OUT1, and the
 * other way round IN1 → vhost1, vhost0 → OUT0. With Q queues every port has Q queues and
 * testpmd forwards queue q to queue q of the peer, so a pcap port reads one input file and
 * writes one output file per queue.
 *
 * Facts this bed relies on (DPDK 22.11, Debian 12):
 * - testpmd drains every receive queue when forwarding starts (`flush_fwd_rx_queues`): a
 *   pcap port's whole input would be read and dropped then. `--no-flush-rx` prevents it.
 * - A pcap port opens its files when the port starts (at testpmd's start-up), reads its
 *   input once (at the end it receives nothing more), and flushes its output after every
 *   burst (`pcap_dump_flush`); `port stop` closes it. {@linkcode VhostUserBed.finish} stops
 *   forwarding and the pcap ports, so the outputs are complete and closed after it.
 * - Lossless: `set fwd io retry` + `set burst tx delay D retry R` make testpmd retry a
 *   transmit that did not take the whole burst R times, D µs apart (busy waiting, all
 *   streams of the lcore wait), before it drops the rest (counted in the forward statistics'
 *   TX-dropped). A vhost port's transmit fails when the front-end's receive ring has no free
 *   buffers, so with the defaults (10 µs × 100,000) testpmd waits up to about 1 s for the
 *   front-end per burst. Checked: with the front-end stopped for 0.7 s, 0 frames of 10,000
 *   were dropped (plain `set fwd io`: 9,744 dropped, 256 fitted in the ring).
 * - A vhost port's link comes up when a front-end has connected and set DRIVER_OK on all
 *   its queues; frames sent to a port whose link is down are dropped. testpmd prints
 *   `Port N: link state change event`; {@linkcode VhostUserBed.waitLinkUp} polls `show port
 *   summary all`.
 * - EAL runs `--in-memory`: huge pages through memfd, no files under /dev/hugepages and no
 *   /var/run/dpdk/PREFIX (nothing to clean up after a crash). The back-end does not share
 *   its own memory; it maps the front-end's.
 *
 * Needs the Debian packages `dpdk-dev` (dpdk-testpmd), `librte-net-vhost23`,
 * `librte-net-pcap23`, `librte-mempool-ring23` (tools/setup.sh) and 2 MiB huge pages,
 * which {@linkcode ensureHugepages} sets up.
 *
 * @module
 */

import { encodePcap, readPcapFrames } from "../../src/pcap/pcap.ts";
import {
  ensureHugepages,
  type TestpmdPortCounters,
  TestpmdSession,
  type TestpmdSessionOptions,
} from "./testpmd_session.ts";

export { ensureHugepages, HUGEPAGE_DIR, TestpmdSession } from "./testpmd_session.ts";

/** One port's counters (testpmd's port numbers; names as in {@linkcode VhostUserBed.portNames}). */
export type VhostUserPortStats = TestpmdPortCounters;

/**
 * A pcap port's input: one entry per queue, each the path of a pcap file or the frames to
 * write into one (missing entries: an empty file, the queue receives nothing). A lone
 * string is queue 0's file.
 */
export type PcapInput = string | (string | Uint8Array[] | undefined)[];

/** Options of {@linkcode VhostUserBed.start}. */
export interface VhostUserBedOptions {
  /** Number of vhost-user ports (default 2; 1 or 2 with `pcap`). */
  vhostPorts?: number;
  /** Queue pairs of every port (testpmd --rxq/--txq, the vhost PMD's `queues`); default 1. */
  queues?: number;
  /**
   * Add the two pcap ports (one with `vhostPorts: 1`) and what they read: `in[i]` is pcap
   * port i's input (default nothing).
   */
  pcap?: { in?: [PcapInput?, PcapInput?] };
  /** Extra devargs of every vhost port, e.g. "iommu-support=1" or "tso=1". */
  vhostArgs?: string;
  /** Mbufs in testpmd's pool (default 16384). */
  mbufs?: number;
  /** Huge page memory of testpmd in MiB (EAL `-m`, default 256). */
  memoryMiB?: number;
  /** EAL lcores: `[main, forwarding]` (default `[0, 1]`: forwards on CPU 1). */
  lcores?: [number, number];
  /** How long to wait for testpmd's first prompt (default 30 s). */
  startTimeoutMs?: number;
}

/** Options of {@linkcode VhostUserBed.startForwarding}. */
export interface ForwardingOptions {
  /** Delay between transmit retries in µs (default 10). */
  retryDelayUs?: number;
  /** Retries of a transmit before the rest of the burst is dropped (default 100,000). */
  retries?: number;
  /** Wait for every vhost port's link first, up to this long (default 10 s; 0: do not). */
  linkTimeoutMs?: number;
}

let bedCounter = 0;
const DIR_PREFIX = "vubed-";

/**
 * Removes what beds of processes that no longer exist left (the process was killed): bed
 * directories `TMP/vubed-PID-*` and EAL runtime directories `/var/run/dpdk/bed…PIDx…`.
 */
async function removeStaleDirs(tmp: string): Promise<void> {
  const sweep = async (dir: string, re: RegExp) => {
    for await (const e of Deno.readDir(dir)) {
      const m = re.exec(e.name);
      if (!m || !e.isDirectory) continue;
      try {
        await Deno.stat(`/proc/${m[1]}`);
      } catch {
        await Deno.remove(`${dir}/${e.name}`, { recursive: true }).catch(() => {});
      }
    }
  };
  await sweep(tmp, new RegExp(`^${DIR_PREFIX}(\\d+)-`)).catch(() => {});
  await sweep("/var/run/dpdk", /^bed[a-z]*(\d+)x\d+$/).catch(() => {});
}

/**
 * A running back-end: one interactive testpmd with vhost-user ports (servers: the driver
 * connects as client to {@linkcode VhostUserBed.socket}) and optionally pcap ports, in a
 * private temporary directory.
 *
 * @example
 * ```ts ignore
 * import { VhostUserBed } from "./vhost_user_bed.ts";
 * import { udpFrames } from "./frames.ts";
 *
 * await using bed = await VhostUserBed.start({
 *   vhostPorts: 2,
 *   pcap: { in: [[udpFrames({ count: 100, flows: 4 })]] },
 * });
 * // … connect a front-end to bed.socket(0) and bed.socket(1), forward port A → port B …
 * await bed.startForwarding(); // waits for both links, io forwarding with retry
 * await bed.waitPcapTx(1, 100, 10000); // 100 frames written to OUT1
 * const out1 = (await bed.outputFrames(1))[0]; // queue 0's frames, after finish()
 * ```
 */
export class VhostUserBed {
  /** The private directory: sockets, input and output pcaps. */
  readonly dir: string;
  /** EAL file prefix of this testpmd (`bed` + PID + `x` + counter). */
  readonly filePrefix: string;
  /** Number of vhost ports. */
  readonly vhostPorts: number;
  /** Queue pairs per port. */
  readonly queues: number;
  /** Whether the pcap ports exist. */
  readonly hasPcap: boolean;
  #tp: TestpmdSession;
  readonly #tpOptions: TestpmdSessionOptions;
  /** testpmd's port names by port number ("pcap0", "vhost0", …). */
  readonly portNames: string[];
  #finished = false;
  #closed = false;

  private constructor(
    dir: string,
    prefix: string,
    opts: { vhostPorts: number; queues: number; pcap: boolean },
    tp: TestpmdSession,
    tpOptions: TestpmdSessionOptions,
    names: string[],
  ) {
    this.dir = dir;
    this.filePrefix = prefix;
    this.vhostPorts = opts.vhostPorts;
    this.queues = opts.queues;
    this.hasPcap = opts.pcap;
    this.#tp = tp;
    this.#tpOptions = tpOptions;
    this.portNames = names;
  }

  /** The testpmd session (for commands the bed has no method for). */
  get testpmd(): TestpmdSession {
    return this.#tp;
  }

  /**
   * Kills testpmd (SIGKILL: the front-ends see their connections drop) and starts it again
   * with the same ports and sockets, as a back-end that crashed and was restarted does. The
   * pcap inputs are read again from the start and the outputs start again empty.
   */
  async restartBackEnd(): Promise<void> {
    await this.#tp.kill();
    // DPDK's vhost server does not remove a socket file left behind: bind() would fail.
    for (let i = 0; i < this.vhostPorts; i++) await Deno.remove(this.socket(i)).catch(() => {});
    this.#tp = await TestpmdSession.start(this.#tpOptions);
    this.#finished = false;
  }

  /**
   * Sets up huge pages, writes the pcap inputs and starts testpmd (the vhost sockets exist
   * and listen when this resolves). Throws with testpmd's stderr tail if it fails.
   */
  static async start(options: VhostUserBedOptions = {}): Promise<VhostUserBed> {
    const vhostPorts = options.vhostPorts ?? 2;
    const queues = options.queues ?? 1;
    const pcap = options.pcap !== undefined;
    if (!(Number.isInteger(vhostPorts) && vhostPorts >= 1 && vhostPorts <= 16)) {
      throw new Error(`VhostUserBed: vhostPorts must be 1..16 (got ${vhostPorts})`);
    }
    if (pcap && vhostPorts > 2) throw new Error("VhostUserBed: pcap ports need 1 or 2 vhost ports");
    if (!(Number.isInteger(queues) && queues >= 1 && queues <= 16)) {
      throw new Error(`VhostUserBed: queues must be 1..16 (got ${queues})`);
    }
    const pcapCount = pcap ? vhostPorts : 0; // pcap0 (and pcap1 with two vhost ports)
    const inputs = options.pcap?.in ?? [];
    if (inputs.length > pcapCount) throw new Error("VhostUserBed: more pcap inputs than ports");

    await ensureHugepages();
    const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
    await removeStaleDirs(tmp);
    const dir = await Deno.makeTempDir({ prefix: `${DIR_PREFIX}${Deno.pid}-` });
    const prefix = `bed${Deno.pid}x${bedCounter++}`;
    try {
      const vdevs: string[] = [];
      const names: string[] = [];
      const pcapVdev = async (i: number) => {
        const input = inputs[i];
        const perQueue = typeof input === "string" ? [input] : input ?? [];
        if (perQueue.length > queues) {
          throw new Error(`VhostUserBed: pcap${i} input has ${perQueue.length} queues > ${queues}`);
        }
        const args = [`net_pcap${i}`];
        for (let q = 0; q < queues; q++) {
          let path = perQueue[q];
          if (typeof path !== "string") {
            const file = `${dir}/in${i}-q${q}.pcap`;
            await Deno.writeFile(file, encodePcap(path ?? []));
            path = file;
          }
          args.push(`rx_pcap=${path}`);
        }
        for (let q = 0; q < queues; q++) args.push(`tx_pcap=${outputPath(dir, i, q)}`);
        vdevs.push(args.join(","));
        names.push(`pcap${i}`);
      };
      if (pcap) await pcapVdev(0);
      for (let i = 0; i < vhostPorts; i++) {
        const extra = options.vhostArgs ? `,${options.vhostArgs}` : "";
        vdevs.push(`net_vhost${i},iface=${socketPath(dir, i)},queues=${queues}${extra}`);
        names.push(`vhost${i}`);
      }
      if (pcapCount === 2) await pcapVdev(1);
      const [main, fwd] = options.lcores ?? [0, 1];
      const tpOptions: TestpmdSessionOptions = {
        name: `testpmd vhost-user back-end (${prefix})`,
        startTimeoutMs: options.startTimeoutMs,
        eal: [
          "-l",
          `${main},${fwd}`,
          "--main-lcore",
          `${main}`,
          "-n",
          "1",
          `--file-prefix=${prefix}`,
          "--in-memory",
          "--no-pci",
          "-m",
          `${options.memoryMiB ?? 256}`,
          "--log-level=lib.vhost.config:notice",
          ...vdevs.flatMap((v) => ["--vdev", v]),
        ],
        app: [
          "--nb-cores=1",
          `--rxq=${queues}`,
          `--txq=${queues}`,
          "--no-flush-rx",
          `--total-num-mbufs=${options.mbufs ?? 16384}`,
        ],
      };
      const tp = await TestpmdSession.start(tpOptions);
      // A --vdev that fails to probe (e.g. an unreadable rx_pcap) is skipped and the other
      // ports are renumbered: check that every port is there, in order.
      const got = await tp.portSummary().then((ps) => ps.map((p) => p.name)).catch((e) =>
        e as Error
      );
      if (got instanceof Error || got.join() !== names.map((n) => `net_${n}`).join()) {
        await tp.kill();
        throw new Error(
          `VhostUserBed: testpmd has ports [${got}], expected [${names.map((n) => `net_${n}`)}]` +
            `; stderr tail:\n${tp.stderrTail()}`,
        );
      }
      return new VhostUserBed(dir, prefix, { vhostPorts, queues, pcap }, tp, tpOptions, names);
    } catch (e) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw e;
    }
  }

  /** Path of vhost port `i`'s socket (testpmd listens, the front-end connects). */
  socket(i: number): string {
    this.#checkVhost(i);
    return socketPath(this.dir, i);
  }

  /** testpmd's port number of vhost port `i`. */
  vhostPort(i: number): number {
    this.#checkVhost(i);
    return this.hasPcap ? i + 1 : i;
  }

  /** testpmd's port number of pcap port `i`. */
  pcapPort(i: number): number {
    this.#checkPcap(i);
    return i === 0 ? 0 : this.vhostPorts + 1;
  }

  /** Path of the file pcap port `i` writes queue `queue`'s frames into. */
  outputPcap(i: number, queue = 0): string {
    this.#checkPcap(i);
    if (!(queue >= 0 && queue < this.queues)) throw new Error(`VhostUserBed: no queue ${queue}`);
    return outputPath(this.dir, i, queue);
  }

  #checkVhost(i: number): void {
    if (!(Number.isInteger(i) && i >= 0 && i < this.vhostPorts)) {
      throw new Error(`VhostUserBed: no vhost port ${i} (have ${this.vhostPorts})`);
    }
  }

  #checkPcap(i: number): void {
    const n = this.hasPcap ? this.vhostPorts : 0;
    if (!(Number.isInteger(i) && i >= 0 && i < n)) {
      throw new Error(`VhostUserBed: no pcap port ${i} (have ${n})`);
    }
  }

  /** Writes one line to testpmd's prompt; resolves with its answer (up to the next prompt). */
  command(line: string, timeoutMs?: number): Promise<string> {
    return this.testpmd.command(line, timeoutMs);
  }

  /** Link status of every port by port number (`show port summary all`). */
  async links(): Promise<boolean[]> {
    const up: boolean[] = [];
    for (const p of await this.testpmd.portSummary()) up[p.port] = p.linkUp;
    return up;
  }

  /**
   * Waits until vhost port `i`'s link is up (a front-end connected and set DRIVER_OK);
   * throws after `timeoutMs`.
   */
  async waitLinkUp(i: number, timeoutMs = 10000): Promise<void> {
    const port = this.vhostPort(i);
    const deadline = performance.now() + timeoutMs;
    while (!(await this.links())[port]) {
      if (performance.now() > deadline) {
        throw new Error(`VhostUserBed: vhost${i} (port ${port}) link not up in ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Starts lossless io forwarding: waits for every vhost link (see `linkTimeoutMs`), then
   * `set fwd io retry`, `set burst tx delay D retry R`, `start`. The pcap ports start
   * reading their inputs at once.
   */
  async startForwarding(opts: ForwardingOptions = {}): Promise<void> {
    const linkMs = opts.linkTimeoutMs ?? 10000;
    if (linkMs > 0) { for (let i = 0; i < this.vhostPorts; i++) await this.waitLinkUp(i, linkMs); }
    const a = await this.command("set fwd io retry");
    if (!/io packet forwarding mode with retry/.test(a)) {
      throw new Error(`VhostUserBed: "set fwd io retry" answered: ${a}`);
    }
    await this.command(
      `set burst tx delay ${opts.retryDelayUs ?? 10} retry ${opts.retries ?? 100000}`,
    );
    const s = await this.command("start");
    if (!/io packet forwarding with retry/.test(s)) {
      throw new Error(`VhostUserBed: "start" answered: ${s}`);
    }
    this.#finished = false;
  }

  /** Stops forwarding (`stop`); returns testpmd's answer (its forward statistics). */
  stopForwarding(): Promise<string> {
    return this.command("stop");
  }

  /** Every port's counters, by testpmd port number. */
  stats(): Promise<VhostUserPortStats[]> {
    return this.testpmd.portCounters(this.portNames);
  }

  /** Zeroes the NIC counters (`clear port stats all`). */
  async clearStats(): Promise<void> {
    await this.command("clear port stats all");
  }

  /**
   * Polls {@linkcode VhostUserBed.stats} every 50 ms until `done` holds; resolves with the
   * stats, throws with the last ones after `timeoutMs`.
   */
  async waitStats(
    done: (s: VhostUserPortStats[]) => boolean,
    timeoutMs: number,
    what = "the expected counters",
  ): Promise<VhostUserPortStats[]> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const s = await this.stats();
      if (done(s)) return s;
      if (performance.now() > deadline) {
        throw new Error(
          `VhostUserBed: no ${what} within ${timeoutMs} ms; stats: ${JSON.stringify(s)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Waits until pcap port `i` has written `count` frames (over all its queues) or
   * forwarding has given up on frames of that many; throws after `timeoutMs`.
   */
  waitPcapTx(i: number, count: number, timeoutMs: number): Promise<VhostUserPortStats[]> {
    const port = this.pcapPort(i);
    return this.waitStats(
      (s) => s[port].txPackets + s[port].fwdTxDropped >= count,
      timeoutMs,
      `${count} frames out of pcap${i}`,
    );
  }

  /**
   * Stops forwarding and the pcap ports, which closes their output files: after this the
   * outputs are complete. Final for the pcap ports (starting them again would reopen the
   * inputs from the start and truncate the outputs). Idempotent.
   */
  async finish(): Promise<void> {
    if (this.#finished) return;
    await this.command("stop");
    if (this.hasPcap) {
      for (let i = 0; i < this.vhostPorts; i++) {
        const a = await this.command(`port stop ${this.pcapPort(i)}`);
        if (/fail|error|invalid/i.test(a)) throw new Error(`VhostUserBed: port stop: ${a}`);
      }
    }
    this.#finished = true;
  }

  /** The frames pcap port `i` wrote, per queue ({@linkcode VhostUserBed.finish} first). */
  async outputFrames(i: number): Promise<Uint8Array[][]> {
    this.#checkPcap(i);
    await this.finish();
    const out: Uint8Array[][] = [];
    for (let q = 0; q < this.queues; q++) {
      out.push(readPcapFrames(await Deno.readFile(this.outputPcap(i, q))));
    }
    return out;
  }

  /**
   * Quits testpmd (it closes every port: the front-ends see the sockets close), kills it
   * if it has not exited within 5 s, and removes the directory and anything EAL left under
   * its file prefix. Idempotent. Resolves with testpmd's exit status.
   */
  async close(): Promise<Deno.CommandStatus> {
    if (this.#closed) return this.testpmd.status ?? await this.testpmd.kill();
    this.#closed = true;
    try {
      return await this.testpmd.close(5000); // also removes EAL's files of the prefix
    } finally {
      await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    }
  }

  /** Same as {@linkcode VhostUserBed.close} (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function socketPath(dir: string, i: number): string {
  return `${dir}/v${i}.sock`;
}

function outputPath(dir: string, i: number, q: number): string {
  return `${dir}/out${i}-q${q}.pcap`;
}
