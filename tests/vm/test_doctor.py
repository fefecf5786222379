#!/usr/bin/env python3
"""VM test: `dmakit doctor` passes on the bench, with and without device names.

Runs inside the QEMU guest (see scripts/vm) as root. The guest has the IOMMU
on (intel-iommu with interrupt remapping), vfio-pci loaded and every bench
device (two NVMe controllers, two e1000e, two virtio-net) bound to vfio-pci
alone in its IOMMU group, so every check must say ok or warn, each named device
must get its driver, group and /dev/vfio/N lines, and the exit status must be
0; the JSON form must agree. Exit 0 on pass, 1 with the reason on failure.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from bench_pci import devices  # noqa: E402
import vm_script  # noqa: E402

BENCH = {("0x1b36", "0x0010"): 2, ("0x8086", "0x10d3"): 2, ("0x1af4", "0x1041"): 2}
ALWAYS = ["IOMMU", "interrupt remapping", "vfio-pci", "/dev/vfio/vfio", "VFIO dma_entry_limit",
          "IOMMU address width", "locked-memory limit", "hugepages"]


def fail(reason):
    vm_script.fail("test_doctor", reason)


def bench_devices():
    """Every function of the bench's models, whatever it is bound to."""
    return devices(set(BENCH), bound_to=None)


def doctor(tool, args):
    proc = subprocess.run([tool, "doctor"] + args, capture_output=True, text=True, timeout=60)
    print(f"--- dmakit doctor {' '.join(args)}: exit {proc.returncode}")
    print(proc.stdout.rstrip())
    if proc.stderr:
        print(proc.stderr.rstrip())
    return proc


def check_lines(proc, devices, what):
    if proc.returncode != 0:
        fail(f"{what} exited {proc.returncode} on the bench, where every check should pass")
    lines = proc.stdout.splitlines()
    by_check = {}
    for line in lines:
        status, _, rest = line.partition(" ")
        check = rest.strip().split(": ", 1)[0]
        if status not in ("ok", "warn"):
            fail(f"{what}: {line!r} is not ok/warn")
        by_check.setdefault(check, []).append(status)
    for check in ALWAYS:
        if by_check.get(check) != ["ok"]:
            fail(f"{what}: expected one ok line for {check!r}, got {by_check.get(check)}")
    for bdf in devices:
        group = os.path.basename(os.readlink(f"/sys/bus/pci/devices/{bdf}/iommu_group"))
        for check in (f"{bdf} driver", f"{bdf} IOMMU group {group}", f"/dev/vfio/{group}"):
            if by_check.get(check) != ["ok"]:
                fail(f"{what}: expected one ok line for {check!r}, got {by_check.get(check)}")
    return len(lines)


def main():
    _, (tool,) = vm_script.start("test_doctor", "tools/dmakit/dmakit")
    devices = bench_devices()
    if len(devices) != sum(BENCH.values()):
        fail(f"expected {sum(BENCH.values())} bench devices, found {devices}")

    # No names: every device on vfio-pci (all the bench's) is checked.
    check_lines(doctor(tool, []), devices, "doctor")
    named = check_lines(doctor(tool, devices[:3]), devices[:3], "doctor BDF...")

    proc = doctor(tool, ["--json"] + devices[:3])
    if proc.returncode != 0:
        fail(f"doctor --json exited {proc.returncode}")
    try:
        checks = json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        fail(f"doctor --json printed invalid JSON ({err})")
    if len(checks) != named:
        fail(f"doctor --json gave {len(checks)} checks, the text form {named} lines")
    for check in checks:
        if set(check) != {"check", "status", "detail", "fix"} or check["status"] not in ("ok", "warn"):
            fail(f"doctor --json: unexpected entry {check}")
    print(f"test_doctor: PASS ({len(devices)} bench devices, {named} checks named)")


if __name__ == "__main__":
    main()
