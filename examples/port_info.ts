/**
 * Opens a virtio-net port, prints what was negotiated and the device configuration, and
 * closes it again.
 *
 *     deno run --allow-ffi examples/port_info.ts [--bind [--force]] [--restore-driver] PORT
 *
 * PORT is a PCI address (kernel VFIO, e.g. 0000:00:04.0), vfio-user:/path/to/socket or
 * vhost-user:/path/to/socket. A bad command line is one sentence and exit 2, checked before
 * anything reaches libc or a device; a missing --allow-ffi or a device error exit 1.
 *
 * @module
 */

import { parseArgs } from "node:util";
// The library opens libc on first use: main() checks --allow-ffi before anything does.
import { DriverError, featureNames, formatMac, openPort, parsePortSpec } from "../mod.ts";
import { argumentError } from "./l2fwd_options.ts";

const USAGE =
  `usage: deno run --allow-ffi examples/port_info.ts [--bind [--force]] [--restore-driver] PORT

  PORT               a PCI address (0000:00:04.0), vfio-user:/path/to/socket or
                     vhost-user:/path/to/socket[?mac=02:00:00:00:00:01&queues=N]
  --bind             take the function from its kernel driver (bind it to vfio-pci)
  --force            with --bind: take it even if its network interface, or a bridge,
                     bond or VLAN above it, is up with addresses or routes (this host's
                     own network, perhaps)
  --restore-driver   give it back to its kernel driver when done
  --json             print one JSON object instead of text

exit status:
  0     printed
  1     a device or driver error, or no --allow-ffi (the environment, not usage)
  2     a bad command line: an unknown option, not one PORT, a malformed PORT, or
        --bind, --force or --restore-driver where they cannot act
  130   ended by SIGINT (as any program; the kernel closes the device and frees the memory)
  143   ended by SIGTERM (likewise)`;

/** The sentence for a run without --allow-ffi, or null when FFI is granted. */
function missingFfi(program: string, usage: string): string | null {
  if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") return null;
  return `${program} needs --allow-ffi (it reaches libc and VFIO through Deno FFI): run deno run --allow-ffi ${usage}.`;
}

/** What is wrong with a command line parseArgs took (one sentence), or null. */
function usageProblem(
  values: { bind: boolean; force: boolean; "restore-driver": boolean },
  positionals: string[],
): string | null {
  if (positionals.length !== 1) {
    return `port_info takes one PORT, not ${positionals.length}: see --help.`;
  }
  let kind: string;
  try {
    kind = parsePortSpec(positionals[0]).kind;
  } catch (e) {
    if (!(e instanceof DriverError)) throw e;
    return e.message;
  }
  if (values.force && !values.bind) {
    return "--force only matters with --bind: add --bind or leave --force out.";
  }
  const flag = (["bind", "force", "restore-driver"] as const).find((f) => values[f]);
  if (flag && kind !== "pci") {
    return `--${flag} acts on a PCI function (kernel VFIO) and ${
      positionals[0]
    } is none: leave it out.`;
  }
  return null;
}

function main(args: string[]): number {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        bind: { type: "boolean", default: false },
        force: { type: "boolean", default: false },
        "restore-driver": { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: true,
    });
  } catch (e) {
    console.error(`error: ${argumentError(e, args)}: see the usage below.\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  // Every argument is checked before anything reaches libc or a device.
  const problem = usageProblem(values, positionals);
  if (problem) {
    console.error(`error: ${problem}`);
    return 2;
  }
  const noFfi = missingFfi("port_info", `examples/port_info.ts ${args.join(" ")}`);
  if (noFfi) {
    console.error(`error: ${noFfi}`);
    return 1;
  }
  const port = openPort(positionals[0], {
    bind: values.bind,
    force: values.force,
    restoreDriver: values["restore-driver"],
  });
  try {
    const info = {
      port: port.name,
      offered: featureNames(port.deviceFeatures),
      negotiated: port.negotiatedFeatureNames(),
      mac: formatMac(port.config.mac),
      linkUp: port.config.linkUp,
      maxVirtqueuePairs: port.config.maxVirtqueuePairs,
      mtu: port.config.mtu,
      queueSize: port.rx().vq.size,
      ring: port.ringFormat,
      // A legacy device (§4.1.4.8): 32-bit features, fixed queue sizes, physical DMA.
      transport: port.transport.legacy ? "legacy" : "modern",
      hugePages: port.hugePages,
    };
    if (values.json) {
      console.log(JSON.stringify(info));
    } else {
      console.log(`port        ${info.port}`);
      console.log(
        `mac         ${info.mac}   link ${info.linkUp ? "up" : "down"}   mtu ${info.mtu}`,
      );
      console.log(
        `max pairs   ${info.maxVirtqueuePairs}   queue size ${info.queueSize}   ring ${info.ring}   transport ${info.transport}`,
      );
      console.log(`dma memory  ${info.hugePages ? "2 MiB huge pages" : "4 KiB pages"}`);
      console.log(`offered     ${info.offered.join(" ")}`);
      console.log(`negotiated  ${info.negotiated.join(" ")}`);
    }
  } finally {
    port.close();
  }
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(main(Deno.args));
  } catch (e) {
    // A DriverError is the user's to act on; anything else is a bug, still one line.
    console.error(
      e instanceof DriverError
        ? `error: ${e.message}`
        : `error: port_info failed unexpectedly (${e}): please report it.`,
    );
    Deno.exit(1);
  }
}
