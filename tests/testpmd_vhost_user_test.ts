/**
 * examples/testpmd.ts in a real terminal (a tmux pane: keys sent with `send-keys`, the
 * screen read with `capture-pane`) against DPDK's vhost-user back-end (testpmd forwarding
 * its two vhost ports to each other, io with retry): the interactive session waits for
 * `start`; txonly generates 128-byte frames and measures their latency with no outside
 * generator, and what it counts matches the back-end's own counters; `show port stats`,
 * `show port xstats` (DPDK's names) and `clear port stats` say what testpmd's do; `set fwd`
 * is refused while forwarding and, once stopped, restarts the ports in the new mode;
 * `start tx_first` sets io forwarding going where plain `start` moves nothing; `quit` exits
 * 0. Then l2fwd's live view on the same terminal redraws in place.
 *
 * Needs root (huge pages), tmux and the DPDK packages of tools/setup.sh.
 * Run: `flock /tmp/vd-bed.lock deno test --allow-all --no-check tests/testpmd_vhost_user_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { VhostUserBed } from "./bed/vhost_user_bed.ts";
import { shellQuote } from "./bed/vm.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const isRoot = Deno.uid() === 0;
const hasTmux = (() => {
  try {
    return new Deno.Command("tmux", { args: ["-V"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A tmux session running one command in a 200 × 80 pane. */
class Pane {
  readonly name = `vdtp-${Deno.pid}-${Math.floor(Math.random() * 1e6)}`;

  constructor(command: string) {
    // The shell stays for a minute after the command, so its exit status can be read.
    this.#tmux(
      "new-session",
      "-d",
      "-s",
      this.name,
      "-x",
      "200",
      "-y",
      "80",
      `${command}; echo EXIT=$?; sleep 60`,
    );
  }

  #tmux(...args: string[]): string {
    const r = new Deno.Command("tmux", { args, stdout: "piped", stderr: "piped" }).outputSync();
    if (!r.success) {
      throw new Error(`tmux ${args[0]}: ${new TextDecoder().decode(r.stderr).trim()}`);
    }
    return new TextDecoder().decode(r.stdout);
  }

  /** The screen and its scroll-back, without the blank lines below the cursor. */
  text(): string {
    return this.#tmux("capture-pane", "-p", "-J", "-t", this.name, "-S", "-5000").trimEnd();
  }

  /** Types `line` and Enter. */
  type(line: string): void {
    this.#tmux("send-keys", "-t", this.name, "-l", line);
    this.#tmux("send-keys", "-t", this.name, "Enter");
  }

  /** Waits until the pane's text after `from` characters matches `re`; returns that part. */
  async waitFor(re: RegExp, from: number, timeoutMs: number, what: string): Promise<string> {
    const until = performance.now() + timeoutMs;
    for (;;) {
      const t = this.text().slice(from);
      if (re.test(t)) return t;
      if (performance.now() > until) {
        throw new Error(`${what}: not seen in ${timeoutMs} ms; the pane shows:\n${this.text()}`);
      }
      await sleep(100);
    }
  }

  /** Types a command and waits for its answer and the next prompt; returns the answer. */
  async command(line: string, timeoutMs = 10_000): Promise<string> {
    const from = this.text().length;
    this.type(line);
    const t = await this.waitFor(/\ntestpmd>$/, from, timeoutMs, `the answer to '${line}'`);
    return t.slice(t.indexOf("\n") + 1, t.lastIndexOf("testpmd>"));
  }

  close(): void {
    try {
      this.#tmux("kill-session", "-t", this.name);
    } catch { /* already gone */ }
  }
}

/** A number after `label:` in `text` (the first, or the one in the block of port `port`). */
function field(text: string, label: string, port?: number): number {
  const block = port === undefined ? text : text.split(/statistics for port /)[port + 1] ?? "";
  const m = new RegExp(`${label}:\\s*(\\d+)`).exec(block);
  assert.ok(m, `no ${label} in:\n${block}`);
  return Number(m[1]);
}

