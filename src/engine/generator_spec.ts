/**
 * The engine's generating modes (txonly, flowgen) on the main thread: their options
 * checked (one sentence each, before anything is taken) and turned into what each worker
 * gets (worker_spec.ts GeneratorSpec). The generating itself is generator.ts.
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import type { VirtioNetPort } from "../net/port.ts";
import { shown } from "../shown.ts";
import type { EngineOptions } from "./engine_options.ts";
import { GEN_MAX_FLOWS, GEN_MIN_FRAME } from "./gen_frame.ts";
import type { GeneratorSpec } from "./worker_spec.ts";

/**
 * What the engine's generating modes send (EngineOptions.generator), as testpmd's
 * `--txpkts` and flowgen's flow count; checked by engine_options.ts.
 */
export interface GeneratorOptions {
  /** Bytes per frame, Ethernet header included, no FCS (64 to MTU + 14; default 64). */
  frameSize?: number;
  /** flowgen: flows per port, varying the UDP source port and IPv4 source (default 1). */
  flows?: number;
  /**
   * Frames per second over all workers and both ports (split evenly: a token bucket per
   * worker and port on the worker's clock); default: as fast as the rings take them.
   */
  ratePps?: number;
}

/** The largest frame any port takes: a 9216-byte MTU and the Ethernet header. */
const MAX_FRAME = 9216 + 14;
/** The highest rate the option takes (frames per second). */
const MAX_RATE_PPS = 1e9;

/**
 * True for the modes that generate (txonly, flowgen) rather than forward.
 *
 * @example
 * ```ts
 * import { isGeneratingMode } from "./generator_spec.ts";
 * isGeneratingMode("txonly"); // true
 * ```
 */
export function isGeneratingMode(mode: unknown): mode is "txonly" | "flowgen" {
  return mode === "txonly" || mode === "flowgen";
}

/**
 * Refuses a mode or generator options no run could take (types, ranges, combinations),
 * with one BAD_ARGUMENT sentence naming the option and the fix. The frame size against
 * the ports' MTU and buffers is checked by {@linkcode generatorSpec}.
 *
 * @example
 * ```ts
 * import { checkGeneratorOptions } from "./generator_spec.ts";
 * checkGeneratorOptions({ mode: "flowgen", generator: { frameSize: 128, flows: 64 } }); // fine
 * ```
 */
export function checkGeneratorOptions(options: EngineOptions): void {
  const bad = (m: string): never => {
    throw new DriverError("BAD_ARGUMENT", m);
  };
  const mode = options.mode; // a name engine_options.ts checked
  const g = options.generator;
  if (!isGeneratingMode(mode)) {
    if (g !== undefined) {
      bad(
        `The generator options apply to the modes txonly and flowgen: set mode to one or leave generator out.`,
      );
    }
    return;
  }
  if (options.script !== undefined) {
    bad(
      `A script runs on forwarded frames, not in the ${mode} mode: leave script out or use mode "io".`,
    );
  }
  if (options.capture !== undefined) {
    bad(`Capture is not offered in the ${mode} mode: leave capture out or use mode "io".`);
  }
  if (g === undefined) return;
  if (typeof g !== "object" || g === null || Array.isArray(g)) {
    bad(`The generator options are ${shown(g)}: give an object such as { frameSize: 64 }.`);
  }
  const fs = g.frameSize;
  if (fs !== undefined && !(Number.isInteger(fs) && fs >= GEN_MIN_FRAME && fs <= MAX_FRAME)) {
    bad(
      `A generated frame of ${
        shown(fs)
      } bytes is not possible: give ${GEN_MIN_FRAME} to ${MAX_FRAME} (the ports' MTU + 14).`,
    );
  }
  const flows = g.flows;
  if (flows !== undefined && !(Number.isInteger(flows) && flows >= 1 && flows <= GEN_MAX_FLOWS)) {
    bad(`${shown(flows)} flows is not possible: give 1 to ${GEN_MAX_FLOWS}.`);
  }
  if (mode === "txonly" && flows !== undefined && flows !== 1) {
    bad(`txonly sends one flow, not ${flows}: use mode "flowgen" for several.`);
  }
  const rate = g.ratePps;
  if (
    rate !== undefined &&
    !(typeof rate === "number" && Number.isFinite(rate) && rate > 0 && rate <= MAX_RATE_PPS)
  ) {
    bad(
      `A rate of ${
        shown(rate)
      } frames per second is not possible: give a number above 0 and at most ${MAX_RATE_PPS}, or leave ratePps out for no limit.`,
    );
  }
}

/**
 * What each of `queues` workers generates with `options` on `ports` (null in io mode):
 * the frame size checked against each port's MTU and buffers, the rate split evenly.
 *
 * @example
 * ```ts ignore
 * const spec = generatorSpec({ mode: "txonly", generator: { ratePps: 1e6 } }, ports, 2);
 * spec?.ratePps; // 500000 per worker
 * ```
 */
export function generatorSpec(
  options: EngineOptions,
  ports: readonly VirtioNetPort[],
  queues: number,
): GeneratorSpec | null {
  const mode = options.mode;
  if (!isGeneratingMode(mode)) return null;
  const g = options.generator ?? {};
  const frameSize = g.frameSize ?? GEN_MIN_FRAME;
  for (const p of ports) {
    if (frameSize > p.config.mtu + 14) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `A ${frameSize}-byte frame exceeds ${p.name}'s MTU of ${p.config.mtu} (+ 14 bytes of Ethernet header): give a frameSize of at most ${
          p.config.mtu + 14
        }.`,
      );
    }
    const room = p.pool.bufferSize - p.headerSize;
    if (Math.ceil(frameSize / 4) * 4 > room) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `A ${frameSize}-byte frame does not fit ${p.name}'s ${p.pool.bufferSize}-byte buffers (${room} bytes after the virtio-net header): give a smaller frameSize or a pool of larger buffers.`,
      );
    }
  }
  return {
    mode,
    frameSize,
    flows: mode === "flowgen" ? g.flows ?? 1 : 1,
    ratePps: g.ratePps === undefined ? 0 : g.ratePps / queues,
  };
}
