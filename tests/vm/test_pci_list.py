#!/usr/bin/env python3
"""VM test: `dmakit list --json` sees the bench's devices on vfio-pci.

Runs inside the QEMU guest (see scripts/vm). The guest has two NVMe controllers
(1b36:0010), two e1000e NICs (8086:10d3) and two modern virtio-net NICs
(1af4:1041), all bound to vfio-pci by the
bench, each alone in its own IOMMU group (intel-iommu puts every q35 root-bus
function in a group of its own). Exit 0 on pass, 1 with the reason on failure.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
import vm_script  # noqa: E402

EXPECTED = [("1b36", "0010", 2, "NVMe controller"), ("8086", "10d3", 2, "e1000e NIC"),
            ("1af4", "1041", 2, "virtio-net NIC")]
BIND_HINT = ("tests/vm/guest-init binds every 1b36:0010, 8086:10d3 and 1af4:1041 to vfio-pci "
             "(driver_override, then drivers_probe) unless scripts/vm ran with --no-bind; "
             "a failed bind says 'could not bind' on the guest console (scripts/vm --live)")
KEYS = {"address", "vendor_id", "device_id", "vendor", "device", "class", "driver",
        "iommu_group", "numa_node"}


def fail(reason):
    vm_script.fail("test_pci_list", reason)


def device_missing(reason):
    """A bench device is absent: a failure in the guest, a skip elsewhere."""
    if os.environ.get("DMAKIT_IN_VM") == "1":
        fail(f"missing in the bench guest (DMAKIT_IN_VM=1), so this is a failure, not a skip: "
             f"{reason}. {BIND_HINT}")
    print(f"test_pci_list: SKIP outside the bench guest (DMAKIT_IN_VM is not 1): {reason}. "
          f"Run it under scripts/vm, or the whole suite with meson test --suite vm")
    sys.exit(vm_script.SKIP_STATUS)


def main():
    # Also on the host: `dmakit list` there sees the host's devices.
    _, (tool,) = vm_script.start("test_pci_list", "tools/dmakit/dmakit", guest_only=False)

    proc = subprocess.run([tool, "list", "--json"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        fail(f"'dmakit list --json' exited {proc.returncode}: {proc.stderr.strip()}")
    try:
        devices = json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        fail(f"'dmakit list --json' printed invalid JSON ({err}): {proc.stdout[:200]!r}")
    if not isinstance(devices, list):
        fail("'dmakit list --json' did not print a JSON array")
    if not devices:
        device_missing("'dmakit list --json' lists no PCI device at all")
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
        on_vfio = [d for d in found if d["driver"] == "vfio-pci"]
        if len(on_vfio) < count:
            elsewhere = [f"{d['address']} on {d['driver']}" if d["driver"] else f"{d['address']} unbound"
                         for d in found if d["driver"] != "vfio-pci"]
            device_missing(f"needs {count} {label} ({vendor}:{device}) bound to vfio-pci, found "
                           f"{len(on_vfio)}" + (f"; not on vfio-pci: {', '.join(elsewhere)}"
                                                if elsewhere else ""))
        if len(found) != count:
            fail(f"expected {count} {label} ({vendor}:{device}), found {len(found)}: "
                 f"{[d['address'] for d in found]}")
        for dev in found:
            addr = dev["address"]
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
