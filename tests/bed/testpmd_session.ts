/**
 * An interactive `dpdk-testpmd` (`-i`) driven through its prompt: a line written to its
 * stdin is one command, the answer is everything it prints up to the next `testpmd> `.
 *
 * How it runs, and why:
 * - `setpriv --pdeathsig KILL`: testpmd dies with the test process, even on SIGKILL;
 * - `stdbuf -o0`: testpmd writes its prompt and echo with write(2) but answers with printf,
 *   so with a block-buffered stdout (a pipe) answers would arrive late and out of order;
 * - stdin stays open for the session; closing it (EOF) also makes testpmd quit.
 *
 * After it exited, {@linkcode TestpmdSession.close} and {@linkcode TestpmdSession.kill}
 * remove what EAL leaves under its `--file-prefix`: `/var/run/dpdk/PREFIX` (created even
 * with `--in-memory`, and left behind) and `/dev/hugepages/PREFIXmap_*` (without
 * `--in-memory`).
 *
 * Also here: parsing its port counters ({@linkcode parseTestpmdPortStats}) and the huge
 * pages it needs ({@linkcode ensureHugepages}).
 *
 * Events testpmd prints on its own (`Port 1: link state change event`, from its interrupt
 * thread) land in the answer of whatever command is running then; {@linkcode
 * TestpmdSession.output} keeps everything. A testpmd that exits while a command waits makes
 * the command throw with the tail of its stderr (EAL's and the PMDs' log).
 *
 * @module
 */

/** The prompt testpmd prints when it waits for a command. */
export const TESTPMD_PROMPT = "testpmd> ";

/** The hugetlbfs mount point ({@linkcode ensureHugepages} mounts it when nothing is there). */
export const HUGEPAGE_DIR = "/dev/hugepages";
/** 2 MiB pages {@linkcode ensureHugepages} makes sure exist by default. */
export const DEFAULT_HUGEPAGES = 1024;

/**
 * Mounts hugetlbfs at {@linkcode HUGEPAGE_DIR} if nothing is mounted there and raises
 * /proc/sys/vm/nr_hugepages to `minPages` when it is lower (never lowers it). Throws when
 * the kernel could not provide `minFree` free pages. The driver under test also takes huge
 * pages for its DMA memory when free ones exist.
 *
 * @example
 * ```ts ignore
 * import { ensureHugepages } from "./testpmd_session.ts";
 * await ensureHugepages(1024); // root only
 * ```
 */
