import assert from "node:assert/strict";
import { udpFrames } from "../bed/frames.ts";
import { missingFrames } from "../l2fwd_checks.ts";

const sent = udpFrames({ seed: 1, count: 100, flows: 4 });

Deno.test("missingFrames() says none when every frame was captured, in any order", () => {
  assert.equal(missingFrames(sent, [...sent].reverse()), "none");
});

Deno.test("missingFrames() tells a held-back tail from frames lost here and there", () => {
  assert.equal(
    missingFrames(sent, sent.slice(0, 97)),
    "3 missing, positions 97–99 of 100 (the last 3 sent)",
  );
  assert.equal(
    missingFrames(sent, sent.filter((_, i) => i !== 5 && i !== 50)),
    "2 missing, positions 5–50 of 100 (first ones: 5, 50)",
  );
});
