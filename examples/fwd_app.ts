/**
 * What examples/l2fwd.ts and examples/testpmd.ts share: start-up with signal handling,
 * the ports and the engine, statistics, reconnection and an orderly release. Each
 * program brings its name, usage, command line and statistics table ({@linkcode App}).
 * l2fwd.ts's header documents the behaviour, the statistics and the exit statuses.
 *
 * @module
 */

// The library opens libc on first use, so importing it needs no permission: main() checks
// --allow-ffi before anything reaches libc.
import {
  addSessions,
  buildReport,
  createSharedPool,
  type DeviceFault,
  DriverError,
  endSession,
  type EngineMode,
  type EngineOptions,
  type EngineSnapshot,
  formatMac,
  formatPrometheus,
  ForwardingEngine,
  type GeneratorOptions,
  hasFeature,
  LiveView,
  type PrewarmedWorkers,
  samePortTarget,
  type StatsReport,
  VIRTIO_NET_F_STATUS,
  type VirtioNetPort,
  writeFileAtomic,
  xstatsFamilies,
} from "../mod.ts";
import { checkFiles, reason, type Run, UsageError } from "./l2fwd_options.ts";
import { closePorts, openPorts, reopenPorts } from "./l2fwd_ports.ts";
import { commandLoop, linesOf } from "./testpmd_commands.ts";
import { type ConsoleHost, testpmdConsole } from "./testpmd_console.ts";

/** A validated command line of an app: l2fwd's, and what testpmd adds to it. */
export interface AppRun extends Run {
  /** The engine's mode (l2fwd: "io", its --mac-rewrite aside). */
  mode: EngineMode;
  /** txonly/flowgen: what to generate (testpmd --txpkts, --flowgen-flows, --tx-rate). */
  generator?: GeneratorOptions;
  /** Commands from stdin, forwarding waiting for `start` (testpmd -i). */
  interactive?: boolean;
  /** Commands to run first (testpmd --cmdline-file). */
  cmdlineFile?: string;
  /** Bursts sent out of each port before forwarding, at each start (testpmd --tx-first). */
  txFirst?: number;
  /** Descriptors per receive queue (testpmd --rxd; default: the device's). */
  rxQueueSize?: number;
  /** Descriptors per transmit queue (testpmd --txd; default: the device's). */
  txQueueSize?: number;
  /** Seconds between statistics reports (0: only the summary at exit). */
  statsPeriodS: number;
}

/** What makes l2fwd l2fwd and testpmd testpmd: name, usage, command line, table. */
export interface App {
  /** The program's name in messages ("l2fwd"). */
  name: string;
  /** Its --help text. */
  usage: string;
  /** Parses its arguments (text only), throwing a UsageError or BAD_ADDRESS DriverError. */
  parse(args: string[]): AppRun | "help";
  /** A statistics report as a table (--stats table). */
  formatTable(r: StatsReport): string;
  /** Extended statistics of port `port` (or all) of `snap` (testpmd's show port xstats). */
  formatXstats?(snap: EngineSnapshot, port: number | "all"): string;
}

/** Set when closing a port failed (the exit status is then 1). */
let closeFailed = false;

/** Thrown at a start-up step when SIGINT/SIGTERM came: start-up ends and all is released. */
class StartupInterrupted extends Error {}

