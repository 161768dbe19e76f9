import assert from "node:assert/strict";
import { parseTestpmdStats, testpmdCommand } from "../bed/testpmd.ts";

// What dpdk-testpmd 22.11 printed at its stop in the VM bed (2 ports, 2 queues each).
const STOP = `Telling cores to stop...
Waiting for lcores to finish...

  ------- Forward Stats for RX Port= 0/Queue= 0 -> TX Port= 1/Queue= 0 -------
  RX-packets: 1025           TX-packets: 1025           TX-dropped: 0             

  ------- Forward Stats for RX Port= 0/Queue= 1 -> TX Port= 1/Queue= 1 -------
  RX-packets: 1975           TX-packets: 1970           TX-dropped: 5             

  ---------------------- Forward statistics for port 0  ----------------------
  RX-packets: 3000           RX-dropped: 2             RX-total: 3002
  TX-packets: 0              TX-dropped: 0             TX-total: 0
  ----------------------------------------------------------------------------

  ---------------------- Forward statistics for port 1  ----------------------
  RX-packets: 0              RX-dropped: 0             RX-total: 0
  TX-packets: 2995           TX-dropped: 5             TX-total: 3000
  ----------------------------------------------------------------------------

  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++
  RX-packets: 3000           RX-dropped: 2             RX-total: 3002
  TX-packets: 2995           TX-dropped: 5             TX-total: 3000
`;

Deno.test("testpmd's forward statistics are read per port and per stream", () => {
  const s = parseTestpmdStats(STOP);
  assert.deepEqual(s.ports, [
    { port: 0, rxPackets: 3000, rxDropped: 2, txPackets: 0, txDropped: 0 },
    { port: 1, rxPackets: 0, rxDropped: 0, txPackets: 2995, txDropped: 5 },
  ]);
  assert.equal(s.streams.length, 2);
  assert.deepEqual(s.streams[1], {
    rxPort: 0,
    rxQueue: 1,
    txPort: 1,
    txQueue: 1,
    rxPackets: 1975,
    txPackets: 1970,
    txDropped: 5,
  });
});

Deno.test("a testpmd that printed no statistics is an error, not zero counts", () => {
  assert.throws(() => parseTestpmdStats("EAL: Error - exiting with code: 1\n"), /no forward/);
});

Deno.test("testpmd runs io forwarding with the asked queues on both ports", () => {
  const cmd = testpmdCommand({ ports: ["0000:00:04.0", "0000:00:05.0"], queues: 4 });
  for (const s of ["--forward-mode=io", "--rxq=4", "--txq=4", "-a '0000:00:05.0'"]) {
    assert.ok(cmd.includes(s), `${s} in ${cmd}`);
  }
  assert.throws(() => testpmdCommand({ ports: ["a", "b"], queues: 0 }), /queues/);
});
