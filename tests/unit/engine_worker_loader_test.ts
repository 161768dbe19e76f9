/**
 * Loading the forwarding worker from blob: URLs (src/engine/worker_loader.ts): import
 * rewriting, missing modules named, and the real worker graph answering a ping.
 */

import assert from "node:assert/strict";
import {
  blobModuleGraph,
  rewriteImports,
  startBlobWorker,
} from "../../src/engine/worker_loader.ts";
import { WORKER_ENTRY, workerCopied, workerSources } from "../../src/engine/worker_sources.ts";

Deno.test("rewriteImports rewrites static imports and re-exports, not doc comments", () => {
  const src = [
    'import { a, type B } from "./a.ts";',
    "import type { C } from '../c.ts';",
    "import {",
    "  d,",
    "  e,",
    '} from "./sub/d.ts";',
    'export * from "./x.ts";',
    'export { y } from "./y.ts";',
    'export const s = "from ./not.ts";',
    ' * import { z } from "./z.ts";',
    'import "./side.ts";',
  ].join("\n");
  const out = rewriteImports(src, "file:///m/dir/mod.ts", (u) => `<${u}>`);
  assert.equal(
    out,
    [
      'import { a, type B } from "<file:///m/dir/a.ts>";',
      "import type { C } from '<file:///m/c.ts>';",
      "import {",
      "  d,",
      "  e,",
      '} from "<file:///m/dir/sub/d.ts>";',
      'export * from "<file:///m/dir/x.ts>";',
      'export { y } from "<file:///m/dir/y.ts>";',
      'export const s = "from ./not.ts";',
      ' * import { z } from "./z.ts";',
      'import "<file:///m/dir/side.ts>";',
    ].join("\n"),
  );
});

Deno.test("blobModuleGraph names a module the sources lack and refuses cycles", () => {
  assert.throws(
    () => blobModuleGraph("file:///m/a.ts", new Map([["file:///m/a.ts", 'import "./b.ts";']])),
    /needs file:\/\/\/m\/b\.ts \(imported by file:\/\/\/m\/a\.ts\).*worker_sources\.ts/,
  );
  assert.throws(
    () =>
      blobModuleGraph(
        "file:///m/a.ts",
        new Map([["file:///m/a.ts", 'import "./b.ts";'], ["file:///m/b.ts", 'import "./a.ts";']]),
      ),
    /cycle/,
  );
});

Deno.test("a module imported with ?copy=TAG is an instance of its own, with the copied modules it imports; the rest is shared", async () => {
  const sources = new Map([
    [
      "file:///m/entry.ts",
      'export * as one from "./path.ts?copy=one";\nexport * as two from "./path.ts?copy=two";\nexport * as plain from "./path.ts";',
    ],
    [
      "file:///m/path.ts",
      'export { Hot } from "./hot.ts";\nexport { Shared } from "./shared.ts";',
    ],
    [
      "file:///m/hot.ts",
      'import { Shared } from "./shared.ts";\nexport class Hot extends Shared {}',
    ],
    ["file:///m/shared.ts", "export class Shared {}"],
  ]);
  const copied = new Set(["file:///m/path.ts", "file:///m/hot.ts"]);
  const urls = blobModuleGraph("file:///m/entry.ts", sources, copied);
  try {
    assert.deepEqual([...urls.keys()].sort(), [
      "file:///m/entry.ts",
      "file:///m/hot.ts",
      "file:///m/hot.ts?copy=one",
      "file:///m/hot.ts?copy=two",
      "file:///m/path.ts",
      "file:///m/path.ts?copy=one",
      "file:///m/path.ts?copy=two",
      "file:///m/shared.ts",
    ]);
    const m = await import(urls.get("file:///m/entry.ts")!);
    assert.notEqual(m.one.Hot, m.two.Hot, "each copy has its own class");
    assert.notEqual(m.one.Hot, m.plain.Hot);
    assert.equal(m.one.Shared, m.two.Shared, "a module not copied is one instance");
    assert.ok(new m.two.Hot() instanceof m.plain.Shared);
  } finally {
    for (const u of urls.values()) URL.revokeObjectURL(u);
  }
});

Deno.test("under deno run --allow-ffi alone, the worker starts from blobs, answers, and leaves nothing in DENO_DIR", async () => {
  const loader = new URL("../../src/engine/worker_loader.ts", import.meta.url).href;
  const sources = new URL("../../src/engine/worker_sources.ts", import.meta.url).href;
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/main.ts`,
      `import { startBlobWorker } from "${loader}";
import { WORKER_ENTRY, workerCopied, workerSources } from "${sources}";
const w = startBlobWorker(WORKER_ENTRY, workerSources, "permission test", workerCopied);
w.onmessage = (e) => { console.log(JSON.stringify(e.data)); w.terminate(); };
w.onerror = (e) => { console.log("error: " + e.message); e.preventDefault(); w.terminate(); };
w.postMessage({ type: "ping" });
`,
    );
    const denoDir = `${dir}/deno_dir`;
    const blobFiles = () => {
      const found: string[] = [];
      const walk = (d: string, blob: boolean) => {
        let list: Deno.DirEntry[] = [];
        try {
          list = [...Deno.readDirSync(d)];
        } catch { /* not made */ }
        for (const e of list) {
          if (e.isDirectory) walk(`${d}/${e.name}`, blob || e.name === "blob");
          else if (blob) found.push(`${d}/${e.name}`);
        }
      };
      walk(denoDir, false);
      return found;
    };
    for (let run = 0; run < 2; run++) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--quiet", "--allow-ffi", `${dir}/main.ts`],
        env: { DENO_DIR: denoDir },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout).trim();
      assert.equal(text, '{"type":"pong"}', new TextDecoder().decode(out.stderr));
    }
    // TypeScript blobs would leave their compiled modules there, new ones every start
    // (worker_loader.ts); JavaScript blobs leave nothing.
    assert.deepEqual(blobFiles(), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the forwarding worker loads from blobs and answers", async () => {
  const w = startBlobWorker(WORKER_ENTRY, workerSources, "loader test", workerCopied);
  try {
    const reply = await new Promise<unknown>((resolve, reject) => {
      w.onmessage = (e) => resolve(e.data);
      w.onerror = (e) => {
        e.preventDefault();
        reject(new Error(e.message));
      };
      w.postMessage({ type: "ping" });
    });
    assert.deepEqual(reply, { type: "pong" });
  } finally {
    w.terminate();
  }
});