async function main(app: App, args: string[]): Promise<number> {
  let run: AppRun | "help";
  try {
    run = app.parse(args);
  } catch (e) {
    if (!(e instanceof DriverError)) throw e;
    const usage = e instanceof UsageError && e.withUsage ? `\n\n${app.usage}` : "";
    console.error(`error: ${e.message}${usage}`);
    return 2;
  }
  if (run === "help") {
    console.log(app.usage);
    return 0;
  }
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    console.error(
      `error: ${app.name} needs --allow-ffi (it reaches libc and VFIO through Deno FFI): run deno run --allow-ffi examples/${app.name}.ts ${
        args.join(" ")
      }.`,
    );
    return 1;
  }
  // The same socket under two names (a symlink, '..'): told apart by the file itself, so
  // only now that libc may be used.
  if (samePortTarget(run.ports[0], run.ports[1])) {
    console.error(
      `error: ${app.name} was given the same port twice (${run.ports[0]} and ${
        run.ports[1]
      } are one socket): give two different ports.`,
    );
    return 2;
  }

  // From here on a signal does not kill the process: it stops start-up at its next step,
  // or forwarding, and everything taken is released in order (reset before DMA memory).
  let signalled: Deno.Signal | null = null;
  let wake: (() => void) | null = null as (() => void) | null;
  const onSignal = (signal: Deno.Signal) => {
    if (signalled !== null) {
      // The user insists (a stop that hangs, e.g. on a stuck worker or device): exiting is
      // safe, as the kernel closes the fds and VFIO's IOMMU unmaps the DMA with the container.
      console.error(
        `error: a second signal (${signal}) arrived while ${app.name} was stopping, so it exits at once without releasing anything itself: the kernel closes its devices and frees its memory as the process ends.`,
      );
      Deno.exit(signal === "SIGINT" ? 130 : 143);
    }
    signalled = signal;
    wake?.();
  };
  const onSigint = () => onSignal("SIGINT");
  const onSigterm = () => onSignal("SIGTERM");
  Deno.addSignalListener("SIGINT", onSigint);
  Deno.addSignalListener("SIGTERM", onSigterm);
  /** Lets a pending signal's listener run (they run from the event loop), then acts on it. */
  const step = async () => {
    await new Promise((r) => setTimeout(r, 0));
    if (signalled) throw new StartupInterrupted();
  };
  let pcapCreated = false, forwarding = false;
  try {
    try {
      pcapCreated = await checkFiles(run);
    } catch (e) {
      if (!(e instanceof DriverError)) throw e;
      console.error(`error: ${e.message}`);
      // A --script-arg the script refuses is usage; a file that is not right, the machine.
      return e instanceof UsageError ? 2 : 1;
    }
    return await forward(app, run, {
      step,
      signalled: () => signalled,
      setWake: (fn) => wake = fn,
      forwarding: () => forwarding = true,
    });
  } catch (e) {
    if (!(e instanceof StartupInterrupted)) throw e;
    console.error(
      `error: ${signalled} arrived during start-up, so ${app.name} stopped before forwarding and released everything it had taken.`,
    );
    return signalled === "SIGINT" ? 130 : 143;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
    Deno.removeSignalListener("SIGTERM", onSigterm);
    // The capture file this run created is removed when forwarding never began.
    if (pcapCreated && !forwarding) {
      try {
        Deno.removeSync(run.pcap!);
      } catch { /* leaving an empty file behind is harmless */ }
    }
  }
}

/** How forward() learns of signals: main() installed the listeners before start-up. */
interface SignalHooks {
  /** A start-up step boundary: throws StartupInterrupted when a signal came. */
  step(): Promise<void>;
  /** The first signal that came, if any. */
  signalled(): Deno.Signal | null;
  /** What a signal calls once forwarding runs (null: nothing). */
  setWake(fn: (() => void) | null): void;
  /** Start-up is over: from now on a signal is a clean stop. */
  forwarding(): void;
}

