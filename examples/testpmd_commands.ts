/**
 * testpmd's interactive commands for examples/testpmd.ts: each line read from a terminal,
 * a command file or stdin is parsed here into one {@linkcode Command} and carried out on a
 * {@linkcode ConsoleTarget}. The words are DPDK testpmd's (`start`, `start tx_first`,
 * `stop`, `set fwd MODE`, `show port stats all`, `show port xstats all`, `clear port
 * stats all`, `quit`), so a DPDK user's fingers and scripts work. Nothing here touches a
 * device: the parser is pure, and the loop only calls the target.
 *
 * @module
 */

/** One parsed command line. */
export type Command =
  | { kind: "start"; txFirst: number }
  | { kind: "stop" }
  | { kind: "set-fwd"; mode: string }
  | { kind: "show-stats"; port: number | "all" }
  | { kind: "show-xstats"; port: number | "all" }
  | { kind: "clear-stats"; port: number | "all" }
  | { kind: "help" }
  | { kind: "quit" }
  | { kind: "none" }
  | { kind: "error"; message: string };

/** What the commands act on: the running application. */
export interface ConsoleTarget {
  /** Starts forwarding (with `txFirst` bursts sent first on each port, as testpmd). */
  start(txFirst: number): Promise<string>;
  /** Stops forwarding; returns what to print (testpmd prints the forward statistics). */
  stop(): Promise<string>;
  /** Changes the forwarding mode; returns what to print, or throws with a sentence. */
  setForwardMode(mode: string): Promise<string>;
  /** testpmd's "show port stats": the port's counters and the rates since the last show. */
  portStats(port: number | "all"): string;
  /** testpmd's "show port xstats": the port's extended statistics by DPDK's names. */
  portXstats(port: number | "all"): string;
  /** testpmd's "clear port stats": counting starts again from zero. */
  clearPortStats(port: number | "all"): string;
  /** Number of ports. */
  readonly ports: number;
}

/** The commands, as `help` prints them. */
export const COMMANDS_HELP = `commands (as DPDK testpmd's):
  start                      start forwarding
  start tx_first [N]         send N bursts (default 1) on each port first, then forward
  stop                       stop forwarding and show what was forwarded
  set fwd MODE               io, mac, macswap, 5tswap, rxonly, icmpecho, txonly, flowgen
  show port stats all|P      counters and throughput since the last show
  show port xstats all|P     extended statistics (DPDK's virtio names)
  clear port stats all|P     start counting from zero
  help                       this text
  quit                       stop and exit`;

/** A port argument: "all" or a port number below `ports`. */
function portArg(word: string | undefined, ports: number): number | "all" | string {
  if (word === undefined) return `give a port: all, or 0 to ${ports - 1}`;
  if (word === "all") return "all";
  const n = Number(word);
  if (!(/^\d+$/.test(word) && n < ports)) {
    return `there is no port ${word}: give all, or 0 to ${ports - 1}`;
  }
  return n;
}

/**
 * Parses one line into a {@linkcode Command}; `ports` bounds port numbers. Blank lines and
 * lines starting with `#` are `none`; anything else not understood is an `error` with one
 * sentence.
 *
 * @example
 * ```ts
 * import { parseCommand } from "./testpmd_commands.ts";
 * parseCommand("show port stats all", 2); // { kind: "show-stats", port: "all" }
 * parseCommand("set fwd macswap", 2); // { kind: "set-fwd", mode: "macswap" }
 * ```
 */
