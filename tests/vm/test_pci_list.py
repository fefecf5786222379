#!/usr/bin/env python3
"""VM test: `dmakit list --json` sees the bench's devices on vfio-pci.

Runs inside the QEMU guest (see scripts/vm). The guest has one NVMe controller
(1b36:0010) and two e1000e NICs (8086:10d3), all bound to vfio-pci by the
bench, each alone in its own IOMMU group (intel-iommu puts every q35 root-bus
function in a group of its own). Exit 0 on pass, 1 with the reason on failure.
"""

import json
import os
import subprocess
import sys

EXPECTED = [("1b36", "0010", 1, "NVMe controller"), ("8086", "10d3", 2, "e1000e NIC")]
KEYS = {"address", "vendor_id", "device_id", "vendor", "device", "class", "driver",
        "iommu_group", "numa_node"}


def fail(reason):
    print(f"test_pci_list: FAIL: {reason}")
    sys.exit(1)


def main():
    build_dir = os.environ.get("DMAKIT_BUILD_DIR")
    if not build_dir:
        fail("DMAKIT_BUILD_DIR is not set (it must name the meson build folder)")
    tool = os.path.join(build_dir, "tools", "dmakit", "dmakit")
    if not os.access(tool, os.X_OK):
        fail(f"{tool} is missing or not executable; build first: ninja -C {build_dir}")

    proc = subprocess.run([tool, "list", "--json"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        fail(f"'dmakit list --json' exited {proc.returncode}: {proc.stderr.strip()}")
    try:
        devices = json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        fail(f"'dmakit list --json' printed invalid JSON ({err}): {proc.stdout[:200]!r}")
    if not isinstance(devices, list) or not devices:
        fail("'dmakit list --json' did not print a non-empty JSON array")
    for dev in devices:
        missing = KEYS - set(dev)
        if missing:
            fail(f"device {dev.get('address')} lacks keys {sorted(missing)}")
    print(f"dmakit list --json: {len(devices)} devices, all with keys {sorted(KEYS)}")

    by_group = {}
    for dev in devices:
        if dev["iommu_group"] is not None:
            by_group.setdefault(dev["iommu_group"], []).append(dev["address"])

    seen_groups = set()
    for vendor, device, count, label in EXPECTED:
        found = [d for d in devices if d["vendor_id"] == vendor and d["device_id"] == device]
        if len(found) != count:
            fail(f"expected {count} {label} ({vendor}:{device}), found {len(found)}: "
                 f"{[d['address'] for d in found]}")
        for dev in found:
            addr = dev["address"]
            if dev["driver"] != "vfio-pci":
                fail(f"{label} {addr} is bound to {dev['driver']!r}, not vfio-pci")
            group = dev["iommu_group"]
            if not isinstance(group, int) or isinstance(group, bool):
                fail(f"{label} {addr} has no IOMMU group ({group!r}); is intel-iommu on?")
            if group in seen_groups:
                fail(f"{label} {addr} shares IOMMU group {group} with another tested device")
            seen_groups.add(group)
            others = [a for a in by_group.get(group, []) if a != addr]
            if others:
                fail(f"{label} {addr}: IOMMU group {group} also holds {others}")
            print(f"ok: {label} {addr} ({vendor}:{device}) on vfio-pci, alone in IOMMU group {group}")

    print(f"test_pci_list: PASS ({sum(e[2] for e in EXPECTED)} devices checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