Deno.test({
  name:
    "testpmd.ts -i in a terminal: txonly measured against the back-end's counters, stats, xstats, clear, set fwd, quit; l2fwd's live view",
  ignore: !isRoot || !hasTmux,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using bed = await VhostUserBed.start({ vhostPorts: 2 });
    const ports = [0, 1].map((i) => `vhost-user:${bed.socket(i)}?queues=1`);
    const testpmd = [
      Deno.execPath(),
      "run",
      "--allow-ffi",
      `${ROOT}/examples/testpmd.ts`,
      "-i",
      "--forward-mode=txonly",
      "--txpkts=128",
      "--tx-rate=20000",
      ...ports,
    ].map(shellQuote).join(" ");
    const pane = new Pane(testpmd);
    try {
      await pane.waitFor(/testpmd>$/, 0, 60_000, "testpmd's first prompt");
      await bed.startForwarding();

      // -i: nothing is generated before start.
      await sleep(500);
      const before = await pane.command("show port stats all");
      for (const p of [0, 1]) {
        assert.equal(field(before, "TX-packets", p), 0, `port ${p} sent before start`);
      }

      assert.match(await pane.command("start"), /txonly packet forwarding started/);
      assert.match(await pane.command("set fwd macswap"), /Please stop forwarding first/);
      await sleep(2000);
      const stop = await pane.command("stop");
      assert.match(stop, /Accumulated forward statistics for all ports/);
      const sent = field(stop.split("Accumulated")[1], "TX-packets");
      const got = field(stop.split("Accumulated")[1], "RX-packets");
      assert.ok(sent > 0, "txonly sent nothing");
      // What we sent, the back-end received; what it sent us, we received, or it still
      // waits in our receive rings (halted, they are not polled: at most a ring each).
      await sleep(500);
      const back = await bed.stats();
      const backRx = back[0].rxPackets + back[1].rxPackets;
      const backTx = back[0].txPackets + back[1].txPackets;
      assert.equal(backRx, sent, "the back-end received what testpmd.ts says it sent");
      assert.ok(got <= backTx && backTx - got <= 2 * 1024, `received ${got} of ${backTx}`);
      const gen = JSON.parse(/generator: (\{.*\})/.exec(stop)![1]);
      assert.equal(gen.txFrames, sent);
      assert.ok(gen.latency.count > 0, "no latency measured");
      const l = gen.latency;
      assert.ok(
        l.minUs <= l.p50Us && l.p50Us <= l.p99Us && l.p99Us <= l.p999Us && l.p999Us <= l.maxUs,
      );
      console.log(
        `txonly 128 B at 20,000/s asked: sent ${sent}, received ${got}; latency p50 ${l.p50Us} µs, p99 ${l.p99Us} µs, p99.9 ${l.p999Us} µs (reported, not asserted)`,
      );

      // xstats by DPDK's names: every frame 128 bytes (no FCS), so all in one bin.
      const x = await pane.command("show port xstats all");
      let good = 0;
      for (const p of [0, 1]) {
        const block = x.split(`extended statistics for port ${p}`)[1] ?? "";
        const n = field(block, "tx_q0_good_packets");
        assert.equal(field(block, "tx_q0_size_128_255_packets"), n, `port ${p}'s size bins`);
        assert.equal(field(block, "tx_q0_good_bytes"), 128 * n, `port ${p}'s bytes`);
        good += n;
      }
      assert.equal(good, sent, "xstats count what was sent");

      assert.match(await pane.command("clear port stats all"), /cleared/);
      const cleared = await pane.command("show port stats all");
      for (const p of [0, 1]) {
        assert.equal(field(cleared, "RX-packets", p), 0);
        assert.equal(field(cleared, "TX-packets", p), 0);
      }

      assert.match(await pane.command("set fwd bogus"), /bogus is not a forwarding mode/);
      assert.match(
        await pane.command("set fwd macswap", 60_000),
        /Set macswap packet forwarding mode/,
      );
      assert.match(await pane.command("start"), /macswap packet forwarding started/);
      // The back-end puts a burst on each port; each frame then goes round and round.
      await bed.command("stop");
      await bed.command("start tx_first 1");
      await sleep(1000);
      const looping = await pane.command("show port stats all");
      for (const p of [0, 1]) assert.ok(field(looping, "RX-packets", p) > 0, `port ${p}`);
      await pane.command("stop");

      // start tx_first: our own bursts set traffic going where nothing else would. In io
      // mode, with a back-end that forwards but injects nothing, plain start sees no frame.
      assert.match(await pane.command("set fwd io", 60_000), /Set io packet forwarding mode/);
      await bed.command("stop");
      await bed.command("start");
      assert.match(await pane.command("clear port stats all"), /cleared/);
      assert.match(await pane.command("start"), /io packet forwarding started/);
      await sleep(1000);
      await pane.command("stop");
      const idle = await pane.command("show port stats all");
      assert.match(await pane.command("start tx_first 2"), /io packet forwarding started/);
      await sleep(1000);
      const going = await pane.command("show port stats all");
      await pane.command("stop");
      for (const p of [0, 1]) {
        assert.equal(field(idle, "RX-packets", p), 0, `port ${p} received without tx_first`);
        // 2 bursts of 32 went out of each port; the back-end brings them round again.
        const rx = field(going, "RX-packets", p);
        assert.ok(rx > 2 * 32, `port ${p} received ${rx} after tx_first 2`);
      }
      console.log(
        `io: start moved ${field(idle, "RX-packets", 0)} frames in 1 s, start tx_first 2 ${
          field(going, "RX-packets", 0)
        } + ${field(going, "RX-packets", 1)}`,
      );
      const from = pane.text().length;
      pane.type("quit");
      await pane.waitFor(/EXIT=0/, from, 30_000, "testpmd.ts's exit status 0");
    } finally {
      pane.close();
    }

    // l2fwd on the same ports in a terminal: its statistics are one view redrawn in place.
    await bed.stopForwarding();
    const l2fwd = [
      Deno.execPath(),
      "run",
      "--allow-ffi",
      `${ROOT}/examples/l2fwd.ts`,
      "--duration",
      "4",
      ...ports,
    ].map(shellQuote).join(" ");
    const view = new Pane(l2fwd);
    try {
      await bed.startForwarding();
      const t = await view.waitFor(/EXIT=0/, 0, 60_000, "l2fwd's exit status 0");
      const headers = t.split("\n").filter((line) => /^port {2}link +rx\/s/.test(line));
      assert.equal(headers.length, 1, `one live view, redrawn:\n${t}`);
      assert.match(t, /^l2fwd {2}\d+\.\d s$/m);
      assert.match(t, /^summary at/m, "the summary as a table at exit");
    } finally {
      view.close();
    }
  },
});
