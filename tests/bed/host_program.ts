/**
 * Runs a project program on the host (the driver side in the vfio-user bed) with
 * `deno run --allow-ffi` only, and reads its JSON-lines output as it comes.
 *
 * @module
 */

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** A running host program: its output lines, and its exit. */
export class HostProgram {
  /** The child process. */
  readonly child: Deno.ChildProcess;
  /** Every stdout line read so far. */
  readonly lines: string[] = [];
  /** Its whole stderr, once it exits. */
  readonly stderr: Promise<string>;
  readonly #it: AsyncIterator<string>;

  /**
   * Starts `deno run --quiet --allow-ffi ROOT/file args…`.
   *
   * @example
   * ```ts ignore
   * const p = HostProgram.start("tests/guest/rxtx.ts", ["--port", "vfio-user:/tmp/x.sock"]);
   * await p.waitForLine(/"event":"ready"/);
   * ```
   */
  static start(file: string, args: string[]): HostProgram {
    return new HostProgram(file, args);
  }

  private constructor(file: string, args: string[]) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-ffi", `${ROOT}/${file}`, ...args],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.stderr = new Response(this.child.stderr).text();
    let buf = "";
    this.#it = this.child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
      new TransformStream<string, string>({
        transform(chunk, ctl) {
          buf += chunk;
          const parts = buf.split("\n");
          buf = parts.pop()!;
          for (const p of parts) ctl.enqueue(p);
        },
        flush(ctl) {
          if (buf) ctl.enqueue(buf);
        },
      }),
    )[Symbol.asyncIterator]();
  }

  /** Reads lines until one matches `re` and returns it; throws if output ends first. */
  async waitForLine(re: RegExp): Promise<string> {
    for (;;) {
      const r = await this.#it.next();
      if (r.done) {
        throw new Error(
          `output ended before ${re}:\n${this.lines.join("\n")}\n${await this.stderr}`,
        );
      }
      this.lines.push(r.value);
      if (re.test(r.value)) return r.value;
    }
  }

  /** Reads the rest of the output and waits for the exit; returns the exit code. */
  async finish(): Promise<number> {
    for (let r = await this.#it.next(); !r.done; r = await this.#it.next()) {
      this.lines.push(r.value);
    }
    return (await this.child.status).code;
  }

  /** The last output line parsed as JSON. */
  lastJson(): Record<string, unknown> {
    return JSON.parse(this.lines.at(-1)!);
  }

  /** Kills the program if it still runs. */
  kill(): void {
    try {
      this.child.kill("SIGKILL");
    } catch { /* already exited */ }
  }
}
