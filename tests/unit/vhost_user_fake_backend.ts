/**
 * A scripted vhost-user back-end for the unit tests, run in a Worker (the front-end under
 * test blocks its own thread in poll(2) while it waits for replies). It listens on a Unix
 * socket, answers the requests a DPDK vhost back-end answers (vhost-user.rst, "Front-end
 * message types"), acks need_reply with 0 — or 1 for the requests it is told to refuse —
 * and can close the connection, stay silent, answer wrongly or speak unasked on cue. It
 * reports every header it read. SCM_RIGHTS fds are not read (Deno cannot), so the kernel
 * discards them.
 *
 * @module
 */

/** How the fake back-end behaves. */
export interface BackendScript {
  /** Socket path to listen on. */
  path: string;
  /** GET_FEATURES answer. */
  features: string; // bigint as decimal text (posted to a Worker)
  /** GET_PROTOCOL_FEATURES answer. */
  protocolFeatures: string;
  /** GET_QUEUE_NUM answer. */
  queueNum: string;
  /** Requests whose need_reply ack is 1 (refused). */
  refuse?: number[];
  /** Close the connection when this request arrives. */
  closeOn?: number;
  /** Never answer this request. */
  silentOn?: number;
  /** Answer this request with another request code. */
  misanswer?: number;
  /** After answering this request, send 12 bytes nobody asked for. */
  chatterAfter?: number;
  /** GET_VRING_BASE's num (default 7). */
  vringBase?: number;
}

/** A header the fake back-end read. */
export interface Seen {
  request: number;
  flags: number;
  size: number;
  payload: number[];
}

const self_ = self as unknown as Worker & typeof globalThis;
const seen: Seen[] = [];
let conn: Deno.Conn | null = null;

self_.onmessage = async (e: MessageEvent) => {
  if (e.data === "report") {
    self_.postMessage({ seen });
    return;
  }
  if (e.data === "stop") {
    try {
      conn?.close();
    } catch { /* already closed */ }
    self_.postMessage({ stopped: true });
    return;
  }
  const s = e.data as BackendScript;
  const listener = Deno.listen({ transport: "unix", path: s.path });
  self_.postMessage({ listening: true });
  conn = await listener.accept();
  listener.close();
  await serve(conn, s).catch(() => {});
  self_.postMessage({ closed: true });
};

async function readExact(c: Deno.Conn, n: number): Promise<Uint8Array | null> {
  const out = new Uint8Array(n);
  for (let done = 0; done < n;) {
    const r = await c.read(out.subarray(done));
    if (r === null) return null;
    done += r;
  }
  return out;
}

function reply(request: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + payload.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, request, true);
  v.setUint32(4, 0x1 | 0x4, true);
  v.setUint32(8, payload.length, true);
  out.set(payload, 12);
  return out;
}

function u64(x: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, x, true);
  return b;
}

async function serve(c: Deno.Conn, s: BackendScript): Promise<void> {
  for (;;) {
    const h = await readExact(c, 12);
    if (!h) return;
    const v = new DataView(h.buffer);
    const request = v.getUint32(0, true), flags = v.getUint32(4, true), size = v.getUint32(8, true);
    const payload = size ? await readExact(c, size) : new Uint8Array(0);
    if (!payload) return;
    seen.push({ request, flags, size, payload: [...payload] });
    if (request === s.closeOn) {
      c.close();
      return;
    }
    if (request === s.silentOn) continue;
    const code = request === s.misanswer ? request + 1 : request;
    let answer: Uint8Array | null = null;
    if (request === 1) answer = u64(BigInt(s.features));
    else if (request === 15) answer = u64(BigInt(s.protocolFeatures));
    else if (request === 17) answer = u64(BigInt(s.queueNum));
    else if (request === 11) {
      const base = s.vringBase ?? 7;
      answer = payload.slice(0, 4).length === 4
        ? new Uint8Array([...payload.slice(0, 4), base & 0xff, base >> 8, 0, 0])
        : null;
    } else if (flags & 0x8) answer = u64(s.refuse?.includes(request) ? 1n : 0n);
    if (answer) await c.write(reply(code, answer));
    if (request === s.chatterAfter) await c.write(reply(99, new Uint8Array(0)));
  }
}
