/**
 * Opens a virtio-net port, prints what was negotiated and the device configuration, and
 * closes it again.
 *
 *     deno run --allow-ffi examples/port_info.ts [--bind] [--restore-driver] PORT
 *
 * PORT is a PCI address (kernel VFIO, e.g. 0000:00:04.0) or vfio-user:/path/to/socket.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DriverError, featureNames, formatMac, openPort } from "../mod.ts";

const USAGE = `usage: deno run --allow-ffi examples/port_info.ts [--bind] [--restore-driver] PORT

  PORT               a PCI address (0000:00:04.0) or vfio-user:/path/to/socket
  --bind             take the function from its kernel driver (bind it to vfio-pci)
  --restore-driver   give it back to its kernel driver when done
  --json             print one JSON object instead of text`;

function main(args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    options: {
      bind: { type: "boolean", default: false },
      "restore-driver": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    console.error(USAGE);
    return 2;
  }
  const port = openPort(positionals[0], {
    bind: values.bind,
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
      hugePages: port.hugePages,
    };
    if (values.json) {
      console.log(JSON.stringify(info));
    } else {
      console.log(`port        ${info.port}`);
      console.log(
        `mac         ${info.mac}   link ${info.linkUp ? "up" : "down"}   mtu ${info.mtu}`,
      );
      console.log(`max pairs   ${info.maxVirtqueuePairs}   queue size ${info.queueSize}`);
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
    if (e instanceof DriverError) {
      console.error(`error: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
