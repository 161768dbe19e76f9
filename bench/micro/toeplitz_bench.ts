/**
 * The Toeplitz hash of an IPv4/TCP 4-tuple (12 bytes) under the Microsoft key, the table
 * version steering uses and the bit-by-bit reference (src/steering/toeplitz.ts).
 *
 * @module
 */

import { microsoftRssKey, toeplitzHash, ToeplitzHasher } from "../../src/steering/toeplitz.ts";

const key = microsoftRssKey();
const hasher = new ToeplitzHasher(key);
const input = new Uint8Array([66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6]);
let sink = 0;

Deno.bench("Toeplitz, table (ToeplitzHasher) ×1", () => {
  sink ^= hasher.hash(input, 0, 12);
});
Deno.bench("Toeplitz, bit by bit (toeplitzHash) ×1", () => {
  sink ^= toeplitzHash(key, input, 12);
});
globalThis.addEventListener("unload", () => sink === 0.5 && console.log(sink));
