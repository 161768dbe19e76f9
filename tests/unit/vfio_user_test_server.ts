/**
 * Starts fake_vfio_user_server.ts in a Worker for the vfio-user unit tests and collects
 * what it reports.
 *
 * @module
 */

import type { DeviceOptions } from "./fake_vfio_user_server.ts";

/** What the fake server reports to the test. */
export type ServerMessage = {
  listening?: boolean;
  closed?: boolean;
  stalled?: boolean;
  released?: boolean;
  error?: string;
  write?: { offset: number; data: number[] };
  clientAnswer?: { flags: number; errorNo: number };
};

/** A running fake server. */
export interface FakeServer {
  /** Its socket path. */
  path: string;
  /** Everything it reported so far. */
  messages: ServerMessage[];
  /** Settles once it closed the connection. */
  closed: Promise<void>;
  /** Has the server close the fds it kept, ends it and removes the socket's directory. */
  stop(): Promise<void>;
}

/**
 * Starts a fake server in `mode` and waits until it listens.
 *
 * @example
 * ```ts ignore
 * import { startFakeServer } from "./vfio_user_test_server.ts";
 * const server = await startFakeServer("device", { replyFds: 2 });
 * await server.stop();
 * ```
 */
export async function startFakeServer(
  mode: "script" | "device" = "script",
  options: DeviceOptions = {},
): Promise<FakeServer> {
  const dir = await Deno.makeTempDir({ prefix: "vfu-unit-" });
  const path = `${dir}/s.sock`;
  const worker = new Worker(new URL("./fake_vfio_user_server.ts", import.meta.url), {
    type: "module",
  });
  const messages: ServerMessage[] = [];
  let closed!: () => void;
  const closedP = new Promise<void>((r) => closed = r);
  let released!: () => void;
  const releasedP = new Promise<void>((r) => released = r);
  await new Promise<void>((resolve) => {
    worker.onmessage = (e: MessageEvent<ServerMessage>) => {
      messages.push(e.data);
      if (e.data.listening) resolve();
      if (e.data.closed) closed();
      if (e.data.released) released();
    };
    worker.postMessage({ path, mode, options });
  });
  return {
    path,
    messages,
    closed: closedP,
    async stop() {
      worker.postMessage({ release: true });
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([releasedP, new Promise((r) => timer = setTimeout(r, 1000))]);
      clearTimeout(timer);
      worker.terminate();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