export async function ensureHugepages(minPages = DEFAULT_HUGEPAGES, minFree = 128): Promise<void> {
  const mounts = await Deno.readTextFile("/proc/mounts");
  const mounted = mounts.split("\n").some((l) => {
    const f = l.split(" ");
    return f[1] === HUGEPAGE_DIR && f[2] === "hugetlbfs";
  });
  if (!mounted) {
    await Deno.mkdir(HUGEPAGE_DIR, { recursive: true });
    const r = await new Deno.Command("mount", {
      args: ["-t", "hugetlbfs", "-o", "pagesize=2M", "none", HUGEPAGE_DIR],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!r.success) {
      throw new Error(`mount hugetlbfs on ${HUGEPAGE_DIR}: ${new TextDecoder().decode(r.stderr)}`);
    }
  }
  const nr = "/proc/sys/vm/nr_hugepages";
  if (Number((await Deno.readTextFile(nr)).trim()) < minPages) {
    await Deno.writeTextFile(nr, `${minPages}\n`);
  }
  const free = Number(
    /HugePages_Free:\s+(\d+)/.exec(await Deno.readTextFile("/proc/meminfo"))?.[1],
  );
  if (!(free >= minFree)) {
    throw new Error(`only ${free} free 2 MiB huge pages (need ${minFree}; see ${nr})`);
  }
}

/** One port's counters, from `show port stats all` and `show fwd stats all`. */
export interface TestpmdPortCounters {
  /** testpmd's port number. */
  port: number;
  /** A name for it (given to the parser; default "portN"), e.g. "vhost0". */
  name: string;
  /** Frames received (NIC counter, since start or `clear port stats all`). */
  rxPackets: number;
  /** Frames the port missed (RX-missed). */
  rxMissed: number;
  /** Receive errors. */
  rxErrors: number;
  /** Receive attempts without a free mbuf. */
  rxNoMbuf: number;
  /** Frames sent (NIC counter). */
  txPackets: number;
  /**
   * Transmit errors. A vhost port whose front-end's receive ring is full does not count
   * here (0 seen while testpmd retried for 0.7 s); frames lost are `fwdTxDropped`.
   */
  txErrors: number;
  /** Frames received by forwarding since the last start of forwarding. */
  fwdRxPackets: number;
  /** Frames dropped on receive since the last start of forwarding. */
  fwdRxDropped: number;
  /** Frames forwarding sent out of this port since the last start of forwarding. */
  fwdTxPackets: number;
  /** Frames forwarding gave up on (retries exhausted) for this port: lost frames. */
  fwdTxDropped: number;
}

function parseNum(block: string, label: string): number {
  const m = new RegExp(`${label}:\\s*(\\d+)`).exec(block);
  return m ? Number(m[1]) : 0;
}

/**
 * Parses testpmd's `show port stats all` and `show fwd stats all` answers into per-port
 * counters (ports in the order of the first answer).
 *
 * @example
 * ```ts
 * import { parseTestpmdPortStats } from "./testpmd_session.ts";
 * const nic = "  ######################## NIC statistics for port 0  ########################\n" +
 *   "  RX-packets: 7          RX-missed: 0          RX-bytes:  420\n  RX-errors: 0\n" +
 *   "  RX-nombuf:  0\n  TX-packets: 5          TX-errors: 2          TX-bytes:  300\n";
 * const fwd = "  ---------------------- Forward statistics for port 0  ----------------------\n" +
 *   "  RX-packets: 7              RX-dropped: 0             RX-total: 7\n" +
 *   "  TX-packets: 5              TX-dropped: 1             TX-total: 6\n";
 * parseTestpmdPortStats(nic, fwd, ["pcap0"])[0].fwdTxDropped; // 1
 * ```
 */
export function parseTestpmdPortStats(
  portStats: string,
  fwdStats: string,
  names: string[] = [],
): TestpmdPortCounters[] {
  const out: TestpmdPortCounters[] = [];
  const blocks = portStats.split(/#+ NIC statistics for port /).slice(1);
  const fwd = new Map<number, string>();
  for (const b of fwdStats.split(/-+ Forward statistics for port /).slice(1)) {
    fwd.set(Number(/^\d+/.exec(b)?.[0]), b.split(/\+\+\+/)[0]);
  }
  for (const b of blocks) {
    const port = Number(/^\d+/.exec(b)?.[0]);
    const f = fwd.get(port) ?? "";
    out.push({
      port,
      name: names[port] ?? `port${port}`,
      rxPackets: parseNum(b, "RX-packets"),
      rxMissed: parseNum(b, "RX-missed"),
      rxErrors: parseNum(b, "RX-errors"),
      rxNoMbuf: parseNum(b, "RX-nombuf"),
      txPackets: parseNum(b, "TX-packets"),
      txErrors: parseNum(b, "TX-errors"),
      fwdRxPackets: parseNum(f, "RX-packets"),
      fwdRxDropped: parseNum(f, "RX-dropped"),
      fwdTxPackets: parseNum(f, "TX-packets"),
      fwdTxDropped: parseNum(f, "TX-dropped"),
    });
  }
  return out;
}

/** Options of {@linkcode TestpmdSession.start}. */
export interface TestpmdSessionOptions {
  /** EAL arguments (before `--`), e.g. `["-l", "0,1", "--no-pci", …]`. */
  eal: string[];
  /** testpmd arguments (after `--`); `-i` is added. */
  app?: string[];
  /** Name in error messages (default "testpmd"). */
  name?: string;
  /** How long to wait for the first prompt (default 30 s). */
  startTimeoutMs?: number;
  /** The testpmd binary (default `dpdk-testpmd`). */
  binary?: string;
}

/**
 * One running interactive testpmd.
 *
 * @example
 * ```ts ignore
 * import { TestpmdSession } from "./testpmd_session.ts";
 * const tp = await TestpmdSession.start({
 *   eal: ["-l", "0,1", "--main-lcore", "0", "--no-pci", "--in-memory", "--vdev", "net_null0"],
 *   name: "null",
 * });
 * console.log(await tp.command("show port summary all"));
 * await tp.close();
 * ```
 */
export class TestpmdSession {
  /** Name in error messages. */
  readonly name: string;
  /** The full command line (for error messages and logs). */
  readonly argv: string[];
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #done: Promise<void>;
  #out = "";
  #err = "";
  #status: Deno.CommandStatus | null = null;
  #waiters: (() => void)[] = [];
  #chain: Promise<unknown> = Promise.resolve();
  #stdinClosed = false;

  private constructor(name: string, argv: string[]) {
    this.name = name;
    this.argv = argv;
    const child = new Deno.Command("setpriv", {
      args: ["--pdeathsig", "KILL", "stdbuf", "-o0", ...argv],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#stdin = child.stdin.getWriter();
    const dec = (s: ReadableStream<Uint8Array>, put: (t: string) => void) =>
      (async () => {
        const d = new TextDecoder();
        for await (const chunk of s) {
          put(d.decode(chunk, { stream: true }));
          this.#wake();
        }
      })();
    const out = dec(child.stdout, (t) => this.#out += t);
    const err = dec(child.stderr, (t) => this.#err += t);
    this.#done = (async () => {
      this.#status = await child.status;
      await Promise.allSettled([out, err]);
      this.#wake();
    })();
  }

  /**
   * Starts testpmd (`binary eal… -- -i app…`) and waits for its first prompt. Throws with
   * its stderr tail when it exits or gives no prompt in time.
   */
  static async start(opts: TestpmdSessionOptions): Promise<TestpmdSession> {
    const argv = [opts.binary ?? "dpdk-testpmd", ...opts.eal, "--", "-i", ...(opts.app ?? [])];
    const s = new TestpmdSession(opts.name ?? "testpmd", argv);
    try {
      await s.#waitOutput(0, opts.startTimeoutMs ?? 30000, "its first prompt");
    } catch (e) {
      await s.kill();
      throw e;
    }
    return s;
  }

  /** PID of testpmd (setpriv and stdbuf exec it in place). */
  get pid(): number {
    return this.#child.pid;
  }

  /** True once the process has exited. */
  get exited(): boolean {
    return this.#status !== null;
  }

  /** Its exit status, or null while it runs. */
  get status(): Deno.CommandStatus | null {
    return this.#status;
  }

  /** Everything it printed on stdout so far (answers, prompts, events). */
  get output(): string {
    return this.#out;
  }

  /** Everything it printed on stderr so far (EAL and PMD log). */
  get stderr(): string {
    return this.#err;
  }

  /** The last `lines` lines of its stderr (for error messages). */
  stderrTail(lines = 25): string {
    return this.#err.trimEnd().split("\n").slice(-lines).join("\n");
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  #died(what: string): Error {
    const st = this.#status!;
    const how = st.signal ? `was killed by ${st.signal}` : `exited with code ${st.code}`;
    return new Error(
      `${this.name} ${how} while waiting for ${what}; stderr tail:\n${this.stderrTail()}`,
    );
  }

  /** Waits for a prompt at or after `from` in the output; returns its index. */
  async #waitOutput(from: number, timeoutMs: number, what: string): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const i = this.#out.indexOf(TESTPMD_PROMPT, from);
      if (i >= 0) return i;
      if (this.#status) throw this.#died(what);
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(
          `${this.name}: no prompt within ${timeoutMs} ms waiting for ${what}; output tail:\n` +
            this.#out.slice(-2000) + `\nstderr tail:\n${this.stderrTail()}`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        timer = setTimeout(r, Math.min(left, 1000));
      });
      clearTimeout(timer);
    }
  }

  /**
   * Runs one command line and returns what testpmd printed up to its next prompt, without
   * the echoed command line. Commands run one at a time, in call order.
   */
  command(line: string, timeoutMs = 30000): Promise<string> {
    if (line.includes("\n")) throw new Error(`${this.name}: one command per line: ${line}`);
    const run = async () => {
      if (this.#status) throw this.#died(`"${line}"`);
      if (this.#stdinClosed) throw new Error(`${this.name}: closed`);
      const from = this.#out.length;
      await this.#stdin.write(new TextEncoder().encode(line + "\n"));
      const end = await this.#waitOutput(from, timeoutMs, `"${line}"`);
      let answer = this.#out.slice(from, end);
      // The echo of the line comes first (testpmd's line editor echoes what it reads).
      if (answer.startsWith(line)) answer = answer.slice(line.length).replace(/^\r?\n/, "");
      return answer;
    };
    const p = this.#chain.then(run, run);
    this.#chain = p.catch(() => {});
    return p;
  }

  /** Every port's number, device name and link state (`show port summary all`). */
  async portSummary(): Promise<{ port: number; name: string; linkUp: boolean }[]> {
    const ans = await this.command("show port summary all");
    const ports: { port: number; name: string; linkUp: boolean }[] = [];
    for (const m of ans.matchAll(/^(\d+)\s+\S+\s+(\S+)\s+\S+\s+(up|down)\b/gm)) {
      ports.push({ port: Number(m[1]), name: m[2], linkUp: m[3] === "up" });
    }
    return ports;
  }

  /** Every port's counters (`show port stats all` + `show fwd stats all`); see `names`. */
  async portCounters(names: string[] = []): Promise<TestpmdPortCounters[]> {
    const nic = await this.command("show port stats all");
    const fwd = await this.command("show fwd stats all");
    return parseTestpmdPortStats(nic, fwd, names);
  }

  /**
   * Sends `quit` (testpmd stops and closes every port, then exits), waits up to `timeoutMs`
   * and kills it (SIGKILL) if it is still there. Resolves with its exit status.
   * Idempotent.
   */
  async close(timeoutMs = 5000): Promise<Deno.CommandStatus> {
    if (!this.#status && !this.#stdinClosed) {
      await this.#chain;
      try {
        await this.#stdin.write(new TextEncoder().encode("quit\n"));
      } catch { /* it exited meanwhile */ }
    }
    await this.#closeStdin();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((r) =>
      timer = setTimeout(() => r("timeout"), timeoutMs)
    );
    const r = await Promise.race([this.#done, timeout]);
    clearTimeout(timer);
    if (r === "timeout") return await this.kill();
    await this.#removeEalFiles();
    return this.#status!;
  }

  /** Kills testpmd (SIGKILL) and waits until it is gone. */
  async kill(): Promise<Deno.CommandStatus> {
    if (!this.#status) {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
    }
    await this.#closeStdin();
    await this.#done;
    await this.#removeEalFiles();
    return this.#status!;
  }

  /** The EAL file prefix (`--file-prefix`), or null when none was given. */
  get filePrefix(): string | null {
    for (let i = 0; i < this.argv.length; i++) {
      const a = this.argv[i];
      if (a === "--") break;
      if (a.startsWith("--file-prefix=")) return a.slice("--file-prefix=".length);
      if (a === "--file-prefix") return this.argv[i + 1] ?? null;
    }
    return null;
  }

  async #removeEalFiles(): Promise<void> {
    const prefix = this.filePrefix;
    if (!prefix || prefix.includes("/") || prefix === "rte") return; // never the default's
    await Deno.remove(`/var/run/dpdk/${prefix}`, { recursive: true }).catch(() => {});
    try {
      for await (const e of Deno.readDir("/dev/hugepages")) {
        if (e.name.startsWith(`${prefix}map_`)) {
          await Deno.remove(`/dev/hugepages/${e.name}`).catch(() => {});
        }
      }
    } catch { /* no hugetlbfs mounted there */ }
  }

  async #closeStdin(): Promise<void> {
    if (this.#stdinClosed) return;
    this.#stdinClosed = true;
    await this.#stdin.close().catch(() => {});
  }
}
