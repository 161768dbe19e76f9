/** PCI addresses and port names (src/pci/address.ts, src/port_name.ts). */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import { formatPciAddress, parsePciAddress } from "../../src/pci/address.ts";
import { canonicalPortName, parsePortSpec } from "../../src/port_name.ts";

function assertBadAddress(text: string, why?: RegExp): void {
  assert.throws(() => parsePciAddress(text), (e: unknown) => {
    assert.ok(e instanceof DriverError, `${text}: expected DriverError, got ${e}`);
    assert.equal(e.code, "BAD_ADDRESS");
    assert.ok(e.message.includes(`'${text}'`), "the message quotes the input");
    assert.match(e.message, /0000:00:04\.0/, "the message shows the expected form");
    if (why) assert.match(e.message, why);
    return true;
  });
}

Deno.test("parsePciAddress() reads domain:bus:device.function in hexadecimal", () => {
  assert.deepEqual(parsePciAddress("0000:00:04.0"), { domain: 0, bus: 0, device: 4, fn: 0 });
  assert.deepEqual(parsePciAddress("abcd:ef:1f.7"), {
    domain: 0xabcd,
    bus: 0xef,
    device: 0x1f,
    fn: 7,
  });
  assert.deepEqual(parsePciAddress("ABCD:EF:1F.7"), parsePciAddress("abcd:ef:1f.7"));
  assert.deepEqual(parsePciAddress("ffff:ff:00.3"), {
    domain: 0xffff,
    bus: 0xff,
    device: 0,
    fn: 3,
  });
});

Deno.test("parsePciAddress() takes domain 0 when only bus:device.function is given", () => {
  assert.deepEqual(parsePciAddress("00:04.0"), { domain: 0, bus: 0, device: 4, fn: 0 });
  assert.deepEqual(parsePciAddress("3:1.2"), { domain: 0, bus: 3, device: 1, fn: 2 });
});

Deno.test("parsePciAddress() ignores surrounding whitespace (as sysfs files end in a newline)", () => {
  assert.deepEqual(parsePciAddress("  0000:00:04.0\n"), { domain: 0, bus: 0, device: 4, fn: 0 });
});

Deno.test("parsePciAddress() rejects a device number above 0x1f", () => {
  assertBadAddress("0000:00:20.0", /device 20 is above 1f/);
  assertBadAddress("00:ff.0", /above 1f/);
});

Deno.test("parsePciAddress() rejects malformed text with BAD_ADDRESS", () => {
  for (
    const text of [
      "",
      "0000:00:04",
      "0000:00:04.8", // function is 0-7
      "0000:00:04.a",
      "00000:00:04.0", // domain has at most 4 digits
      "0000:100:04.0", // bus has at most 2 digits
      "0000:00:004.0",
      "0000-00-04.0",
      "zz:00.0",
      "0000:00:04.0.1",
      "pci:0000:00:04.0",
    ]
  ) {
    assertBadAddress(text);
  }
});

Deno.test("formatPciAddress() gives the canonical zero-padded lower-case sysfs form", () => {
  assert.equal(formatPciAddress({ domain: 0, bus: 0, device: 4, fn: 0 }), "0000:00:04.0");
  assert.equal(
    formatPciAddress({ domain: 0xabcd, bus: 0xef, device: 0x1f, fn: 7 }),
    "abcd:ef:1f.7",
  );
  for (const text of ["0000:00:04.0", "0001:3a:00.1", "ffff:ff:1f.7"]) {
    assert.equal(formatPciAddress(parsePciAddress(text)), text, "round trip");
  }
  assert.equal(formatPciAddress(parsePciAddress("3A:1.2")), "0000:3a:01.2");
});

Deno.test("parsePortSpec() turns a PCI address into a pci port with its canonical name", () => {
  assert.deepEqual(parsePortSpec("00:04.0"), {
    kind: "pci",
    address: { domain: 0, bus: 0, device: 4, fn: 0 },
    name: "0000:00:04.0",
  });
});

Deno.test("parsePortSpec() reads vfio-user:/absolute/socket", () => {
  assert.deepEqual(parsePortSpec("vfio-user:/run/net0.sock"), {
    kind: "vfio-user",
    socketPath: "/run/net0.sock",
    name: "vfio-user:/run/net0.sock",
  });
});

Deno.test("parsePortSpec() rejects a vfio-user spec without an absolute path", () => {
  for (const text of ["vfio-user:", "vfio-user:net0.sock", "vfio-user:./x"]) {
    assert.throws(
      () => parsePortSpec(text),
      (e: unknown) => e instanceof DriverError && e.code === "BAD_ADDRESS",
      text,
    );
  }
  assert.throws(() => parsePortSpec("eth0"), DriverError);
});

Deno.test("two spellings of one port give the same canonical name", () => {
  for (
    const [a, b] of [
      ["00:03.0", "0000:00:03.0"],
      ["0000:3A:01.2", "3a:1.2"],
      [" 0000:00:04.0", "0000:00:04.0"],
      ["vfio-user://run/./net0.sock", "vfio-user:/run/net0.sock"],
      ["vfio-user:/run/net0.sock/", "vfio-user:/run/net0.sock"],
    ]
  ) {
    assert.equal(canonicalPortName(a), canonicalPortName(b), `${a} and ${b}`);
  }
  assert.deepEqual(parsePortSpec("vfio-user:/run//net0.sock"), {
    kind: "vfio-user",
    socketPath: "/run/net0.sock",
    name: "vfio-user:/run/net0.sock",
  });
  assert.notEqual(canonicalPortName("0000:00:04.0"), canonicalPortName("0001:00:04.0"));
});

Deno.test("'..' and '.' components fold in a vfio-user port's canonical name", () => {
  for (
    const [a, b] of [
      ["vfio-user:/run/a/../net0.sock", "vfio-user:/run/net0.sock"],
      ["vfio-user:/run/a/b/../../net0.sock", "vfio-user:/run/./net0.sock"],
      ["vfio-user:/../run/net0.sock", "vfio-user:/run/net0.sock"],
    ]
  ) {
    assert.equal(canonicalPortName(a), canonicalPortName(b), `${a} and ${b}`);
  }
  assert.notEqual(
    canonicalPortName("vfio-user:/run/a/../net0.sock"),
    canonicalPortName("vfio-user:/run/a/net0.sock"),
  );
  // The port still connects where the kernel resolves the path given (after a symbolic
  // link, `..` is not the directory before it).
  assert.deepEqual(parsePortSpec("vfio-user:/run/a/../net0.sock"), {
    kind: "vfio-user",
    socketPath: "/run/a/../net0.sock",
    name: "vfio-user:/run/net0.sock",
  });
});
