/**
 * DPDK's testpmd inside the VM bed's guest, on the same NICs the driver uses: the reference
 * forwarder a test runs next to l2fwd with the same frames (issue 10: "a reorder caused
 * outside the driver is shown as such, with DPDK's testpmd in the same bed").
 *
 * testpmd runs in io forwarding mode (port 0 ⇄ port 1, frames unchanged; io retry by
 * option), non-interactive, by default on one forwarding lcore that polls every queue of
 * both ports in turn (the guest has two vCPUs: lcore 0 waits on stdin, lcore 1 forwards;
 * two forwarding lcores by option), with `--in-memory` (2 MiB huge pages
 * through memfd: no hugetlbfs mount and nothing written to the read-only root). It is
 * stopped with a line on its stdin, as "Press enter to exit" asks: it then prints its
 * forward statistics and closes the ports (a virtio reset) before it exits 0.
 *
 * Needs the Debian packages `dpdk-dev` (dpdk-testpmd), `librte-net-virtio23` and
 * `librte-mempool-ring23` on the host (the guest sees the host's root), and huge pages in
 * the guest (`VmBed.start({ hugepages })`).
 *
 * @module
 */

import { shellQuote, type VmBed } from "./vm.ts";
import type { GuestProcess } from "./guest_agent.ts";

/** Options of {@linkcode startTestpmd} and {@linkcode testpmdCommand}. */
export interface TestpmdOptions {
  /** Guest PCI addresses of the two ports (port 0, port 1). */
  ports: [string, string];
  /** Receive and transmit queues per port (testpmd --rxq/--txq). */
  queues: number;
  /** Mbufs in the pool (default 8192: enough for 2 × 4 rings of 256 and bursts). */
  mbufs?: number;
  /** EAL file prefix (default "vdtp"). */
  filePrefix?: string;
  /**
   * io retry: a burst the transmit ring does not take whole is retried (64 times, 1 µs
   * apart) before the rest is dropped, as l2fwd's `--tx-full wait` waits (default false).
   */
  retry?: boolean;
  /**
   * Forwarding lcores (default 1: it polls every queue). With 2, one per vCPU of the
   * guest's two, the second beside the main lcore, which only waits on stdin.
   */
  forwardingCores?: 1 | 2;
}

/**
 * The guest shell command that runs testpmd in io forwarding mode on `opts.ports`. Its
 * stdin is a FIFO that stays open (so it does not quit at once; see
 * {@linkcode testpmdStdin}), its stdout line-buffered (so the host sees "Press enter to
 * exit" once forwarding has started).
 *
 * @example
 * ```ts
 * import { testpmdCommand } from "./testpmd.ts";
 * testpmdCommand({ ports: ["0000:00:04.0", "0000:00:05.0"], queues: 2 }).includes("--rxq=2"); // true
 * testpmdCommand({ ports: ["0000:00:04.0", "0000:00:05.0"], queues: 1, retry: true })
 *   .includes("set fwd io retry"); // true
 * ```
 */
export function testpmdCommand(opts: TestpmdOptions): string {
  if (!(Number.isInteger(opts.queues) && opts.queues >= 1 && opts.queues <= 64)) {
    throw new Error(`testpmd: queues must be 1..64 (got ${opts.queues})`);
  }
  const cores = opts.forwardingCores ?? 1;
  const eal = [
    cores === 1 ? "-l 0,1" : "--lcores=0@0,1@1,2@0",
    "--main-lcore 0",
    "-n 1",
    "--in-memory",
    `--file-prefix=${opts.filePrefix ?? "vdtp"}`,
    ...opts.ports.map((a) => `-a ${shellQuote(a)}`),
  ];
  const app = [
    "--forward-mode=io",
    `--rxq=${opts.queues}`,
    `--txq=${opts.queues}`,
    `--nb-cores=${cores}`,
    `--total-num-mbufs=${opts.mbufs ?? 8192}`,
  ];
  // A FIFO on stdin that this shell holds open: testpmd forwards until a line arrives on it
  // (testpmdStdin), then stops, prints its statistics, closes the ports and exits 0.
  const fifo = testpmdStdin(opts);
  // No option sets retry; testpmd runs a --cmdline-file's commands before it starts
  // forwarding, interactive or not.
  const cmds = `/run/${opts.filePrefix ?? "vdtp"}.cmds`;
  if (opts.retry) app.push(`--cmdline-file=${cmds}`);
  return [
    ...(opts.retry ? [`printf 'set fwd io retry\\n' > ${cmds} || exit 125`] : []),
    `rm -f ${fifo} && mkfifo ${fifo} || exit 125`,
    `stdbuf -oL dpdk-testpmd ${eal.join(" ")} -- ${app.join(" ")} < ${fifo} & tp=$!`,
    `exec 3> ${fifo}`,
    `wait $tp; rc=$?; rm -f ${fifo}; exit $rc`,
  ].join("\n");
}

