/**
 * Binding safety (src/pci/sysfs.ts, src/vfio/vfio_pci_device.ts) on a fake sysfs/procfs
 * tree in a temporary directory: what --bind and --restore-driver may unbind. The fake
 * function's address (0000:7f:1f.7) exists on no host we run on, so a path that missed
 * the fake root would fail with NO_DEVICE instead of touching a real function.
 */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import { SysfsPciFunction } from "../../src/pci/sysfs.ts";
import { VfioPciDevice } from "../../src/vfio/vfio_pci_device.ts";

const ADDR = "0000:7f:1f.7";

interface FakeFunction {
  /** Driver the function is bound to (null: none). */
  driver: string | null;
  /** Its network interface, under virtioN/net/ as virtio-net puts it (none: no interface). */
  iface?: { name: string; flags: string; operstate: string };
  /** Lines of /proc/net/route after the header. */
  routes?: string[];
  /** Lines of /proc/net/if_inet6. */
  inet6?: string[];
  /** Lines of /proc/net/ipv6_route. */
  ipv6Routes?: string[];
  /**
   * Interfaces above others (bridge, bond, VLAN), under sys/devices/virtual/net with a
   * sys/class/net link: `of` gets an `upper_NAME` link to it, and a `master` link too
   * when `master` is set (as the kernel makes them for bridge ports and bond members).
   */
  uppers?: { name: string; of: string; master?: boolean; flags: string; operstate: string }[];
}

/** Builds root/sys and root/proc for one virtio-net function; returns the root. */
function fakeTree(f: FakeFunction): string {
  const root = Deno.makeTempDirSync({ prefix: "bind_safety_" });
  const pci = `${root}/sys/bus/pci`;
  const dev = `${pci}/devices/${ADDR}`;
  Deno.mkdirSync(dev, { recursive: true });
  for (const d of ["virtio-pci", "vfio-pci"]) {
    Deno.mkdirSync(`${pci}/drivers/${d}`, { recursive: true });
    Deno.writeTextFileSync(`${pci}/drivers/${d}/unbind`, "");
  }
  Deno.writeTextFileSync(`${pci}/drivers_probe`, "");
  const attrs = {
    vendor: "0x1af4",
    device: "0x1041",
    subsystem_device: "0x1100",
    class: "0x020000",
  };
  for (const [k, v] of Object.entries(attrs)) Deno.writeTextFileSync(`${dev}/${k}`, `${v}\n`);
  Deno.writeTextFileSync(`${dev}/driver_override`, "");
  if (f.driver) Deno.symlinkSync(`${pci}/drivers/${f.driver}`, `${dev}/driver`);
  if (f.iface) {
    const n = `${dev}/virtio3/net/${f.iface.name}`;
    Deno.mkdirSync(n, { recursive: true });
    Deno.writeTextFileSync(`${n}/flags`, `${f.iface.flags}\n`);
    Deno.writeTextFileSync(`${n}/operstate`, `${f.iface.operstate}\n`);
  }
  for (const u of f.uppers ?? []) {
    const dir = `${root}/sys/devices/virtual/net/${u.name}`;
    Deno.mkdirSync(dir, { recursive: true });
    Deno.writeTextFileSync(`${dir}/flags`, `${u.flags}\n`);
    Deno.writeTextFileSync(`${dir}/operstate`, `${u.operstate}\n`);
    Deno.mkdirSync(`${root}/sys/class/net`, { recursive: true });
    Deno.symlinkSync(dir, `${root}/sys/class/net/${u.name}`);
    const lower = u.of === f.iface?.name
      ? `${dev}/virtio3/net/${u.of}`
      : `${root}/sys/devices/virtual/net/${u.of}`;
    Deno.symlinkSync(dir, `${lower}/upper_${u.name}`);
    if (u.master) Deno.symlinkSync(dir, `${lower}/master`);
  }
  Deno.mkdirSync(`${root}/proc/net`, { recursive: true });
  Deno.writeTextFileSync(
    `${root}/proc/net/route`,
    [
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT",
      ...(f.routes ?? []),
    ]
      .map((l) => `${l}\n`).join(""),
  );
  Deno.writeTextFileSync(
    `${root}/proc/net/if_inet6`,
    (f.inet6 ?? []).map((l) => `${l}\n`).join(""),
  );
  Deno.writeTextFileSync(
    `${root}/proc/net/ipv6_route`,
    (f.ipv6Routes ?? []).map((l) => `${l}\n`).join(""),
  );
  return root;
}

/** What the binding procedure wrote into the fake tree. */
function writes(root: string) {
  const pci = `${root}/sys/bus/pci`;
  return {
    driverOverride: Deno.readTextFileSync(`${pci}/devices/${ADDR}/driver_override`),
    virtioUnbind: Deno.readTextFileSync(`${pci}/drivers/virtio-pci/unbind`),
    vfioUnbind: Deno.readTextFileSync(`${pci}/drivers/vfio-pci/unbind`),
    driversProbe: Deno.readTextFileSync(`${pci}/drivers_probe`),
  };
}

