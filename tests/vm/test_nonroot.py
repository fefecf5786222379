#!/usr/bin/env python3
"""VM test: the NVMe and NIC examples run as an unprivileged user.

Runs inside the QEMU guest (see scripts/vm) as root, and runs the programs as
uid 4242 (no passwd entry needed: setpriv --reuid/--regid --clear-groups,
which also drops every capability, CAP_IPC_LOCK included). What such a user
needs, and what this test sets up, in the order a user meets it:

1. /dev/vfio/N of each device's group: refused until `dmakit bind --user 4242`
   gives the node to the user (owner 4242, mode 0600). `dmakit doctor` run as
   the user says so first, with that command as the fix.
2. A locked-memory limit that holds what VFIO pins: with 8 MiB (Debian's
   default) the library refuses when the domain opens, before pinning, saying
   how to raise it; with 512 MiB (prlimit) everything runs.
3. Hugepages: nothing. The pool takes them through memfd_create(MFD_HUGETLB),
   which needs no hugetlbfs mount, so /dev/hugepages (root's, 0755) stays as it
   is and the run must NOT fall back to 4 KiB pages.

Then `nvme_verify` (both IOMMU policies) and `pktcheck` over the two e1000e
must pass as that user. The nodes go back to root at the end. Exit 0 on pass,
1 with the reason on failure.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
import bench_nvme  # noqa: E402
from bench_pci import devices as on_vfio  # noqa: E402
import vm_script  # noqa: E402

UID = 4242
SMALL_MEMLOCK = 8 << 20
ENOUGH_MEMLOCK = 512 << 20
E1000E = ("0x8086", "0x10d3")


def fail(reason):
    vm_script.fail("test_nonroot", reason)


def as_user(args, memlock):
    """`args` run as UID with RLIMIT_MEMLOCK = memlock (soft and hard)."""
    return ["prlimit", f"--memlock={memlock}", "setpriv", f"--reuid={UID}", f"--regid={UID}",
            "--clear-groups", "--"] + args


def run(args, what):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    print(f"--- {what}: exit {proc.returncode}")
    print(output.rstrip())
    return proc.returncode, output


def expect(args, what, status_ok, *must_contain, must_not_contain=()):
    status, output = run(args, what)
    if (status == 0) != status_ok:
        fail(f"{what} exited {status}, expected {'0' if status_ok else 'a failure'}")
    for text in must_contain:
        if text not in output:
            fail(f"{what} did not print {text!r}")
    for text in must_not_contain:
        if text in output:
            fail(f"{what} printed {text!r}")
    return output


def group_node(bdf):
    return "/dev/vfio/" + os.path.basename(os.readlink(f"/sys/bus/pci/devices/{bdf}/iommu_group"))


def main():
    build_dir, (tool, verify, pktcheck) = vm_script.start(
        "test_nonroot", "tools/dmakit/dmakit", "examples/nvme/nvme_verify", "examples/net/pktcheck")
    nics = on_vfio(E1000E)
    if len(nics) < 2:
        fail(f"needs two e1000e on vfio-pci, found {nics}; "
             "tests/vm/guest-init binds them unless scripts/vm ran with --no-bind")
    try:
        nvme = bench_nvme.controller(build_dir, 0)  # one namespace of 512-byte blocks
    except RuntimeError as e:
        fail(str(e))
    devices = [nvme, nics[0], nics[1]]

    # The user really is unprivileged: its own uid, no capabilities.
    status = expect(as_user(["cat", "/proc/self/status"], SMALL_MEMLOCK), "the user's /proc/self/status", True)
    if f"Uid:\t{UID}\t{UID}" not in status or "CapEff:\t0000000000000000" not in status:
        fail("setpriv did not give an unprivileged process")

    try:
        # 1. The group nodes are root's: doctor names the fix, the program is refused.
        node = group_node(nvme)
        expect(as_user([tool, "doctor", nvme], ENOUGH_MEMLOCK), "doctor as the user, before bind --user",
               False, f"FAIL {node}: uid {UID} may not open it", f"fix: as root: dmakit bind --user {UID} {nvme}")
        expect(as_user([verify, "-d", nvme, "--lbas", "256"], ENOUGH_MEMLOCK),
               "nvme_verify as the user, before bind --user", False, f"no permission for {node} (uid {UID})",
               f"dmakit bind --user {UID} BDF")

        out = expect([tool, "bind", "--user", str(UID)] + devices, "dmakit bind --user", True)
        for bdf in devices:
            st = os.stat(group_node(bdf))
            if st.st_uid != UID or (st.st_mode & 0o7777) != 0o600:
                fail(f"{group_node(bdf)} is uid {st.st_uid} mode {oct(st.st_mode & 0o7777)} after bind --user")
            if f"{group_node(bdf)} given to uid {UID}, mode 0600" not in out:
                fail(f"bind --user did not say it gave {group_node(bdf)} to uid {UID}")

        # 2. A memlock limit too small: refused before pinning, with how to raise it.
        expect(as_user([tool, "doctor", nvme], SMALL_MEMLOCK), "doctor as the user, 8 MiB memlock", False,
               "FAIL locked-memory limit: 8 MiB, but the DMA pool pins 64 MiB", "ulimit -l 65536")
        expect(as_user([verify, "-d", nvme, "--lbas", "256"], SMALL_MEMLOCK),
               "nvme_verify as the user, 8 MiB memlock", False,
               "the locked-memory limit (RLIMIT_MEMLOCK, ulimit -l) is 8 MiB", "ulimit -l 65536",
               must_not_contain=("VFIO_IOMMU_MAP_DMA",))

        # 3. Enough memlock: doctor passes and the programs run, on hugepages.
        expect(as_user([tool, "doctor"] + devices, ENOUGH_MEMLOCK), "doctor as the user, 512 MiB memlock", True,
               "ok   locked-memory limit: 512 MiB")
        for policy in ("pool", "strict"):
            expect(as_user([verify, "--iommu", policy, "-d", nvme, "--lbas", "2048"], ENOUGH_MEMLOCK),
                   f"nvme_verify --iommu {policy} as uid {UID}", True, "36 passes, 0 failed",
                   must_not_contain=("falling back to 4 KiB pages",))
        expect(as_user([pktcheck, "-a", nics[0], "-b", nics[1], "-n", "5000"], ENOUGH_MEMLOCK),
               f"pktcheck e1000e as uid {UID}", True, "PASS", must_not_contain=("falling back to 4 KiB pages",))
    finally:
        # Leave the bench as the guest made it: the nodes back to root.
        run([tool, "bind", "--user", "0"] + devices, "dmakit bind --user 0 (restore)")
    print(f"test_nonroot: PASS (nvme_verify and pktcheck as uid {UID})")


if __name__ == "__main__":
    main()
