/**
 * The VFIO uAPI encoding (ffi/vfio_uapi.ts) checked two ways:
 *
 * (a) against literal values copied from Linux's include/uapi/linux/vfio.h (v6.1, the
 *     version linux-libc-dev 6.1 installs as /usr/include/linux/vfio.h; the ioctl numbers
 *     and flags have not changed since they were introduced);
 * (b) against the C header itself: a small C program, compiled with `cc` at test time,
 *     prints every constant, sizeof() and offsetof() as JSON.
 */

import assert from "node:assert/strict";
import * as uapi from "../../ffi/vfio_uapi.ts";
import {
  argszBuffer,
  capabilityChain,
  decodeDeviceInfo,
  decodeIommuInfo,
  decodeIrqInfo,
  decodeRegionInfo,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeIrqInfoRequest,
  encodeIrqSetEventfds,
  encodeRegionInfoRequest,
  SIZEOF_DEVICE_INFO,
  SIZEOF_DMA_MAP,
  SIZEOF_DMA_UNMAP,
  SIZEOF_GROUP_STATUS,
  SIZEOF_IOMMU_TYPE1_INFO,
  SIZEOF_IRQ_INFO,
  SIZEOF_IRQ_SET,
  SIZEOF_REGION_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
} from "../../ffi/vfio_uapi.ts";

// ---------------------------------------------------------------------------------------
// (a) Literal values from include/uapi/linux/vfio.h (Linux v6.1).
//
//   #define VFIO_TYPE (';')            -> 0x3b
//   #define VFIO_BASE 100
//   #define VFIO_GET_API_VERSION _IO(VFIO_TYPE, VFIO_BASE + 0)   -> 0x3b64
//   ...                                                          ...
//   #define VFIO_IOMMU_UNMAP_DMA _IO(VFIO_TYPE, VFIO_BASE + 14)  -> 0x3b72
//
// _IO(type, nr) is ((type) << 8 | (nr)) with no size and no direction bits
// (include/uapi/asm-generic/ioctl.h: _IOC(_IOC_NONE, type, nr, 0)).
// ---------------------------------------------------------------------------------------

const HEADER_CONSTANTS: Record<string, number> = {
  VFIO_TYPE: 0x3b,
  VFIO_BASE: 100,
  VFIO_API_VERSION: 0,
  VFIO_TYPE1v2_IOMMU: 3,
  VFIO_GET_API_VERSION: 0x3b64,
  VFIO_CHECK_EXTENSION: 0x3b65,
  VFIO_SET_IOMMU: 0x3b66,
  VFIO_GROUP_GET_STATUS: 0x3b67,
  VFIO_GROUP_SET_CONTAINER: 0x3b68,
  VFIO_GROUP_UNSET_CONTAINER: 0x3b69,
  VFIO_GROUP_GET_DEVICE_FD: 0x3b6a,
  VFIO_DEVICE_GET_INFO: 0x3b6b,
  VFIO_DEVICE_GET_REGION_INFO: 0x3b6c,
  VFIO_DEVICE_GET_IRQ_INFO: 0x3b6d,
  VFIO_DEVICE_SET_IRQS: 0x3b6e,
  VFIO_DEVICE_RESET: 0x3b6f,
  VFIO_IOMMU_GET_INFO: 0x3b70,
  VFIO_IOMMU_MAP_DMA: 0x3b71,
  VFIO_IOMMU_UNMAP_DMA: 0x3b72,
  VFIO_GROUP_FLAGS_VIABLE: 1 << 0,
  VFIO_GROUP_FLAGS_CONTAINER_SET: 1 << 1,
  VFIO_DEVICE_FLAGS_RESET: 1 << 0,
  VFIO_DEVICE_FLAGS_PCI: 1 << 1,
  VFIO_REGION_INFO_FLAG_READ: 1 << 0,
  VFIO_REGION_INFO_FLAG_WRITE: 1 << 1,
  VFIO_REGION_INFO_FLAG_MMAP: 1 << 2,
  VFIO_REGION_INFO_FLAG_CAPS: 1 << 3,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP: 1,
  VFIO_IOMMU_INFO_PGSIZES: 1 << 0,
  VFIO_IOMMU_INFO_CAPS: 1 << 1,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: 1,
  VFIO_DMA_MAP_FLAG_READ: 1 << 0,
  VFIO_DMA_MAP_FLAG_WRITE: 1 << 1,
  VFIO_IRQ_INFO_EVENTFD: 1 << 0,
  VFIO_IRQ_INFO_MASKABLE: 1 << 1,
  VFIO_IRQ_INFO_AUTOMASKED: 1 << 2,
  VFIO_IRQ_INFO_NORESIZE: 1 << 3,
  VFIO_IRQ_SET_DATA_NONE: 1 << 0,
  VFIO_IRQ_SET_DATA_EVENTFD: 1 << 2,
  VFIO_IRQ_SET_ACTION_TRIGGER: 1 << 5,
  // enum { VFIO_PCI_BAR0_REGION_INDEX, ..., VFIO_PCI_ROM_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, ... }
  VFIO_PCI_BAR0_REGION_INDEX: 0,
  VFIO_PCI_ROM_REGION_INDEX: 6,
  VFIO_PCI_CONFIG_REGION_INDEX: 7,
  // enum { VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, ... }
  VFIO_PCI_INTX_IRQ_INDEX: 0,
  VFIO_PCI_MSI_IRQ_INDEX: 1,
  VFIO_PCI_MSIX_IRQ_INDEX: 2,
};

