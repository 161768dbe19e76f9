/**
 * The QEMU binary both test beds run: Debian 12's QEMU 7.2 built from its source package
 * by tools/build_bed_qemu.sh, with the vfio-user server and the fixes in
 * tools/qemu_patches/ (Debian's own binary crashes under a TCG race that the VM bed's
 * BAR enables and disables trigger: docs/test_beds.md).
 *
 * @module
 */

const BUILD_SCRIPT = new URL("../../tools/build_bed_qemu.sh", import.meta.url).pathname;
const dec = new TextDecoder();
let built: Promise<string> | undefined;

/**
 * The bed's `qemu-system-x86_64`: env BED_QEMU, else the path the build script prints
 * (it builds QEMU once, a few minutes, and only prints the path afterwards).
 *
 * @example
 * ```ts ignore
 * import { bedQemu } from "./bed_qemu.ts";
 * console.log(await bedQemu()); // /var/cache/virtio-deno/qemu-bed/…/build/qemu-system-x86_64
 * ```
 */
export function bedQemu(): Promise<string> {
  const env = Deno.env.get("BED_QEMU");
  if (env) return Promise.resolve(env);
  built ??= (async () => {
    const out = await new Deno.Command("bash", {
      args: [BUILD_SCRIPT],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      built = undefined;
      throw new Error(
        `tools/build_bed_qemu.sh failed (exit ${out.code}): ${dec.decode(out.stderr).trim()}`,
      );
    }
    return dec.decode(out.stdout).trim().split("\n").at(-1)!;
  })();
  return built;
}
