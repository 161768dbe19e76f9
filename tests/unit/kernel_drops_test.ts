import assert from "node:assert/strict";
import {
  assertFramesAccounted,
  dropReasonCodes,
  dropReasonCodesExcept,
  parseKfreeSkbTrace,
} from "../bed/kernel_drops.ts";

const TRACE = `# tracer: nop
#           TASK-PID       TGID    CPU#  |||||  TIMESTAMP  FUNCTION
#              | |           |       |   |||||     |         |
 qemu-system-x86-5576    (   5570) [000] .....  8612.262831: kfree_skb: skbaddr=000000008fc69c49 rx_sk=0000000000000000 protocol=2048 location=tun_queue_purge+0x90/0x130 reason: NOT_SPECIFIED
 qemu-system-x86-5576    (   5570) [000] .....  8612.262833: kfree_skb: skbaddr=00000000b1fb041e rx_sk=0000000000000000 protocol=2048 location=tun_queue_purge+0x90/0x130 reason: NOT_SPECIFIED
 qemu-system-x86-5571    (   5570) [001] .....  8612.262900: kfree_skb: skbaddr=00000000b1fb0400 rx_sk=0000000000000000 protocol=2048 location=__skb_array_destroy_skb+0x10/0x20 reason: NOT_SPECIFIED
 qemu-system-x86-6000    (   6000) [001] .....  8612.263000: kfree_skb: skbaddr=00000000b1fb0411 rx_sk=0000000000000000 protocol=2048 location=tun_queue_purge+0x90/0x130 reason: NOT_SPECIFIED
          <idle>-0       (-------) [001] ..s1.  8612.300000: kfree_skb: skbaddr=00000000aaaa0000 rx_sk=0000000000000000 protocol=2048 location=ip_rcv_core+0x1a/0x300 reason: OTHERHOST
`;

Deno.test("parseKfreeSkbTrace() groups drops by process, location and reason", () => {
  const drops = parseKfreeSkbTrace(TRACE);
  assert.deepEqual(drops, [
    { tgid: 5570, location: "tun_queue_purge", reason: "NOT_SPECIFIED", count: 2 },
    { tgid: 5570, location: "__skb_array_destroy_skb", reason: "NOT_SPECIFIED", count: 1 },
    { tgid: 6000, location: "tun_queue_purge", reason: "NOT_SPECIFIED", count: 1 },
  ]);
});

Deno.test("assertFramesAccounted() throws when a frame is neither received nor counted", () => {
  assertFramesAccounted("ok", { sent: 100, dropped: 2 }, 95, 3);
  assert.throws(
    () => assertFramesAccounted("short", { sent: 100, dropped: 2 }, 94, 3),
    /1 of 100 frames neither received nor counted/,
  );
});

const FORMAT =
  `print fmt: "…reason: %s", __print_symbolic(REC->reason, { 0, "NOT_DROPPED_YET" }, ` +
  `{ 1, "CONSUMED" }, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" }, { 71, "TC_INGRESS" }, ` +
  `{ 72, "CPU_BACKLOG" }, { 140, "MAX" })`;

Deno.test("dropReasonCodesExcept() gives every real drop reason but those named", () => {
  assert.deepEqual(dropReasonCodesExcept(FORMAT, ["TC_INGRESS"]), [2, 3, 72]);
  assert.deepEqual(dropReasonCodes(FORMAT, ["CPU_BACKLOG"]), [72]);
  assert.throws(() => dropReasonCodesExcept(FORMAT, ["NO_SUCH"]), /no skb drop reason NO_SUCH/);
});