/** Every VFIO_* number the module exports, by name. */
function exportedVfioConstants(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(uapi)) {
    if (name.startsWith("VFIO_") && typeof value === "number") out[name] = value;
  }
  return out;
}

/**
 * struct layouts from vfio.h v6.1 (all fields __u32 / __u64 / __u16, natural alignment):
 * field -> byte offset, plus the struct's size.
 */
const HEADER_LAYOUTS: Record<string, { size: number; fields: Record<string, number> }> = {
  vfio_info_cap_header: { size: 8, fields: { id: 0, version: 2, next: 4 } },
  vfio_group_status: { size: 8, fields: { argsz: 0, flags: 4 } },
  vfio_device_info: {
    size: 20,
    fields: { argsz: 0, flags: 4, num_regions: 8, num_irqs: 12, cap_offset: 16 },
  },
  vfio_region_info: {
    size: 32,
    fields: { argsz: 0, flags: 4, index: 8, cap_offset: 12, size: 16, offset: 24 },
  },
  vfio_region_sparse_mmap_area: { size: 16, fields: { offset: 0, size: 8 } },
  vfio_region_info_cap_sparse_mmap: {
    size: 16,
    fields: { header: 0, nr_areas: 8, reserved: 12, areas: 16 },
  },
  vfio_irq_info: { size: 16, fields: { argsz: 0, flags: 4, index: 8, count: 12 } },
  vfio_irq_set: {
    size: 20,
    fields: { argsz: 0, flags: 4, index: 8, start: 12, count: 16, data: 20 },
  },
  vfio_iommu_type1_info: {
    size: 24, // 20 bytes of fields + 4 of tail padding (u64 alignment)
    fields: { argsz: 0, flags: 4, iova_pgsizes: 8, cap_offset: 16 },
  },
  vfio_iova_range: { size: 16, fields: { start: 0, end: 8 } },
  vfio_iommu_type1_info_cap_iova_range: {
    size: 16,
    fields: { header: 0, nr_iovas: 8, reserved: 12, iova_ranges: 16 },
  },
  vfio_iommu_type1_dma_map: {
    size: 32,
    fields: { argsz: 0, flags: 4, vaddr: 8, iova: 16, size: 24 },
  },
  vfio_iommu_type1_dma_unmap: {
    size: 24,
    fields: { argsz: 0, flags: 4, iova: 8, size: 16, data: 24 },
  },
};

/** The TS size constant that stands for each struct. */
const TS_SIZES: Record<string, number> = {
  vfio_group_status: SIZEOF_GROUP_STATUS,
  vfio_device_info: SIZEOF_DEVICE_INFO,
  vfio_region_info: SIZEOF_REGION_INFO,
  vfio_irq_info: SIZEOF_IRQ_INFO,
  vfio_irq_set: SIZEOF_IRQ_SET,
  vfio_iommu_type1_info: SIZEOF_IOMMU_TYPE1_INFO,
  vfio_iommu_type1_dma_map: SIZEOF_DMA_MAP,
  vfio_iommu_type1_dma_unmap: SIZEOF_DMA_UNMAP,
};

