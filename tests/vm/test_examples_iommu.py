#!/usr/bin/env python3
"""VM test: the NVMe and NIC examples move correct data in both IOMMU policies.

Runs inside the QEMU guest (see scripts/vm). `nvme_verify` writes, reads back
and compares every memory kind (coherent, map_single, map_sg) at depths 1, 8
and 64; `pktcheck` sends numbered frames from one e1000e to the other and
checks each arrives intact, once, in order. Both run with `--iommu pool` and
`--iommu strict` (every buffer its own IOMMU mapping with its direction's
permission, docs/dma.md). Exit 0 on pass, 1 with the reason on failure.
"""

import os
import subprocess
import sys

BENCH_NICS = ("0x8086", "0x10d3")


def fail(reason):
    print(f"test_examples_iommu: FAIL: {reason}")
    sys.exit(1)


def nics_on_vfio():
    found = []
    for name in sorted(os.listdir("/sys/bus/pci/devices")):
        dev = os.path.join("/sys/bus/pci/devices", name)
        with open(os.path.join(dev, "vendor")) as v, open(os.path.join(dev, "device")) as d:
            ids = (v.read().strip(), d.read().strip())
        driver = os.path.join(dev, "driver")
        if ids == BENCH_NICS and os.path.islink(driver) and \
                os.path.basename(os.readlink(driver)) == "vfio-pci":
            found.append(name)
    return found


def run(args, what, must_contain):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    print(f"--- {what}: exit {proc.returncode}")
    print(output.strip())
    if proc.returncode != 0:
        fail(f"{what} exited {proc.returncode}")
    if must_contain not in output:
        fail(f"{what} did not print {must_contain!r}")


def main():
    if os.environ.get("DMAKIT_IN_VM") != "1":
        print("test_examples_iommu: SKIP outside the bench guest (DMAKIT_IN_VM is not 1); "
              "run it under scripts/vm, or the whole suite with meson test --suite vm")
        sys.exit(77)
    build_dir = os.environ.get("DMAKIT_BUILD_DIR")
    if not build_dir:
        fail("DMAKIT_BUILD_DIR is not set (it must name the meson build folder)")
    verify = os.path.join(build_dir, "examples", "nvme", "nvme_verify")
    pktcheck = os.path.join(build_dir, "examples", "net", "pktcheck")
    for program in (verify, pktcheck):
        if not os.access(program, os.X_OK):
            fail(f"{program} is missing; build first: ninja -C {build_dir}")
    nics = nics_on_vfio()
    if len(nics) < 2:
        fail(f"needs two e1000e (8086:10d3) on vfio-pci, found {nics}; "
             "tests/vm/guest-init binds them unless scripts/vm ran with --no-bind")
    for policy in ("pool", "strict"):
        run([verify, "--iommu", policy, "--lbas", "2048"], f"nvme_verify --iommu {policy}",
            "9 passes, 0 failed")
        run([pktcheck, "--iommu", policy, "-a", nics[0], "-b", nics[1], "-n", "5000"],
            f"pktcheck --iommu {policy}", "PASS")
    print("test_examples_iommu: PASS")


if __name__ == "__main__":
    main()