const NOTHING_WRITTEN = { driverOverride: "", virtioUnbind: "", vfioUnbind: "", driversProbe: "" };

function withTree(f: FakeFunction, fn: (root: string) => void): void {
  const root = fakeTree(f);
  try {
    fn(root);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
}

Deno.test("a function already on vfio-pci is not unbound when opening it with restoreDriver fails", () => {
  // No iommu_group link: open fails after the binding step, before any VFIO fd is opened.
  withTree({ driver: "vfio-pci" }, (root) => {
    assert.throws(
      () =>
        VfioPciDevice.open({ domain: 0, bus: 0x7f, device: 0x1f, fn: 7 }, {
          restoreDriver: true,
          root,
        }),
      (e: unknown) => e instanceof DriverError && /no IOMMU group/.test(e.message),
    );
    assert.deepEqual(
      writes(root),
      NOTHING_WRITTEN,
      "another process may hold it: not ours to undo",
    );
  });
});

const PCI_ADDR = { domain: 0, bus: 0x7f, device: 0x1f, fn: 7 };
const ETH9_UP = { name: "eth9", flags: "0x1003", operstate: "up" };
const ETH9_ROUTES = [
  "eth9\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0",
  "eth9\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0",
];
const LINK_LOCAL_ONLY = {
  inet6: ["fe8000000000000000fc00fffe000001 04 40 20 80     eth9"],
  ipv6Routes: [
    "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth9",
    "ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000003 00000000 00000001     eth9",
  ],
};

/** What binding wrote once it went ahead (the fake kernel never rebinds, so it then fails). */
function assertBindWentAhead(root: string, open: () => unknown): void {
  assert.throws(
    open,
    (e: unknown) => e instanceof DriverError && /did not bind to vfio-pci/.test(e.message),
  );
  const w = writes(root);
  assert.equal(w.virtioUnbind, ADDR, "unbound from its driver");
  assert.equal(w.driversProbe, ADDR);
}

Deno.test("--bind refuses a function whose network interface is up with routes, naming the interface", () => {
  withTree({ driver: "virtio-pci", iface: ETH9_UP, routes: ETH9_ROUTES }, (root) => {
    assert.throws(() => VfioPciDevice.open(PCI_ADDR, { bind: true, root }), (e: unknown) => {
      assert.ok(e instanceof DriverError, `expected DriverError, got ${e}`);
      assert.match(e.message, /^0000:7f:1f\.7 carries eth9, a network interface of this host/);
      assert.match(e.message, /2 IPv4 routes/);
      assert.match(e.message, /--force/);
      assert.equal(e.message.split(/[.:] [A-Z]/).length, 1, "one sentence");
      return true;
    });
    assert.deepEqual(writes(root), NOTHING_WRITTEN, "nothing unbound");
  });
});

Deno.test("--bind refuses a function whose interface has an IPv6 address beyond link-local", () => {
  withTree({
    driver: "virtio-pci",
    iface: ETH9_UP,
    inet6: ["fd000000000000000000000000000002 04 40 00 82     eth9"],
  }, (root) => {
    assert.deepEqual(new SysfsPciFunction(ADDR, root).interfacesInUse(), [
      { name: "eth9", uses: "IPv6 address fd00:0000:0000:0000:0000:0000:0000:0002" },
    ]);
    assert.throws(
      () => VfioPciDevice.open(PCI_ADDR, { bind: true, root }),
      (e: unknown) => e instanceof DriverError && /carries eth9/.test(e.message),
    );
    assert.deepEqual(writes(root), NOTHING_WRITTEN);
  });
});

Deno.test("--bind with force takes a function even when its interface carries traffic", () => {
  withTree({ driver: "virtio-pci", iface: ETH9_UP, routes: ETH9_ROUTES }, (root) => {
    assertBindWentAhead(
      root,
      () => VfioPciDevice.open(PCI_ADDR, { bind: true, force: true, root }),
    );
  });
});

Deno.test("--bind takes a function whose interface is down, or up with only link-local IPv6", () => {
  const down = { name: "eth9", flags: "0x1002", operstate: "down" };
  withTree({ driver: "virtio-pci", iface: down, routes: ETH9_ROUTES }, (root) => {
    assert.deepEqual(new SysfsPciFunction(ADDR, root).interfacesInUse(), []);
    assertBindWentAhead(root, () => VfioPciDevice.open(PCI_ADDR, { bind: true, root }));
  });
  withTree({ driver: "virtio-pci", iface: ETH9_UP, ...LINK_LOCAL_ONLY }, (root) => {
    assert.deepEqual(new SysfsPciFunction(ADDR, root).netInterfaces(), ["eth9"]);
    assert.deepEqual(new SysfsPciFunction(ADDR, root).interfacesInUse(), []);
    assertBindWentAhead(root, () => VfioPciDevice.open(PCI_ADDR, { bind: true, root }));
  });
});

Deno.test("routes of another interface do not block --bind", () => {
  const other = ETH9_ROUTES.map((l) => l.replace("eth9", "eth0"));
  withTree({ driver: "virtio-pci", iface: ETH9_UP, routes: other }, (root) => {
    assertBindWentAhead(root, () => VfioPciDevice.open(PCI_ADDR, { bind: true, root }));
  });
});

Deno.test("a bind that fails half-way clears the driver_override it set", () => {
  // The fake kernel never rebinds. Left at "vfio-pci", driver_override would keep the
  // function's own driver from ever binding it again.
  withTree({ driver: "virtio-pci" }, (root) => {
    assert.throws(
      () => new SysfsPciFunction(ADDR, root).bindVfioPci(),
      (e: unknown) => e instanceof DriverError && /did not bind to vfio-pci/.test(e.message),
    );
    // sysfs attributes are written at offset 0 without truncation: the last write leads.
    assert.ok(writes(root).driverOverride.startsWith("\n"), "driver_override cleared again");
  });
});

const UP = { flags: "0x1003", operstate: "up" };
const routesOf = (name: string) => ETH9_ROUTES.map((l) => l.replace("eth9", name));

Deno.test("--bind refuses a bridge port whose bridge carries this host's traffic, naming the bridge", () => {
  withTree({
    driver: "virtio-pci",
    iface: ETH9_UP,
    ...LINK_LOCAL_ONLY,
    uppers: [{ name: "br0", of: "eth9", master: true, ...UP }],
    routes: routesOf("br0"),
  }, (root) => {
    assert.deepEqual(new SysfsPciFunction(ADDR, root).interfacesInUse(), [
      { name: "eth9", uses: "2 IPv4 routes", via: ["br0"] },
    ]);
    assert.throws(() => VfioPciDevice.open(PCI_ADDR, { bind: true, root }), (e: unknown) => {
      assert.ok(e instanceof DriverError, `expected DriverError, got ${e}`);
      assert.match(e.message, /^0000:7f:1f\.7 carries eth9, .*up under br0 \(its master or upper/);
      assert.match(e.message, /it is br0 that carries this host's traffic, up with 2 IPv4 routes/);
      assert.match(e.message, /--force/);
      assert.equal(e.message.split(/[.:] [A-Z]/).length, 1, "one sentence");
      return true;
    });
    assert.deepEqual(writes(root), NOTHING_WRITTEN, "nothing unbound");
  });
});

Deno.test("--bind refuses a function with a VLAN on it that carries this host's traffic", () => {
  withTree({
    driver: "virtio-pci",
    iface: ETH9_UP,
    uppers: [{ name: "eth9.100", of: "eth9", ...UP }],
    inet6: ["fd000000000000000000000000000002 05 40 00 82  eth9.100"],
  }, (root) => {
    assert.throws(
      () => VfioPciDevice.open(PCI_ADDR, { bind: true, root }),
      (e: unknown) =>
        e instanceof DriverError && /it is eth9\.100 that carries .* IPv6 address/.test(e.message),
    );
    assert.deepEqual(writes(root), NOTHING_WRITTEN);
  });
});

Deno.test("--bind refuses a bond member whose bond is a port of a bridge with traffic", () => {
  withTree({
    driver: "virtio-pci",
    iface: ETH9_UP,
    uppers: [
      { name: "bond0", of: "eth9", master: true, ...UP },
      { name: "br0", of: "bond0", master: true, ...UP },
    ],
    routes: routesOf("br0"),
  }, (root) => {
    assert.deepEqual(new SysfsPciFunction(ADDR, root).interfacesInUse(), [
      { name: "eth9", uses: "2 IPv4 routes", via: ["bond0", "br0"] },
    ]);
    assert.throws(
      () => VfioPciDevice.open(PCI_ADDR, { bind: true, root }),
      (e: unknown) =>
        e instanceof DriverError &&
        /up under bond0, itself under br0 .*it is br0 that/.test(e.message),
    );
    assert.deepEqual(writes(root), NOTHING_WRITTEN);
  });
});

Deno.test("--bind takes a bridge port whose bridge is down or carries nothing", () => {
  const down = { flags: "0x1002", operstate: "down" };
  withTree({
    driver: "virtio-pci",
    iface: ETH9_UP,
    uppers: [{ name: "br0", of: "eth9", master: true, ...down }],
    routes: routesOf("br0"),
  }, (root) => {
    assert.deepEqual(new SysfsPciFunction(ADDR, root).interfacesInUse(), []);
    assertBindWentAhead(root, () => VfioPciDevice.open(PCI_ADDR, { bind: true, root }));
  });
  withTree({
    driver: "virtio-pci",
    iface: ETH9_UP,
    uppers: [{ name: "br0", of: "eth9", master: true, ...UP }],
    routes: routesOf("eth0"),
  }, (root) => {
    assertBindWentAhead(root, () => VfioPciDevice.open(PCI_ADDR, { bind: true, root }));
  });
});