type Offsets = Record<string, Record<string, number>>;

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Checks every encoder and decoder against a table of field offsets (C's or the literal one). */
function checkCodecsAgainst(off: Offsets, sizeOf: Record<string, number>): void {
  // encodeDmaMap
  {
    const vaddr = 0x7f12_3456_7000n, iova = 0x1_0020_0000n, size = 0x20_0000n;
    const b = encodeDmaMap(vaddr, iova, size);
    const s = off.vfio_iommu_type1_dma_map;
    assert.equal(b.length, sizeOf.vfio_iommu_type1_dma_map);
    const v = dv(b);
    assert.equal(v.getUint32(s.argsz, true), sizeOf.vfio_iommu_type1_dma_map);
    assert.equal(
      v.getUint32(s.flags, true),
      uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE,
    );
    assert.equal(v.getBigUint64(s.vaddr, true), vaddr);
    assert.equal(v.getBigUint64(s.iova, true), iova);
    assert.equal(v.getBigUint64(s.size, true), size);
  }
  // encodeDmaUnmap
  {
    const iova = 0x2_0000_0000n, size = 0x40_0000n;
    const b = encodeDmaUnmap(iova, size);
    const s = off.vfio_iommu_type1_dma_unmap;
    assert.equal(b.length, sizeOf.vfio_iommu_type1_dma_unmap);
    const v = dv(b);
    assert.equal(v.getUint32(s.argsz, true), sizeOf.vfio_iommu_type1_dma_unmap);
    assert.equal(v.getUint32(s.flags, true), 0);
    assert.equal(v.getBigUint64(s.iova, true), iova);
    assert.equal(v.getBigUint64(s.size, true), size);
  }
  // encodeIrqSetEventfds with and without fds
  {
    const s = off.vfio_irq_set;
    const b = encodeIrqSetEventfds(uapi.VFIO_PCI_MSIX_IRQ_INDEX, 1, [7, 8, 9]);
    assert.equal(b.length, sizeOf.vfio_irq_set + 3 * 4);
    const v = dv(b);
    assert.equal(v.getUint32(s.argsz, true), b.length);
    assert.equal(
      v.getUint32(s.flags, true),
      uapi.VFIO_IRQ_SET_DATA_EVENTFD | uapi.VFIO_IRQ_SET_ACTION_TRIGGER,
    );
    assert.equal(v.getUint32(s.index, true), uapi.VFIO_PCI_MSIX_IRQ_INDEX);
    assert.equal(v.getUint32(s.start, true), 1);
    assert.equal(v.getUint32(s.count, true), 3);
    assert.deepEqual([0, 1, 2].map((i) => v.getInt32(s.data + 4 * i, true)), [7, 8, 9]);

    const none = encodeIrqSetEventfds(uapi.VFIO_PCI_MSIX_IRQ_INDEX, 0, []);
    const w = dv(none);
    assert.equal(none.length, sizeOf.vfio_irq_set);
    assert.equal(
      w.getUint32(s.flags, true),
      uapi.VFIO_IRQ_SET_DATA_NONE | uapi.VFIO_IRQ_SET_ACTION_TRIGGER,
    );
    assert.equal(w.getUint32(s.count, true), 0);
  }
  // encodeIrqSetEventfds: -1 (de-assign one vector) is written as a signed s32
  {
    const s = off.vfio_irq_set;
    const b = encodeIrqSetEventfds(uapi.VFIO_PCI_MSIX_IRQ_INDEX, 3, [-1]);
    assert.equal(dv(b).getInt32(s.data, true), -1);
    assert.equal(dv(b).getUint32(s.start, true), 3);
  }
  // encodeIrqInfoRequest / decodeIrqInfo
  {
    const s = off.vfio_irq_info;
    const b = encodeIrqInfoRequest(uapi.VFIO_PCI_MSIX_IRQ_INDEX);
    assert.equal(b.length, sizeOf.vfio_irq_info);
    const v = dv(b);
    assert.equal(v.getUint32(s.argsz, true), sizeOf.vfio_irq_info);
    assert.equal(v.getUint32(s.flags, true), 0);
    assert.equal(v.getUint32(s.index, true), uapi.VFIO_PCI_MSIX_IRQ_INDEX);
    assert.equal(v.getUint32(s.count, true), 0);
    // What the kernel answers for a virtio-net-pci with vectors=4.
    v.setUint32(s.flags, uapi.VFIO_IRQ_INFO_EVENTFD | uapi.VFIO_IRQ_INFO_NORESIZE, true);
    v.setUint32(s.count, 4, true);
    assert.deepEqual(decodeIrqInfo(b), { flags: 9, index: 2, count: 4 });
  }
  // encodeRegionInfoRequest
  {
    const s = off.vfio_region_info;
    const b = encodeRegionInfoRequest(uapi.VFIO_PCI_CONFIG_REGION_INDEX);
    assert.equal(b.length, sizeOf.vfio_region_info);
    assert.equal(dv(b).getUint32(s.argsz, true), sizeOf.vfio_region_info);
    assert.equal(dv(b).getUint32(s.index, true), uapi.VFIO_PCI_CONFIG_REGION_INDEX);
    const big = encodeRegionInfoRequest(4, 200);
    assert.equal(big.length, 200);
    assert.equal(dv(big).getUint32(s.argsz, true), 200);
    assert.equal(dv(big).getUint32(s.index, true), 4);
  }
  // argszBuffer (group status)
  {
    const b = argszBuffer(sizeOf.vfio_group_status);
    assert.equal(dv(b).getUint32(off.vfio_group_status.argsz, true), sizeOf.vfio_group_status);
  }
  // decodeDeviceInfo
  {
    const s = off.vfio_device_info;
    const b = new Uint8Array(Math.max(sizeOf.vfio_device_info, SIZEOF_DEVICE_INFO));
    const v = dv(b);
    v.setUint32(s.argsz, b.length, true);
    v.setUint32(s.flags, uapi.VFIO_DEVICE_FLAGS_PCI | uapi.VFIO_DEVICE_FLAGS_RESET, true);
    v.setUint32(s.num_regions, 9, true);
    v.setUint32(s.num_irqs, 5, true);
    assert.deepEqual(decodeDeviceInfo(b), { flags: 3, numRegions: 9, numIrqs: 5 });
  }
  // decodeRegionInfo (fixed part)
  {
    const s = off.vfio_region_info;
    const b = new Uint8Array(sizeOf.vfio_region_info);
    const v = dv(b);
    v.setUint32(s.argsz, b.length, true);
    v.setUint32(s.flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, true);
    v.setUint32(s.index, 4, true);
    v.setBigUint64(s.size, 0x4000n, true);
    v.setBigUint64(s.offset, 0x40000000000n, true);
    assert.deepEqual(decodeRegionInfo(b), {
      argsz: b.length,
      flags: 3,
      index: 4,
      size: 0x4000,
      offset: 0x40000000000n,
    });
  }
  // decodeIommuInfo with an IOVA-range capability right after the fixed struct
  {
    const s = off.vfio_iommu_type1_info;
    const c = off.vfio_iommu_type1_info_cap_iova_range;
    const r = off.vfio_iova_range;
    const h = off.vfio_info_cap_header;
    const capAt = sizeOf.vfio_iommu_type1_info;
    const total = capAt + sizeOf.vfio_iommu_type1_info_cap_iova_range +
      2 * sizeOf.vfio_iova_range;
    const b = new Uint8Array(total);
    const v = dv(b);
    v.setUint32(s.argsz, total, true);
    v.setUint32(s.flags, VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS, true);
    v.setBigUint64(s.iova_pgsizes, 0x40201000n, true);
    v.setUint32(s.cap_offset, capAt, true);
    v.setUint16(capAt + h.id, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, true);
    v.setUint16(capAt + h.version, 1, true);
    v.setUint32(capAt + h.next, 0, true);
    v.setUint32(capAt + c.nr_iovas, 2, true);
    const ranges = [[0n, 0xfedf_ffffn], [0xfef0_0000n, 0x7f_ffff_ffffn]];
    ranges.forEach(([start, end], i) => {
      const at = capAt + c.iova_ranges + i * sizeOf.vfio_iova_range;
      v.setBigUint64(at + r.start, start, true);
      v.setBigUint64(at + r.end, end, true);
    });
    assert.deepEqual(decodeIommuInfo(b), {
      argsz: total,
      flags: 3,
      iovaPgsizes: 0x40201000n,
      iovaRanges: ranges.map(([start, end]) => ({ start, end })),
    });
  }
}

const LITERAL_OFFSETS: Offsets = Object.fromEntries(
  Object.entries(HEADER_LAYOUTS).map(([k, v]) => [k, v.fields]),
);
const LITERAL_SIZES: Record<string, number> = Object.fromEntries(
  Object.entries(HEADER_LAYOUTS).map(([k, v]) => [k, v.size]),
);

Deno.test("every exported VFIO_* constant equals the value in linux/vfio.h", () => {
  const exported = exportedVfioConstants();
  // Nothing exported is left unchecked, and nothing checked is missing.
  assert.deepEqual(Object.keys(exported).sort(), Object.keys(HEADER_CONSTANTS).sort());
  for (const [name, value] of Object.entries(HEADER_CONSTANTS)) {
    assert.equal(exported[name], value, `${name}`);
  }
});

Deno.test("vfioIo(n) is _IO(';', 100 + n): no size and no direction bits", () => {
  for (let n = 0; n <= 20; n++) {
    const nr = uapi.vfioIo(n);
    assert.equal(nr >> 8, 0x3b);
    assert.equal(nr & 0xff, 100 + n);
    assert.equal(nr >>> 16, 0, "size and direction fields are zero");
  }
  assert.equal(uapi.vfioIo(0).toString(16), "3b64");
});

Deno.test("every SIZEOF_* constant equals the struct size in linux/vfio.h", () => {
  for (const [struct, size] of Object.entries(TS_SIZES)) {
    assert.equal(size, HEADER_LAYOUTS[struct].size, struct);
  }
});

Deno.test("encoders and decoders put every field at its vfio.h offset", () => {
  checkCodecsAgainst(LITERAL_OFFSETS, LITERAL_SIZES);
});

// ---------------------------------------------------------------------------------------
// (b) The C header, compiled.
// ---------------------------------------------------------------------------------------

const VFIO_H = "/usr/include/linux/vfio.h";

function findInPath(cmd: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      const st = Deno.statSync(`${dir}/${cmd}`);
      if (st.isFile && (st.mode ?? 0o111) & 0o111) return `${dir}/${cmd}`;
    } catch {
      // not here
    }
  }
  return null;
}