export function parseCommand(line: string, ports: number): Command {
  const w = line.trim().split(/\s+/).filter((x) => x !== "");
  if (w.length === 0 || w[0].startsWith("#")) return { kind: "none" };
  const bad = (message: string): Command => ({ kind: "error", message });
  const text = w.join(" ");
  switch (w[0]) {
    case "start": {
      if (w.length === 1) return { kind: "start", txFirst: 0 };
      if (w[1] !== "tx_first" || w.length > 3) {
        return bad(`'${text}' is not a command: use start or start tx_first [N]`);
      }
      if (w.length === 2) return { kind: "start", txFirst: 1 };
      const n = Number(w[2]);
      if (!(/^\d+$/.test(w[2]) && n >= 1 && n <= 1024)) {
        return bad(`start tx_first takes 1 to 1024 bursts, not '${w[2]}'`);
      }
      return { kind: "start", txFirst: n };
    }
    case "stop":
    case "help":
    case "quit":
      if (w.length !== 1) return bad(`'${w[0]}' takes no arguments`);
      return { kind: w[0] };
    case "exit":
      return w.length === 1 ? { kind: "quit" } : bad(`'exit' takes no arguments`);
    case "set":
      if (w[1] !== "fwd" || w.length !== 3) {
        return bad(`'${text}' is not a command: use set fwd MODE`);
      }
      return { kind: "set-fwd", mode: w[2] };
    case "show":
    case "clear": {
      const what = w[2];
      const ok = w[1] === "port" && (w.length === 3 || w.length === 4) &&
        (what === "stats" || (what === "xstats" && w[0] === "show"));
      if (!ok) {
        return bad(
          `'${text}' is not a command: use ${w[0]} port ${
            w[0] === "show" ? "stats|xstats" : "stats"
          } all|P`,
        );
      }
      const port = portArg(w[3], ports);
      if (typeof port === "string" && port !== "all") return bad(port);
      const p = port as number | "all";
      if (w[0] === "clear") return { kind: "clear-stats", port: p };
      return what === "stats" ? { kind: "show-stats", port: p } : { kind: "show-xstats", port: p };
    }
    default:
      return bad(`'${w[0]}' is not a command: type help for the list`);
  }
}

/**
 * Carries out one command on `target`; returns what to print, and whether to quit. A
 * target's refusal (a thrown Error) is printed as its message, and the session goes on.
 *
 * @example
 * ```ts ignore
 * const { output, quit } = await runCommand(parseCommand("stop", 2), target);
 * ```
 */
export async function runCommand(
  command: Command,
  target: ConsoleTarget,
): Promise<{ output: string; quit: boolean }> {
  try {
    switch (command.kind) {
      case "none":
        return { output: "", quit: false };
      case "error":
        return { output: `Bad command: ${command.message}.`, quit: false };
      case "help":
        return { output: COMMANDS_HELP, quit: false };
      case "quit":
        return { output: "", quit: true };
      case "start":
        return { output: await target.start(command.txFirst), quit: false };
      case "stop":
        return { output: await target.stop(), quit: false };
      case "set-fwd":
        return { output: await target.setForwardMode(command.mode), quit: false };
      case "show-stats":
        return { output: target.portStats(command.port), quit: false };
      case "show-xstats":
        return { output: target.portXstats(command.port), quit: false };
      case "clear-stats":
        return { output: target.clearPortStats(command.port), quit: false };
    }
  } catch (e) {
    return { output: e instanceof Error ? e.message : String(e), quit: false };
  }
}

/**
 * Reads commands line by line from `lines` and carries them out until `quit` or the end
 * of the input, writing each result with `write`; returns true when it ended at `quit`. `prompt` (testpmd's "testpmd> ") is
 * written before each line when the input is a terminal.
 *
 * @example
 * ```ts ignore
 * await commandLoop(linesOf(Deno.stdin.readable), target, print, Deno.stdin.isTerminal() ? "testpmd> " : "");
 * ```
 */
export async function commandLoop(
  lines: AsyncIterable<string>,
  target: ConsoleTarget,
  write: (text: string) => void,
  prompt = "",
): Promise<boolean> {
  if (prompt !== "") write(prompt);
  for await (const line of lines) {
    const { output, quit } = await runCommand(parseCommand(line, target.ports), target);
    if (output !== "") write(output.endsWith("\n") ? output : output + "\n");
    if (quit) return true;
    if (prompt !== "") write(prompt);
  }
  return false;
}

/**
 * Splits a byte stream into lines (without their line ends).
 *
 * @example
 * ```ts ignore
 * for await (const line of linesOf(Deno.stdin.readable)) console.log(line);
 * ```
 */
export async function* linesOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    rest += text;
    let i: number;
    while ((i = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, i).replace(/\r$/, "");
      rest = rest.slice(i + 1);
    }
  }
  if (rest !== "") yield rest;
}
