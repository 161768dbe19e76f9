/**
 * What a process holds that a port could leak, read from /proc: open fds by kind, the
 * mappings a driver makes (DMA memfds, huge pages, VFIO BARs), resident memory, and the
 * memory VFIO pinned for the IOMMU (type1 accounts every pinned page in the process's
 * locked_vm, which /proc shows as VmLck: it goes back to 0 once the container is closed).
 *
 * Reads through libc (ffi/fs.ts), so a guest program with `--allow-ffi` only can use it.
 *
 * @module
 */

import { listDir, readLink, readText } from "../../ffi/fs.ts";

/** One reading of a process's resources (see {@linkcode readResources}). */
export interface Resources {
  /** Open file descriptors. */
  fds: number;
  /** fds on a memfd ("/memfd:…"): DMA memory. */
  memfds: number;
  /** fds on an eventfd: kick/call fds, interrupt eventfds. */
  eventfds: number;
  /** fds on /dev/vfio/* or a VFIO device (container, group, device). */
  vfioFds: number;
  /** fds on sockets: vfio-user and vhost-user connections. */
  sockets: number;
  /** Lines of /proc/PID/maps (V8 may add or drop some: reported, not compared exactly). */
  maps: number;
  /** Mappings a driver makes: memfds, huge pages, VFIO regions. */
  driverMaps: number;
  /** VmRSS in KiB (huge pages are not in it: see `hugetlbKiB`). */
  rssKiB: number;
  /** RSS parts in KiB: anonymous (heaps, stacks), file-backed, shared memory (memfds). */
  rssAnonKiB: number;
  rssFileKiB: number;
  rssShmemKiB: number;
  /** HugetlbPages in KiB: huge-page DMA memory mapped. */
  hugetlbKiB: number;
  /** VmLck in KiB: memory pinned for the IOMMU by VFIO type1. */
  lockedKiB: number;
  /** Each fd as "N -> target", for naming what leaked. */
  fdTargets: string[];
  /** The driver mappings' lines, for naming what leaked. */
  driverMapLines: string[];
}

const DRIVER_MAP = /memfd:|hugepages|vfio/;

/** Reads the resources of process `pid` (default this one). */
export function readResources(pid: number | "self" = "self"): Resources {
  const proc = `/proc/${pid}`;
  const fdTargets: string[] = [];
  for (const fd of listDir(`${proc}/fd`)) {
    const target = readLink(`${proc}/fd/${fd}`);
    if (target !== null) fdTargets.push(`${fd} -> ${target}`);
  }
  // listDir's own directory fd shows up in a reading of this process: leave it out.
  const own = pid === "self" || pid === Deno.pid;
  const targets = own ? fdTargets.filter((t) => !t.endsWith(`/proc/${Deno.pid}/fd`)) : fdTargets;
  const count = (re: RegExp) => targets.filter((t) => re.test(t)).length;
  const maps = readText(`${proc}/maps`, 1 << 24).split("\n").filter((l) => l !== "");
  const driverMapLines = maps.filter((l) => DRIVER_MAP.test(l));
  const status = readText(`${proc}/status`);
  const kib = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    return m ? Number(m[1]) : 0;
  };
  return {
    fds: targets.length,
    memfds: count(/-> \/memfd:/),
    eventfds: count(/-> anon_inode:\[eventfd\]/),
    vfioFds: count(/-> (\/dev\/vfio\/|anon_inode:\[?vfio)/),
    sockets: count(/-> socket:/),
    maps: maps.length,
    driverMaps: driverMapLines.length,
    rssKiB: kib("VmRSS"),
    rssAnonKiB: kib("RssAnon"),
    rssFileKiB: kib("RssFile"),
    rssShmemKiB: kib("RssShmem"),
    hugetlbKiB: kib("HugetlbPages"),
    lockedKiB: kib("VmLck"),
    fdTargets: targets,
    driverMapLines,
  };
}

/** The counts that must come back exactly after closing every port. */
export const EXACT_FIELDS = [
  "fds",
  "memfds",
  "eventfds",
  "vfioFds",
  "sockets",
  "driverMaps",
  "hugetlbKiB",
  "lockedKiB",
] as const;

/** What `after` holds that `before` did not: fds (by target) and driver mappings. */
export function leakedItems(before: Resources, after: Resources): string[] {
  const fdTarget = (t: string) => t.replace(/^\d+ -> /, "");
  const gone = new Map<string, number>();
  for (const t of before.fdTargets) gone.set(fdTarget(t), (gone.get(fdTarget(t)) ?? 0) + 1);
  const extra: string[] = [];
  for (const t of after.fdTargets) {
    const k = fdTarget(t), n = gone.get(k) ?? 0;
    if (n > 0) gone.set(k, n - 1);
    else extra.push(`fd ${t}`);
  }
  const mapsBefore = new Set(before.driverMapLines);
  for (const l of after.driverMapLines) if (!mapsBefore.has(l)) extra.push(`map ${l}`);
  return extra;
}

/** One line of figures: "fds 12 memfds 0 eventfds 2 … rss 51200 KiB". */
export function formatResources(r: Resources): string {
  return `fds ${r.fds} (memfd ${r.memfds}, eventfd ${r.eventfds}, vfio ${r.vfioFds}, socket ${r.sockets})` +
    ` maps ${r.maps} (driver ${r.driverMaps}) rss ${r.rssKiB} KiB (anon ${r.rssAnonKiB}, file ${r.rssFileKiB}, shmem ${r.rssShmemKiB})` +
    ` hugetlb ${r.hugetlbKiB} KiB` +
    ` locked ${r.lockedKiB} KiB`;
}
