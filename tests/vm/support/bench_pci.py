"""PCI functions of the bench guest as sysfs shows them (for the VM test scripts).

One place for "which functions with these vendor:device ids are bound to
which driver", so every script picks devices the same way.
"""

import os

PCI = "/sys/bus/pci/devices"


def ids_of(bdf):
    """(vendor, device) of `bdf` as sysfs writes them: ("0x8086", "0x10d3")."""
    with open(os.path.join(PCI, bdf, "vendor")) as v, open(os.path.join(PCI, bdf, "device")) as d:
        return v.read().strip(), d.read().strip()


def driver_of(bdf):
    """The driver bound to `bdf`, or "" when none is."""
    link = os.path.join(PCI, bdf, "driver")
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else ""


def devices(ids, bound_to="vfio-pci"):
    """Functions whose ids are `ids` (one pair, or a set of pairs) bound to
    `bound_to` (None: any driver or none), sorted by address."""
    wanted = ids if isinstance(ids, (set, frozenset)) else {ids}
    return [b for b in sorted(os.listdir(PCI))
            if ids_of(b) in wanted and (bound_to is None or driver_of(b) == bound_to)]
