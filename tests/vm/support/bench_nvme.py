"""The bench's NVMe controllers, picked by serial (for the VM test scripts).

scripts/vm starts two: controller 0 with serial DMAKIT_VM_NVME_SERIAL (one
namespace of 512-byte blocks) and controller 1 with serial
DMAKIT_VM_NVME1_SERIAL (nsid 1 of 4 KiB blocks, nsid 2 of 512 B + 8 bytes of
separate metadata, MDTS 1). PCI addresses depend on --qmp (root ports or the
root bus), so a script asks each controller on vfio-pci for its serial with
nvme_identify --json instead of trusting an address order.
"""

import json
import os
import subprocess

import bench_pci

NVME_ID = ("0x1b36", "0x0010")


def bench_serial(index):
    """The serial scripts/vm gave controller `index` (0 or 1), or None."""
    name = "DMAKIT_VM_NVME_SERIAL" if index == 0 else "DMAKIT_VM_NVME1_SERIAL"
    return os.environ.get(name) or None


def nvmes_on_vfio():
    """NVMe functions (1b36:0010) bound to vfio-pci, sorted by address."""
    return bench_pci.devices(NVME_ID)


def by_serial(build_dir):
    """{serial: BDF} of every NVMe controller on vfio-pci; raises RuntimeError
    naming the controller when nvme_identify cannot read one."""
    identify = os.path.join(build_dir, "examples", "nvme", "nvme_identify")
    out = {}
    for bdf in nvmes_on_vfio():
        proc = subprocess.run([identify, "-d", bdf, "--json"], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"nvme_identify -d {bdf} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
        out[json.loads(proc.stdout)["serial"]] = bdf
    return out


def controller(build_dir, index):
    """BDF of bench controller `index`; raises RuntimeError saying what is missing."""
    serial = bench_serial(index)
    if serial is None:
        raise RuntimeError(f"no serial for NVMe controller {index} (DMAKIT_VM_NVME_SERIAL / "
                           "DMAKIT_VM_NVME1_SERIAL, set by scripts/vm)")
    found = by_serial(build_dir)
    if serial not in found:
        raise RuntimeError(f"no NVMe controller with serial {serial!r} on vfio-pci (found {found})")
    return found[serial]
