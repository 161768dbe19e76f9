/**
 * Guest side of the bad-input tests: tries to open a port that must fail, and checks that
 * the failure left nothing behind in this process (file descriptors, VFIO or DMA
 * mappings) and did not change the function's driver binding.
 *
 *     deno run --allow-ffi tests/guest/bad_input.ts [--bind] PORT
 *
 * Prints one JSON line: the error code and message, and what leaked.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { exists, listDir, readLink, readText } from "../../ffi/fs.ts";
import { DriverError, openPort } from "../../mod.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: { bind: { type: "boolean", default: false } },
  allowPositionals: true,
});
const spec = positionals[0];

function openFds(): string[] {
  return listDir("/proc/self/fd").map((fd) => `${fd} -> ${readLink(`/proc/self/fd/${fd}`)}`);
}

function driverMaps(): string[] {
  return readText("/proc/self/maps", 1 << 22).split("\n")
    .filter((l) => l.includes("vfio") || l.includes("virtio-net-dma"));
}

function driverOf(s: string): string | null {
  const dev = `/sys/bus/pci/devices/${s}`;
  if (!exists(dev)) return null;
  const link = readLink(`${dev}/driver`);
  return link === null ? "none" : link.split("/").pop()!;
}

// Warm up what the runtime opens lazily, so the "before" snapshot is fair.
driverMaps();
const fdsBefore = openFds();
const driverBefore = driverOf(spec);
let code: string | null = null;
let message = "";
try {
  openPort(spec, { bind: values.bind }).close();
} catch (e) {
  if (!(e instanceof DriverError)) throw e;
  code = e.code;
  message = e.message;
}
const fdsAfter = openFds();
const leakedFds = fdsAfter.filter((f) => !fdsBefore.includes(f));
console.log(JSON.stringify({
  code,
  message,
  leakedFds,
  leakedMaps: driverMaps(),
  driverBefore,
  driverAfter: driverOf(spec),
}));