/** Opens both ports, starts the engine, forwards until a stop, and releases everything. */
async function forward(app: App, run: AppRun, signals: SignalHooks): Promise<number> {
  const { queues, burst, steering, rebalanceMs, statsMode } = run;

  // Room for every ring of both ports, what the workers buffer, and slack to refill.
  const ring = (run.rxQueueSize ?? 256) + (run.txQueueSize ?? 256);
  const newPool = () =>
    createSharedPool(Math.max(8192, 2 * queues * (ring + 2 * burst) + 1024), 2048, {
      physical: run.physicalPool,
    });
  let pool = newPool();
  // Set when a port did not confirm its reset: its device may still use the pool.
  let poolUnsafe = false;
  const ports: VirtioNetPort[] = [];
  let engine: ForwardingEngine | null = null;
  let warm: PrewarmedWorkers | undefined;
  let started = false;
  try {
    await signals.step();
    // Workers warm their code on synthetic frames before any port is open, so the first
    // frames a back-end sends at link-up meet optimised code (docs/performance.md).
    const prewarmOptions = {
      burst,
      drainUs: run.drainUs,
      txFull: run.txFull,
      macRewrite: run.macRewrite,
      mode: run.mode,
      xstats: run.xstats,
      prewarmFrames: run.prewarm,
      prewarmFormats: run.packedRing ? ["split", "packed"] as const : ["split"] as const,
    };
    if (run.prewarm > 0) {
      warm = await ForwardingEngine.prewarm(queues, prewarmOptions);
      await signals.step();
    }
    await openPorts(run, pool, ports, signals.step);
    const failed: DriverError[] = [];
    /** Records an error of the control path; anything but a DriverError counts as TRANSPORT. */
    const noteFailure = (e: unknown) =>
      failed.push(e instanceof DriverError ? e : new DriverError("TRANSPORT", String(e)));
    let wake: (() => void) | null = null as (() => void) | null;
    const interactive = run.interactive === true || run.cmdlineFile !== undefined;
    let engineOptions: EngineOptions = {
      burst,
      drainUs: run.drainUs,
      idleUs: run.idleUs,
      macRewrite: run.macRewrite,
      mode: run.mode,
      xstats: run.xstats,
      generator: run.generator,
      // testpmd -i: forwarding waits for the command start; --cmdline-file runs first.
      halted: run.interactive === true || run.cmdlineFile !== undefined,
      txFirst: run.txFirst,
      txFull: run.txFull,
      warmupPackets: run.warmup,
      prewarmFrames: run.prewarm,
      heapAudit: run.heapAudit,
      script: run.script ? { path: run.script, args: run.scriptArgs } : undefined,
      capture: run.pcap
        ? { path: run.pcap, port: run.pcapPort, queue: run.pcapQueue, direction: run.pcapDirection }
        : undefined,
      onError: (e) => {
        failed.push(e);
        wake?.();
      },
    };
    const t0 = performance.now();
    /** An event line: JSON on stdout with --stats json, a sentence on stderr otherwise. */
    const event = (name: string, fields: Record<string, unknown>, text: string) => {
      const elapsedS = +((performance.now() - t0) / 1000).toFixed(3);
      if (statsMode === "json") console.log(JSON.stringify({ event: name, ...fields, elapsedS }));
      else console.error(`${text} at ${elapsedS.toFixed(1)} s`);
    };
    // Reading the link status is also how a port that went away (a vfio-user server that
    // died) is noticed: the first failure ends the run; later reports say "unknown".
    let linksFailed = false;
    const links = () =>
      ports.map((p) => {
        if (linksFailed || !hasFeature(p.features, VIRTIO_NET_F_STATUS)) return "unknown";
        try {
          return p.readConfig().linkUp ? "up" : "down";
        } catch (e) {
          linksFailed = true;
          noteFailure(e);
          wake?.();
          return "unknown";
        }
      });
    // A link that changes between two reads is reported at once, as an event line (json:
    // stdout, else stderr), not only in the next stats line; "unknown" is no change.
    const linksAtOpen = () =>
      ports.map((p) =>
        hasFeature(p.features, VIRTIO_NET_F_STATUS) ? (p.config.linkUp ? "up" : "down") : "unknown"
      );
    let seen = linksAtOpen();
    const linksNow = () => {
      const state = links();
      for (const [i, link] of state.entries()) {
        if (link === "unknown" || seen[i] === "unknown" || link === seen[i]) continue;
        event("link", { port: i, name: ports[i].name, link }, `port ${i}: link ${link}`);
      }
      seen = seen.map((s, i) => state[i] === "unknown" ? s : state[i]);
      return state;
    };
    // Counters of the sessions before a reconnect (docs/reliability.md), and the live ones.
    let carried: EngineSnapshot | null = null;
    const faults: DeviceFault[] = []; // reported in the stats from the first one on
    const current = () => addSessions(carried, engine!.snapshot());
    let last: EngineSnapshot | null = null, lastAt = t0;
    // --prometheus: the extended statistics, rewritten whole at each report (a reader sees
    // one complete file or the next); a failed write is said once and forwarding goes on.
    let promFailed = false;
    const writeProm = (snap: EngineSnapshot) => {
      if (run.prometheus === undefined || promFailed) return;
      try {
        writeFileAtomic(run.prometheus, formatPrometheus(xstatsFamilies(snap.ports)));
      } catch (e) {
        promFailed = true;
        console.error(
          `error: --prometheus ${run.prometheus} cannot be written (${
            reason(e)
          }): forwarding goes on without it.`,
        );
      }
    };
    const report = (event: "stats" | "summary", snap: EngineSnapshot, now: number) => {
      const r = buildReport(snap, event === "summary" ? null : last, {
        event,
        elapsedS: (now - t0) / 1000,
        intervalS: event === "summary" ? (now - t0) / 1000 : (now - lastAt) / 1000,
        links: linksNow(),
        scriptReport: engine!.scriptReport(),
        pcapWritten: run.pcap ? engine!.pcapWritten : undefined,
        faults,
        portInfo: ports.map((p) => ({ ring: p.ringFormat, features: p.negotiatedFeatureNames() })),
      });
      writeProm(snap);
      if (statsMode === "json" || (event === "summary" && statsMode === "off")) {
        console.log(JSON.stringify(r));
      } else if (statsMode === "live" && event === "stats" && !interactive) {
        Deno.stdout.writeSync(new TextEncoder().encode(live.render(r)));
      } else if (statsMode !== "off") {
        console.log(app.formatTable(r));
      }
      last = snap;
      lastAt = now;
    };

    const live = new LiveView(
      app.name,
      60,
      Deno.stdout.isTerminal() ? Deno.consoleSize().columns : 120,
    );
    // testpmd's set fwd (testpmd_console.ts): the options of the next session, and who waits.
    let restartWith = null as EngineOptions | null;
    let restarted = null as (() => void) | null;
    let consoleRuns = false, quitAsked = false, switched = false;
    let failedRestart = null as ((e: Error) => void) | null;
    let downSince = 0, fruitless = 0;
    for (let session = 0;; session++) {
      try {
        engine = await ForwardingEngine.start(ports, pool, { ...engineOptions, prewarmed: warm });
      } catch (e) {
        if (session === 0) throw e;
        noteFailure(e); // after a reconnect: the counters so far still get their summary
        report("summary", carried!, performance.now());
        break;
      }
      if (downSince) {
        const downMs = Math.round(performance.now() - downSince);
        event("reconnected", { downMs }, `reconnected, forwarding after ${downMs} ms`);
      }
      if (session === 0) {
        await signals.step();
        started = true;
        signals.forwarding();
      }
      for (const [i, p] of ports.entries()) {
        console.error(
          `port ${i}: ${p.name} mac ${formatMac(p.config.mac)} link ${
            p.config.linkUp ? "up" : "down"
          } queues ${queues} steering ${steering} ring ${p.ringFormat} features ${
            p.negotiatedFeatureNames().join(" ")
          }`,
        );
      }
      linksFailed = false;
      seen = linksAtOpen();
      if (switched) {
        restarted?.();
        restarted = failedRestart = null;
        switched = false;
      }
      if (interactive && !consoleRuns) {
        consoleRuns = true;
        runConsole(run, {
          ports: ports.length,
          options: () => engineOptions,
          snapshot: current,
          report: (snap, prev, intervalS) =>
            buildReport(snap, prev, {
              event: "stats",
              elapsedS: (performance.now() - t0) / 1000,
              intervalS,
              links: linksNow(),
              portInfo: ports.map((p) => ({
                ring: p.ringFormat,
                features: p.negotiatedFeatureNames(),
              })),
            }),
          formatTable: app.formatTable,
          formatXstats: (snap, port) => app.formatXstats?.(snap, port) ?? "xstats are not offered",
          halt: (on) => on ? engine!.halt() : engine!.resume(),
          txFirst: (bursts) => engine!.txFirst(bursts),
          halted: () => engine!.halted,
          restart: (options) =>
            new Promise<void>((resolve, reject) => {
              restartWith = options;
              restarted = resolve;
              failedRestart = reject;
              wake?.();
            }),
        }, (error) => {
          if (error) failed.push(new DriverError("BAD_ARGUMENT", error));
          quitAsked = true;
          wake?.();
        });
      }
      // Wait for the duration, a signal or a worker failure, reporting every second.
      await new Promise<void>((resolve) => {
        const finish = () => {
          clearInterval(ticker);
          clearInterval(rebalance);
          clearTimeout(ends);
          wake = null;
          signals.setWake(null);
          resolve();
        };
        let ticks = 0;
        const ticker = setInterval(() => {
          // A device that set DEVICE_NEEDS_RESET takes and completes nothing more: say so and
          // stop rather than forward into it (the frames in flight are lost with it).
          for (const p of ports) {
            try {
              p.checkHealthy();
            } catch (e) {
              linksFailed = true;
              noteFailure(e);
              finish();
              return;
            }
          }
          // Every statsPeriodS-th second (l2fwd: every second); link events in any case.
          const due = statsMode !== "off" && run.statsPeriodS > 0 &&
            ++ticks % run.statsPeriodS === 0;
          if (due) report("stats", current(), performance.now());
          else {
            linksNow(); // link events even without statistics
            writeProm(current());
          }
        }, 1000);
        // A new RSS table for every port every rebalanceMs, while the workers forward:
        // queue q's buckets move to q + 1 (docs/steering.md: no flow is reordered).
        let turn = 0;
        const rebalance = rebalanceMs > 0
          ? setInterval(() => {
            turn++;
            for (const p of ports) {
              const length = Math.min(128, p.steering.capabilities.rssMaxIndirectionTableLength);
              try {
                p.steering.set({
                  mode: "rss",
                  pairs: queues,
                  indirectionTable: Array.from({ length }, (_, i) => (i + turn) % queues),
                });
              } catch (e) {
                noteFailure(e);
                finish();
                return;
              }
            }
          }, rebalanceMs)
          : undefined;
        // main() checked that durationMs fits setTimeout (2^31-1 ms; more would fire at once).
        const ends = Number.isFinite(run.durationMs)
          ? setTimeout(finish, Math.max(0, run.durationMs - (performance.now() - t0)))
          : undefined;
        wake = finish;
        signals.setWake(finish);
        if (failed.length || signals.signalled() || quitAsked || restartWith) finish();
      });
      // --reconnect (docs/reliability.md): a device fault (DEVICE_NEEDS_RESET, a ring the
      // device corrupted, a server or back-end gone) resets and reopens both ports. The
      // workers then send nothing more: what they hold is lost to the reset and counted so.
      const fault = failed.length > 0 &&
        failed.every((e) => e.code === "DEVICE_MISBEHAVED" || e.code === "TRANSPORT");
      const atS = +((performance.now() - t0) / 1000).toFixed(3);
      if (fault) faults.push(...failed.map((e) => ({ atS, reason: e.message })));
      // set fwd (testpmd_console.ts): a new session in the new mode, the ports reopened.
      const switching = restartWith !== null && failed.length === 0 && !signals.signalled() &&
        !quitAsked;
      const reconnect = switching ||
        (fault && run.reconnectS > 0 && !signals.signalled() && fruitless < 5);
      const final = await engine.stop(undefined, { drain: switching || !reconnect });
      // A set fwd stop drained the workers: nothing was lost to the reset that follows.
      const ended = reconnect && !switching ? endSession(final) : final;
      const total = addSessions(carried, ended);
      if (final.unsafeToRelease) poolUnsafe = true; // a worker may still touch the pool
      if (!reconnect || final.unsafeToRelease) {
        report("summary", total, performance.now());
        break;
      }
      carried = total;
      let reopenBy = performance.now() + 30_000;
      if (switching) {
        engineOptions = restartWith!;
        restartWith = null;
        switched = true;
      } else {
        // Five reconnects in a row with nothing forwarded in between: give up.
        fruitless = final.ports.some((p) => p.rxPackets > 0) ? 0 : fruitless + 1;
        const lostFrames = ended.ports.reduce((n, p) => n + p.dropsReset, 0);
        const why = failed.splice(0).map((e) => e.message).join(" ");
        event("reconnecting", { reason: why, lostFrames }, `reconnecting (${why})`);
        downSince = performance.now();
        reopenBy = downSince + run.reconnectS * 1000;
      }
      const problems = closePorts(ports);
      if (problems.length) {
        poolUnsafe = true; // a device that did not confirm its reset may still use the pool
        failed.push(...problems.map((m: string) => new DriverError("DEVICE_MISBEHAVED", m)));
        report("summary", total, performance.now());
        break;
      }
      pool.region.free();
      pool = newPool();
      // The next workers warm while the devices are down, not while their rings fill.
      warm = run.prewarm > 0
        ? await ForwardingEngine.prewarm(queues, { ...prewarmOptions, mode: engineOptions.mode })
        : undefined;
      const deadline = Math.min(reopenBy, t0 + run.durationMs);
      try {
        await reopenPorts(run, pool, ports, deadline, () => signals.signalled() !== null);
      } catch (e) {
        if ((e as { closeProblem?: boolean }).closeProblem) poolUnsafe = true;
        // A signal while reconnecting is a stop like any other, not a failure.
        if (!signals.signalled()) noteFailure(e);
        report("summary", total, performance.now());
        break;
      }
      if (performance.now() - t0 >= run.durationMs || signals.signalled()) {
        report("summary", total, performance.now());
        break;
      }
    }
    failedRestart?.(new Error("the new mode could not start: see the error below"));
    if (rebalanceMs > 0) {
      console.error(
        `steering: ${ports.map((p, i) => `port ${i} ${p.steering.switches} switches`).join(", ")}`,
      );
    }
    for (const e of failed) console.error(`error: ${e.message}`);
    return failed.length ? 1 : 0;
  } catch (e) {
    // A step that fails while a signal waits (a blocked call returns with an error once
    // it gives up): the user asked to stop, so that is what is reported.
    if (!started && !(e instanceof StartupInterrupted)) {
      // A signal that came during a blocking call reaches its listener only after a few
      // turns of the event loop (one zero-delay timer was seen to be too few).
      for (let i = 0; i < 10 && !signals.signalled(); i++) {
        await new Promise((r) => setTimeout(r, 5));
      }
      if (signals.signalled()) throw new StartupInterrupted();
    }
    throw e;
  } finally {
    signals.setWake(null);
    if (engine) await engine.stop();
    warm?.terminate(); // unless the engine took them
    const problems = closePorts(ports);
    // Reported, not thrown: an error from try{} above must not be replaced by this one.
    for (const m of problems) console.error(`error: ${m}`);
    if (problems.length) closeFailed = true;
    // A port that did not confirm its reset may still DMA into the pool: keep it mapped until
    // the process exits rather than hand its pages back (docs/security.md).
    if (problems.length === 0 && !poolUnsafe) pool.region.free();
    else console.error(`error: the shared packet pool stays mapped until ${app.name} exits.`);
  }
}

