/**
 * The Prometheus text formatter: HELP/TYPE lines, label escaping, names it refuses, ports'
 * extended statistics as families with port and queue labels (read back by a strict
 * parser), and the atomic file write.
 */

import assert from "node:assert/strict";
import { formatPrometheus, writeFileAtomic, xstatsFamilies } from "../../src/engine/prometheus.ts";
import { portXstats } from "../../src/engine/xstats.ts";
import { P_RX_PACKETS, P_RX_SIZE_BINS, PORT_SLOTS } from "../../src/net/queue_counters.ts";
import { parsePrometheus } from "../bed/prometheus_text.ts";

Deno.test("formatPrometheus: HELP and TYPE before the samples, labels in order, escaped", () => {
  const text = formatPrometheus([
    {
      name: "virtio_net_rx_good_packets",
      help: "Frames\\received\nhere.",
      type: "counter",
      samples: [
        { labels: { port: "0", name: 'a "quoted"\\name\n' }, value: 12 },
        { labels: {}, value: 2 ** 53 },
      ],
    },
    { name: "g", help: "x", type: "gauge", samples: [{ labels: {}, value: NaN }] },
  ]);
  assert.equal(
    text,
    "# HELP virtio_net_rx_good_packets Frames\\\\received\\nhere.\n" +
      "# TYPE virtio_net_rx_good_packets counter\n" +
      'virtio_net_rx_good_packets{port="0",name="a \\"quoted\\"\\\\name\\n"} 12\n' +
      "virtio_net_rx_good_packets 9007199254740992\n" +
      "# HELP g x\n# TYPE g gauge\ng NaN\n",
  );
  const back = parsePrometheus(text);
  assert.equal(back.samples[0].labels.name, 'a "quoted"\\name\n');
  assert.equal(back.help.get("virtio_net_rx_good_packets"), "Frames\\received\nhere.");
  assert.equal(formatPrometheus([]), "");
});

Deno.test("formatPrometheus refuses a metric or label name the format does not allow", () => {
  const fam = (name: string, label: string) => [{
    name,
    help: "h",
    type: "counter" as const,
    samples: [{ labels: { [label]: "v" }, value: 1 }],
  }];
  assert.throws(() => formatPrometheus(fam("rx-packets", "port")), /no Prometheus metric name/);
  assert.throws(() => formatPrometheus(fam("0rx", "port")), /no Prometheus metric name/);
  assert.throws(() => formatPrometheus(fam("rx", "po:rt")), /no Prometheus label name/);
});

Deno.test("xstatsFamilies: one family per statistic, every port and queue in it, same numbers", () => {
  const block = (packets: number) => {
    const c = new Float64Array(PORT_SLOTS);
    c[P_RX_PACKETS] = packets;
    c[P_RX_SIZE_BINS + 1] = packets; // all 64 bytes
    return { counters: c, base: 0 };
  };
  const ports = [
    { port: 0, name: "0000:00:04.0", xstats: portXstats([block(5), block(6)]) },
    { port: 1, name: "vhost-user:/tmp/b.sock", xstats: portXstats([block(7), block(8)]) },
  ];
  const fams = xstatsFamilies(ports);
  const good = fams.find((f) => f.name === "virtio_net_rx_good_packets")!;
  assert.deepEqual(good.samples.map((s) => [s.labels.port, s.labels.queue, s.value]), [
    ["0", "0", 5],
    ["0", "1", 6],
    ["1", "0", 7],
    ["1", "1", 8],
  ]);
  assert.equal(fams.length, new Set(fams.map((f) => f.name)).size, "no family twice");
  const back = parsePrometheus(formatPrometheus(fams));
  // Every xstat of every port comes back under its family with the same value.
  let n = 0;
  for (const p of ports) {
    for (const [stat, value] of Object.entries(p.xstats)) {
      const [, d, q, rest] = /^(rx|tx)_q(\d+)_(.+)$/.exec(stat)!;
      const s = back.samples.find((s) =>
        s.name === `virtio_net_${d}_${rest}` && s.labels.port === String(p.port) &&
        s.labels.queue === q
      );
      assert.ok(s, stat);
      assert.equal(s.value, value, stat);
      assert.equal(s.labels.name, p.name);
      assert.equal(back.type.get(s.name), "counter");
      n++;
    }
  }
  assert.equal(back.samples.length, n);
  assert.equal(
    back.help.get("virtio_net_rx_size_65_127_packets"),
    "Frames received of 65 to 127 bytes.",
  );
});

Deno.test("writeFileAtomic replaces the file whole and leaves no temporary file", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/virtio.prom`;
    writeFileAtomic(path, "a 1\n");
    writeFileAtomic(path, "b 2\n");
    assert.equal(Deno.readTextFileSync(path), "b 2\n");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["virtio.prom"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
