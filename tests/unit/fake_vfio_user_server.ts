/**
 * A scripted vfio-user server for the client's unit tests, run as a Worker (so it serves
 * while the test's thread blocks in the client's synchronous calls). It listens on the
 * socket path it is sent, accepts one client and answers:
 *
 * - VERSION: 0.1 with max_data_xfer_size 8 (so the client must split larger accesses);
 * - REGION_READ: bytes (offset + i) & 0xff, refusing counts above 8 with EINVAL; a read
 *   at offset 0x40 is preceded by a stale reply (another message ID) and a server-to-client
 *   DMA_READ command, whose answer it reports to the test;
 * - REGION_WRITE: records the data (reported to the test), answers the access header;
 * - DMA_MAP: an error reply, errno 17 (EEXIST);
 * - DEVICE_RESET: half a reply header, then it closes the connection.
 *
 * Messages to the test: `{ listening: true }`, `{ write: {offset, data} }`,
 * `{ clientAnswer: {flags, errorNo} }`, `{ closed: true }`.
 *
 * @module
 */

/// <reference lib="deno.worker" />

const HEADER = 16;

function header(id: number, cmd: number, size: number, flags: number, errorNo = 0): Uint8Array {
  const b = new Uint8Array(HEADER);
  const v = new DataView(b.buffer);
  v.setUint16(0, id, true);
  v.setUint16(2, cmd, true);
  v.setUint32(4, size, true);
  v.setUint32(8, flags, true);
  v.setUint32(12, errorNo, true);
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function readExact(conn: Deno.Conn, n: number): Promise<Uint8Array | null> {
  const b = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await conn.read(b.subarray(got));
    if (r === null) return null;
    got += r;
  }
  return b;
}

async function writeAll(conn: Deno.Conn, b: Uint8Array): Promise<void> {
  for (let at = 0; at < b.length;) at += await conn.write(b.subarray(at));
}

async function serve(path: string): Promise<void> {
  const listener = Deno.listen({ transport: "unix", path });
  self.postMessage({ listening: true });
  const conn = await listener.accept();
  listener.close();
  try {
    for (;;) {
      const h = await readExact(conn, HEADER);
      if (!h) break;
      const v = new DataView(h.buffer);
      const id = v.getUint16(0, true), cmd = v.getUint16(2, true), size = v.getUint32(4, true);
      const flags = v.getUint32(8, true);
      const payload = (await readExact(conn, size - HEADER))!;
      const pv = new DataView(payload.buffer);
      if ((flags & 0xf) === 1) { // the client's answer to our DMA_READ
        self.postMessage({ clientAnswer: { flags, errorNo: v.getUint32(12, true) } });
        continue;
      }
      switch (cmd) {
        case 1: { // VERSION
          const json = new TextEncoder().encode(
            '{"capabilities":{"max_msg_fds":1,"max_data_xfer_size":8}}\0',
          );
          const body = concat(new Uint8Array([0, 0, 1, 0]), json);
          await writeAll(conn, concat(header(id, 1, HEADER + body.length, 1), body));
          break;
        }
        case 9: { // REGION_READ
          const offset = Number(pv.getBigUint64(0, true)), count = pv.getUint32(12, true);
          if (count > 8) {
            await writeAll(conn, header(id, 9, HEADER, 0x21, 22));
            break;
          }
          if (offset === 0x40) {
            // A stale reply, then a server-to-client DMA_READ (address 0, count 4).
            const stale = concat(header(id ^ 0x8000, 9, HEADER + 16 + count, 1), payload);
            const dmaRead = new Uint8Array(16);
            new DataView(dmaRead.buffer).setBigUint64(8, 4n, true);
            await writeAll(
              conn,
              concat(stale, new Uint8Array(count), header(0x77, 11, HEADER + 16, 0), dmaRead),
            );
          }
          const data = new Uint8Array(count).map((_, i) => (offset + i) & 0xff);
          await writeAll(
            conn,
            concat(header(id, 9, HEADER + 16 + count, 1), payload.subarray(0, 16), data),
          );
          break;
        }
        case 10: { // REGION_WRITE
          const offset = Number(pv.getBigUint64(0, true)), count = pv.getUint32(12, true);
          if (count > 8) {
            await writeAll(conn, header(id, 10, HEADER, 0x21, 22));
            break;
          }
          self.postMessage({ write: { offset, data: [...payload.subarray(16)] } });
          if (!(flags & 0x10)) {
            await writeAll(conn, concat(header(id, 10, HEADER + 16, 1), payload.subarray(0, 16)));
          }
          break;
        }
        case 2: // DMA_MAP
          await writeAll(conn, header(id, 2, HEADER, 0x21, 17));
          break;
        case 13: // DEVICE_RESET: half a header, then hang up
          await writeAll(conn, header(id, 13, HEADER, 1).subarray(0, 8));
          conn.close();
          self.postMessage({ closed: true });
          return;
        default:
          await writeAll(conn, header(id, cmd, HEADER, 0x21, 95));
      }
    }
    conn.close();
  } catch (e) {
    self.postMessage({ error: String(e) });
  }
  self.postMessage({ closed: true });
}

self.onmessage = (e: MessageEvent<{ path: string }>) => {
  serve(e.data.path);
};