/**
 * Runs `app` with `args` to its end and exits with its status (see l2fwd.ts's header):
 * everything a two-port forwarding program does around the engine.
 *
 * @example
 * ```ts ignore
 * await runApp(L2FWD, Deno.args); // never returns
 * ```
 */
export async function runApp(app: App, args: string[]): Promise<never> {
  try {
    const code = await main(app, args);
    Deno.exit(code === 0 && closeFailed ? 1 : code);
  } catch (e) {
    // A DriverError is the user's to act on; anything else is a bug, still one line.
    console.error(
      e instanceof DriverError
        ? `error: ${e.message}`
        : `error: ${app.name} failed unexpectedly (${reason(e)}): please report it.`,
    );
    Deno.exit(1);
  }
}

/**
 * testpmd's commands (testpmd_commands.ts): those of --cmdline-file first, then, with -i,
 * those on stdin (a prompt on a terminal) until quit or the input ends; `onQuit` ends the
 * run. Without -i the run goes on forwarding after the file.
 */
function runConsole(
  run: AppRun,
  host: ConsoleHost,
  onQuit: (error?: string) => void,
): void {
  const target = testpmdConsole(host);
  const encoder = new TextEncoder();
  const print = (t: string) => void Deno.stdout.writeSync(encoder.encode(t));
  (async () => {
    if (run.cmdlineFile !== undefined) {
      let text: string;
      try {
        text = await Deno.readTextFile(run.cmdlineFile);
      } catch (e) {
        return onQuit(
          `--cmdline-file ${run.cmdlineFile} cannot be read (${
            reason(e)
          }): give a readable file and --allow-read for it.`,
        );
      }
      if (await commandLoop(linesOf(new Blob([text]).stream()), target, print)) return onQuit();
      // Without -i, forwarding starts once the file has run (unless it started it).
      if (!run.interactive && host.halted()) host.halt(false);
    }
    if (!run.interactive) return;
    const prompt = Deno.stdin.isTerminal() ? "testpmd> " : "";
    await commandLoop(linesOf(Deno.stdin.readable), target, print, prompt);
    onQuit();
  })().catch((e) => onQuit(`the commands stopped: ${reason(e)}.`));
}