function fileExists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const CC = findInPath("cc");
const HAVE_C = CC !== null && fileExists(VFIO_H);
const C_IGNORE_REASON = CC === null
  ? "SKIPPED: no `cc` in PATH"
  : `SKIPPED: ${VFIO_H} is missing (install linux-libc-dev)`;

/** Names the test suffixes with, so an ignored run says why. */
function cName(what: string): string {
  return HAVE_C ? what : `${what} [${C_IGNORE_REASON}]`;
}

interface CFacts {
  constants: Record<string, number>;
  sizeof: Record<string, number>;
  offsetof: Offsets;
}

let cFacts: Promise<CFacts> | null = null;

/** Compiles and runs the probe program once; every (b) test shares its output. */
function compileProbe(): Promise<CFacts> {
  cFacts ??= (async () => {
    const lines: string[] = [
      "#include <stdio.h>",
      "#include <stddef.h>",
      "#include <linux/vfio.h>",
      "int main(void) {",
      '  printf("{\\"constants\\":{");',
    ];
    const names = Object.keys(exportedVfioConstants());
    names.forEach((n, i) => {
      lines.push(
        `  printf("%s\\"${n}\\":%lld", ${i ? '","' : '""'}, (long long)(${n}));`,
      );
    });
    lines.push('  printf("},\\"sizeof\\":{");');
    const structs = Object.keys(HEADER_LAYOUTS);
    structs.forEach((s, i) => {
      lines.push(
        `  printf("%s\\"${s}\\":%zu", ${i ? '","' : '""'}, sizeof(struct ${s}));`,
      );
    });
    lines.push('  printf("},\\"offsetof\\":{");');
    structs.forEach((s, i) => {
      lines.push(`  printf("%s\\"${s}\\":{", ${i ? '","' : '""'});`);
      Object.keys(HEADER_LAYOUTS[s].fields).forEach((f, j) => {
        lines.push(
          `  printf("%s\\"${f}\\":%zu", ${j ? '","' : '""'}, offsetof(struct ${s}, ${f}));`,
        );
      });
      lines.push('  printf("}");');
    });
    lines.push('  printf("}}\\n");', "  return 0;", "}");

    const dir = await Deno.makeTempDir({ prefix: "vfio_uapi_probe_" });
    try {
      await Deno.writeTextFile(`${dir}/probe.c`, lines.join("\n") + "\n");
      const build = await new Deno.Command(CC!, {
        args: ["-std=c11", "-Wall", "-o", `${dir}/probe`, `${dir}/probe.c`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(
        build.code,
        0,
        `cc failed:\n${new TextDecoder().decode(build.stderr)}`,
      );
      const run = await new Deno.Command(`${dir}/probe`, { stdout: "piped" }).output();
      assert.equal(run.code, 0);
      return JSON.parse(new TextDecoder().decode(run.stdout)) as CFacts;
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  })();
  return cFacts;
}

Deno.test({
  name: cName("every exported VFIO_* constant equals the C header's value (compiled with cc)"),
  ignore: !HAVE_C,
  async fn() {
    const c = await compileProbe();
    const exported = exportedVfioConstants();
    for (const [name, value] of Object.entries(exported)) {
      assert.equal(value, c.constants[name], `${name}: TS ${value}, C ${c.constants[name]}`);
    }
    // The literal table above agrees with the installed header too.
    for (const [name, value] of Object.entries(HEADER_CONSTANTS)) {
      assert.equal(c.constants[name], value, `literal ${name}`);
    }
  },
});

Deno.test({
  name: cName("struct sizes and field offsets match sizeof/offsetof from the C header"),
  ignore: !HAVE_C,
  async fn() {
    const c = await compileProbe();
    for (const [struct, layout] of Object.entries(HEADER_LAYOUTS)) {
      for (const [field, at] of Object.entries(layout.fields)) {
        assert.equal(c.offsetof[struct][field], at, `offsetof(struct ${struct}, ${field})`);
      }
    }
    for (const [struct, size] of Object.entries(TS_SIZES)) {
      if (struct === "vfio_device_info") {
        // Linux ≥ 6.2 appends `__u32 pad;` (sizeof 24); the kernel only needs
        // offsetofend(num_irqs) and the TS size covers up to and including cap_offset.
        const end = c.offsetof[struct].cap_offset + 4;
        assert.equal(size, end, "SIZEOF_DEVICE_INFO covers up to cap_offset");
        assert.ok(c.sizeof[struct] === end || c.sizeof[struct] === end + 4);
        continue;
      }
      assert.equal(size, c.sizeof[struct], `sizeof(struct ${struct})`);
    }
    for (const [struct, layout] of Object.entries(HEADER_LAYOUTS)) {
      if (struct === "vfio_device_info") continue;
      assert.equal(c.sizeof[struct], layout.size, `literal sizeof(struct ${struct})`);
    }
  },
});

Deno.test({
  name: cName("encoders write and decoders read every field at the C header's offsetof()"),
  ignore: !HAVE_C,
  async fn() {
    const c = await compileProbe();
    checkCodecsAgainst(c.offsetof, c.sizeof);
  },
});

// ---------------------------------------------------------------------------------------
// Capability chains.
// ---------------------------------------------------------------------------------------

/** Writes a vfio_info_cap_header. */
function capHeader(v: DataView, at: number, id: number, version: number, next: number): void {
  v.setUint16(at, id, true);
  v.setUint16(at + 2, version, true);
  v.setUint32(at + 4, next, true);
}

/**
 * A region info as vfio-pci returns it for a BAR with an MSI-X table: a region-type
 * capability (id 2, 16 bytes) first, then the sparse-mmap capability with two areas.
 */
function regionInfoWithCaps(): { bytes: Uint8Array; areas: { offset: number; size: number }[] } {
  const typeCapAt = 32, sparseAt = 48;
  const areas = [{ offset: 0, size: 0x3000 }, { offset: 0x4000, size: 0x1_0000_0000 }];
  const total = sparseAt + 16 + 16 * areas.length;
  const b = new Uint8Array(total);
  const v = dv(b);
  v.setUint32(0, total, true);
  v.setUint32(
    4,
    VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP |
      VFIO_REGION_INFO_FLAG_CAPS,
    true,
  );
  v.setUint32(8, 4, true);
  v.setUint32(12, typeCapAt, true);
  v.setBigUint64(16, 0x1_0000_4000n, true);
  v.setBigUint64(24, 0x40000000000n, true);
  capHeader(v, typeCapAt, 2, 1, sparseAt); // VFIO_REGION_INFO_CAP_TYPE
  v.setUint32(typeCapAt + 8, 1, true);
  v.setUint32(typeCapAt + 12, 1, true);
  capHeader(v, sparseAt, VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, 0);
  v.setUint32(sparseAt + 8, areas.length, true);
  areas.forEach((a, i) => {
    v.setBigUint64(sparseAt + 16 + 16 * i, BigInt(a.offset), true);
    v.setBigUint64(sparseAt + 24 + 16 * i, BigInt(a.size), true);
  });
  return { bytes: b, areas };
}

Deno.test("decodeRegionInfo() finds the sparse-mmap areas behind another capability", () => {
  const { bytes, areas } = regionInfoWithCaps();
  const info = decodeRegionInfo(bytes);
  assert.equal(info.index, 4);
  assert.equal(info.size, 0x1_0000_4000);
  assert.equal(info.offset, 0x40000000000n);
  assert.equal(info.argsz, bytes.length);
  assert.deepEqual(info.sparseAreas, areas);
});

Deno.test("capabilityChain() lists each capability's id, version and offset in chain order", () => {
  const { bytes } = regionInfoWithCaps();
  assert.deepEqual(capabilityChain(bytes, 32), [
    { id: 2, version: 1, offset: 32 },
    { id: VFIO_REGION_INFO_CAP_SPARSE_MMAP, version: 1, offset: 48 },
  ]);
  assert.deepEqual(capabilityChain(bytes, 0), []);
});

Deno.test("decodeRegionInfo() ignores the chain when the kernel asks for a larger argsz", () => {
  // First call with the plain struct: the kernel sets argsz to what it needs and the
  // caps flag, but the buffer does not hold the chain yet.
  const { bytes } = regionInfoWithCaps();
  const head = bytes.slice(0, 32);
  const info = decodeRegionInfo(head);
  assert.equal(info.argsz, bytes.length);
  assert.equal(info.sparseAreas, undefined);
});

Deno.test("decodeRegionInfo() leaves sparseAreas undefined without the caps flag", () => {
  const { bytes } = regionInfoWithCaps();
  const v = dv(bytes);
  v.setUint32(4, v.getUint32(4, true) & ~VFIO_REGION_INFO_FLAG_CAPS, true);
  assert.equal(decodeRegionInfo(bytes).sparseAreas, undefined);
});

Deno.test("decodeRegionInfo() rejects a sparse-mmap capability with more areas than bytes", () => {
  const { bytes } = regionInfoWithCaps();
  dv(bytes).setUint32(48 + 8, 3, true); // claims 3 areas, holds 2
  assert.throws(() => decodeRegionInfo(bytes), RangeError);
});

Deno.test("capabilityChain() rejects a loop instead of spinning", () => {
  const b = new Uint8Array(64);
  const v = dv(b);
  capHeader(v, 16, 1, 1, 32);
  capHeader(v, 32, 2, 1, 16); // back to the first
  assert.throws(() => capabilityChain(b, 16), /malformed at offset 16/);
  const self = new Uint8Array(64);
  capHeader(dv(self), 24, 1, 1, 24);
  assert.throws(() => capabilityChain(self, 24), RangeError);
});

Deno.test("capabilityChain() rejects a next pointer past the end of the buffer", () => {
  const b = new Uint8Array(64);
  capHeader(dv(b), 16, 1, 1, 60); // a header at 60 would need bytes 60..67
  assert.throws(() => capabilityChain(b, 16), /malformed at offset 60/);
});

Deno.test("decodeIommuInfo() leaves iovaRanges undefined when the kernel reports none", () => {
  const b = argszBuffer(SIZEOF_IOMMU_TYPE1_INFO);
  dv(b).setUint32(4, VFIO_IOMMU_INFO_PGSIZES, true);
  dv(b).setBigUint64(8, 0x1000n, true);
  assert.deepEqual(decodeIommuInfo(b), {
    argsz: SIZEOF_IOMMU_TYPE1_INFO,
    flags: VFIO_IOMMU_INFO_PGSIZES,
    iovaPgsizes: 0x1000n,
  });
});