/**
 * The guest path of the FIFO that is testpmd's stdin: a line written to it stops testpmd.
 *
 * @example
 * ```ts
 * import { testpmdStdin } from "./testpmd.ts";
 * testpmdStdin({ ports: ["0000:00:04.0", "0000:00:05.0"], queues: 1 }); // "/run/vdtp.stdin"
 * ```
 */
export function testpmdStdin(opts: TestpmdOptions): string {
  return `/run/${opts.filePrefix ?? "vdtp"}.stdin`;
}

/** One port's forward statistics, as testpmd prints them when it stops. */
export interface TestpmdPortStats {
  /** Port number (the order of `ports`). */
  port: number;
  /** Frames it received. */
  rxPackets: number;
  /** Frames its receive side dropped (no mbuf, ring full). */
  rxDropped: number;
  /** Frames it sent. */
  txPackets: number;
  /** Frames its transmit side could not send. */
  txDropped: number;
}

/** One forwarding stream (receive queue → transmit queue) of testpmd's statistics. */
export interface TestpmdStreamStats {
  /** Receive port and queue. */
  rxPort: number;
  /** Receive queue. */
  rxQueue: number;
  /** Transmit port. */
  txPort: number;
  /** Transmit queue. */
  txQueue: number;
  /** Frames received on the stream's queue. */
  rxPackets: number;
  /** Frames sent by the stream. */
  txPackets: number;
  /** Frames the stream could not send. */
  txDropped: number;
}

/** What testpmd printed when it stopped. */
export interface TestpmdStats {
  /** Per port. */
  ports: TestpmdPortStats[];
  /** Per stream (testpmd prints them only with more than one stream per port). */
  streams: TestpmdStreamStats[];
}

/**
 * Reads testpmd's forward statistics (printed at the stop) from its standard output.
 * Throws when there are none (testpmd failed before forwarding or was killed).
 *
 * @example
 * ```ts
 * import { parseTestpmdStats } from "./testpmd.ts";
 * const out = "  ---------------------- Forward statistics for port 0  ----------------------\n" +
 *   "  RX-packets: 5              RX-dropped: 0             RX-total: 5\n" +
 *   "  TX-packets: 4              TX-dropped: 1             TX-total: 5\n";
 * parseTestpmdStats(out).ports[0].txDropped; // 1
 * ```
 */
export function parseTestpmdStats(stdout: string): TestpmdStats {
  const ports: TestpmdPortStats[] = [];
  const portRe =
    /Forward statistics for port (\d+)\s*-+\s*RX-packets:\s*(\d+)\s+RX-dropped:\s*(\d+)\s+RX-total:\s*\d+\s*TX-packets:\s*(\d+)\s+TX-dropped:\s*(\d+)/g;
  for (const m of stdout.matchAll(portRe)) {
    ports.push({
      port: Number(m[1]),
      rxPackets: Number(m[2]),
      rxDropped: Number(m[3]),
      txPackets: Number(m[4]),
      txDropped: Number(m[5]),
    });
  }
  const streams: TestpmdStreamStats[] = [];
  const streamRe =
    /Forward Stats for RX Port=\s*(\d+)\/Queue=\s*(\d+) -> TX Port=\s*(\d+)\/Queue=\s*(\d+)\s*-+\s*RX-packets:\s*(\d+)\s+TX-packets:\s*(\d+)\s+TX-dropped:\s*(\d+)/g;
  for (const m of stdout.matchAll(streamRe)) {
    const [rxPort, rxQueue, txPort, txQueue, rxPackets, txPackets, txDropped] = m.slice(1)
      .map(Number);
    streams.push({ rxPort, rxQueue, txPort, txQueue, rxPackets, txPackets, txDropped });
  }
  if (ports.length === 0) {
    throw new Error(`testpmd printed no forward statistics:\n${stdout.trim().slice(-2000)}`);
  }
  return { ports, streams };
}

