#!/usr/bin/env python3
"""VM test: examples/hello_device on the bench's first NVMe controller.

Runs inside the QEMU guest (see scripts/vm). The full run must print the
controller's IDs (1b36:0010), BAR0's first dwords with VS = 1.4.0 third (NVMe
1.4 §3.1.2), a coherent buffer's and a map_single's device addresses (two
different non-zero IOVAs), and end with "unmapped; done", exit 0.
--registers-only prints the same IDs and registers and nothing of DMA. A
function on another driver is refused with `dmakit bind`, a missing one with
`dmakit list`, both exit 1; a bad argument exits 2. Exit 0 on pass, 1 with
the reason on failure (77, skip, outside the guest).
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from bench_pci import PCI, devices as on_vfio, driver_of  # noqa: E402
import vm_script  # noqa: E402

BENCH_NVME = ("0x1b36", "0x0010")


def fail(reason):
    vm_script.fail("test_hello_device", reason)


def run(program, args, what, status):
    proc = subprocess.run([program] + args, capture_output=True, text=True, timeout=300)
    print(f"--- {what}: exit {proc.returncode}")
    print((proc.stdout + proc.stderr).strip())
    if proc.returncode != status:
        fail(f"{what} exited {proc.returncode}, expected {status}")
    return proc.stdout, proc.stderr


def expect(text, pattern, what):
    match = re.search(pattern, text, re.MULTILINE)
    if not match:
        fail(f"{what}: no line matching {pattern!r}")
    return match


def main():
    _, (hello,) = vm_script.start("test_hello_device", "examples/hello_device/hello_device")
    nvmes = on_vfio(BENCH_NVME)
    if not nvmes:
        fail("no NVMe controller (1b36:0010) on vfio-pci; tests/vm/guest-init binds them "
             "unless scripts/vm ran with --no-bind")
    bdf = nvmes[0]

    out, _ = run(hello, [bdf], f"hello_device {bdf}", 0)
    expect(out, rf"^{re.escape(bdf)}: vendor 1b36 device 0010$", "IDs")
    expect(out, r"^BAR0: \d+ bytes, first dwords [0-9a-f]{8} [0-9a-f]{8} 00010400 [0-9a-f]{8}$", "BAR0 (VS third)")
    coherent = int(expect(out, r"^coherent buffer: 4096 bytes at device address 0x([0-9a-f]+)$", "coherent")[1], 16)
    single = int(expect(out, r"^map_single: 8192 bytes at device address 0x([0-9a-f]+)$", "map_single")[1], 16)
    if coherent == 0 or single == 0 or coherent == single:
        fail(f"device addresses 0x{coherent:x} and 0x{single:x} must be two different non-zero IOVAs")
    expect(out, r"^unmapped; done$", "end")

    out, _ = run(hello, ["--registers-only", bdf], f"hello_device --registers-only {bdf}", 0)
    expect(out, rf"^{re.escape(bdf)}: vendor 1b36 device 0010$", "IDs (registers only)")
    expect(out, r"^BAR0: \d+ bytes, first dwords [0-9a-f]{8} [0-9a-f]{8} 00010400 [0-9a-f]{8}$", "BAR0 (registers only)")
    if "device address" in out or "done" in out:
        fail("--registers-only did DMA work")

    others = [b for b in sorted(os.listdir(PCI)) if driver_of(b) not in ("", "vfio-pci")]
    if not others:
        fail("no function bound to a driver other than vfio-pci (the guest's virtio-9p device should be)")
    _, err = run(hello, [others[0]], f"hello_device {others[0]} (bound to {driver_of(others[0])})", 1)
    if f"dmakit bind {others[0]}" not in err:
        fail("a function on another driver must be answered with: dmakit bind BDF")

    _, err = run(hello, ["00fe:ff:1f.7"], "hello_device on a missing function", 1)
    if "dmakit list" not in err:
        fail("a missing function must be answered with: dmakit list")
    run(hello, ["0000:00:04"], "hello_device with a malformed address", 2)
    print("test_hello_device: PASS")


if __name__ == "__main__":
    main()