/**
 * The guest shell commands that put PCI functions on vfio-pci (driver_override and
 * drivers_probe), leaving one already there alone. Only for the guest's own NICs.
 *
 * @example
 * ```ts
 * import { bindVfioScript } from "./testpmd.ts";
 * bindVfioScript(["0000:00:04.0"]).includes("driver_override"); // true
 * ```
 */
export function bindVfioScript(addresses: string[]): string {
  return addresses.map((a) => {
    const d = `/sys/bus/pci/devices/${a}`;
    return [
      `drv=$(basename "$(readlink ${d}/driver)" 2>/dev/null)`,
      `if [ "$drv" != vfio-pci ]; then`,
      `  if [ -n "$drv" ]; then echo ${a} > ${d}/driver/unbind; fi`,
      `  echo vfio-pci > ${d}/driver_override && echo ${a} > /sys/bus/pci/drivers_probe`,
      `fi`,
    ].join("\n");
  }).join("\n");
}

/** A running testpmd, see {@linkcode startTestpmd}. */
export interface Testpmd {
  /** The guest process. */
  readonly process: GuestProcess;
  /** Stops it (a line on its stdin) and returns its statistics and output. */
  stop(): Promise<{ stats: TestpmdStats; stdout: string; stderr: string; code: number }>;
}

/**
 * Binds the ports to vfio-pci in the guest (modprobe vfio-pci first), starts testpmd on
 * them and resolves once it forwards. Throws with testpmd's output when it does not start.
 *
 * @example
 * ```ts ignore
 * const tp = await startTestpmd(bed, { ports: [bed.nicAddress(0), bed.nicAddress(1)], queues: 2 });
 * // … send and capture …
 * const { stats } = await tp.stop();
 * ```
 */
export async function startTestpmd(
  bed: VmBed,
  opts: TestpmdOptions,
  timeoutMs = 120000,
): Promise<Testpmd> {
  // The guest runs the host's root: testpmd is there when the host has it.
  if (!(await Deno.stat("/usr/bin/dpdk-testpmd").then((s) => s.isFile, () => false))) {
    throw new Error("dpdk-testpmd is not installed: run tools/setup.sh (Debian package dpdk-dev).");
  }
  const bind = await bed.exec(
    `modprobe vfio-pci && modprobe vfio_iommu_type1 && ${bindVfioScript(opts.ports)}`,
  );
  if (bind.code !== 0) throw new Error(`binding ${opts.ports} to vfio-pci: ${bind.stderr}`);
  const process = await bed.spawn(testpmdCommand(opts));
  try {
    await process.waitForOutput(/Press enter to exit/, timeoutMs);
    // testpmd says which mode its command file set; without that line it forwards in io.
    if (opts.retry && !/Set io packet forwarding mode with retry/.test(await process.stdout())) {
      throw new Error(`testpmd did not take "set fwd io retry": ${await process.stdout()}`);
    }
  } catch (e) {
    await process.kill("KILL", 1000).catch(() => {});
    throw e;
  }
  return {
    process,
    async stop() {
      await bed.exec(`echo > ${testpmdStdin(opts)}`);
      const r = await process.wait(30000).catch(() => process.kill("INT", 10000));
      return { stats: parseTestpmdStats(r.stdout), ...r };
    },
  };
}
