#!/usr/bin/env python3
"""VM test: the NVMe and NIC examples move correct data in both IOMMU policies.

Runs inside the QEMU guest (see scripts/vm). `nvme_verify` writes, reads back
and compares every memory kind (coherent, map_single, map_sg) at depths 1, 8
and 64; `pktcheck` sends numbered frames from one port to the other of each
NIC pair (the two e1000e, the two virtio-net) and checks each arrives intact,
once, in order; `pktgen --json` reports per port what the driver counted,
and on the e1000e exactly what the device's own counter (GPTC) says it sent;
`fwd` keeps forwarding frames addressed to no station (its own seeds, and
on virtio-net what `pktgen --dst` left in the taps), which only promiscuous
ports take;
`e1000e_kernel_style` does the same through an 82574 driver
written in kernel-style C against <dmakit/linux.h>; `disk2net` opens the NVMe
controller and both NICs in ONE IOMMU domain, reads blocks straight into
packet buffers, sends them and checks every payload. All run with
`--iommu pool` and `--iommu strict` (every buffer its own IOMMU mapping with its direction's
permission, docs/dma.md). Exit 0 on pass, 1 with the reason on failure.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
import bench_nvme  # noqa: E402
from bench_pci import devices as on_vfio  # noqa: E402
import vm_script  # noqa: E402

BENCH_NICS = ("0x8086", "0x10d3")
BENCH_VIRTIO_NICS = ("0x1af4", "0x1041")
BENCH_NVME = ("0x1b36", "0x0010")


def fail(reason):
    vm_script.fail("test_examples_iommu", reason)


def run(args, what, must_contain):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    print(f"--- {what}: exit {proc.returncode}")
    print(output.strip())
    if proc.returncode != 0:
        fail(f"{what} exited {proc.returncode}")
    if must_contain not in output:
        fail(f"{what} did not print {must_contain!r}")


def run_json(args, what, ports):
    """Runs a NIC example with --json: it must exit 0 and print one JSON
    object naming `ports` in order. Returns the object."""
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    print(f"--- {what}: exit {proc.returncode}")
    print(proc.stderr.strip())
    if proc.returncode != 0:
        fail(f"{what} exited {proc.returncode}")
    try:
        result = json.loads(proc.stdout)
    except ValueError as e:
        fail(f"{what}: stdout is not one JSON object ({e}): {proc.stdout[:400]!r}")
    named = [p.get("device") for p in result.get("ports", [])]
    if named != list(ports):
        fail(f"{what}: JSON names ports {named}, expected {list(ports)}")
    return result


def check_pktgen(pktgen, name, pair, policy):
    """Two seconds of pktgen --json on both ports: the JSON must parse, every
    port must have sent, and the counts must agree with the driver's (and, on
    the e1000e, the device's) own."""
    what = f"pktgen --json {name} --iommu {policy}"
    result = run_json([pktgen, "--iommu", policy, "-d", pair[0], "-d", pair[1], "-t", "2", "--json", "-q"], what,
                      pair)
    for p in result["ports"]:
        counters = p.get("device_counters")
        if p.get("packets", 0) <= 0 or not isinstance(counters, dict):
            fail(f"{what}: port {p.get('device')}: no frames sent or no device_counters: {p}")
        if name == "e1000e" and p["device_tx_packets"] != p["packets"]:
            fail(f"{what}: port {p['device']}: pktgen counted {p['packets']} frames, the device's "
                 f"GPTC {p['device_tx_packets']}")
        if name == "virtio-net" and counters.get("doorbells", 0) + counters.get("doorbells_suppressed", 0) <= 0:
            fail(f"{what}: port {p['device']}: the driver counted no publishes: {counters}")
        print(f"    {p['device']}: {p['packets']} frames, device_tx_packets {p['device_tx_packets']}, "
              f"{len(counters)} device counters")


# A unicast address no port has: only a promiscuous port receives it.
NO_STATION = "02:00:00:00:00:99"


def run_fwd(fwd, what, pair, policy, extra):
    """Two seconds of fwd --json; returns its two port objects."""
    ports = run_json([fwd, "--iommu", policy, "-a", pair[0], "-b", pair[1], "-t", "2", "--json", "-q", *extra],
                     what, pair)["ports"]
    for p in ports:
        print(f"    {p['device']}: received {p['rx_packets']}, sent {p['tx_packets']}, dropped {p['dropped']}")
    return ports


def check_loop(what, into, out_of):
    """Frames received on `into` went out of `out_of` or were dropped there,
    and kept circulating: a burst or a backlog forwarded once is at most
    about 1000 frames (a tap keeps 1000), 2 s of circulation 50 000 or more
    here (--iommu strict too); 5000 leaves room for a loaded host."""
    if into["rx_packets"] < 5000:
        fail(f"{what}: {into['device']} received only {into['rx_packets']} frames in 2 s: frames for other "
             "stations are not forwarded (is the port promiscuous?)")
    if out_of["tx_packets"] + out_of["dropped"] != into["rx_packets"]:
        fail(f"{what}: {into['device']} received {into['rx_packets']} frames but {out_of['device']} sent "
             f"{out_of['tx_packets']} and dropped {out_of['dropped']}")


def check_fwd(pktgen, fwd, name, pair, policy):
    """fwd forwards frames for other stations, as testpmd does: its ports are
    promiscuous. A filtering port drops them, and a loop carrying only those
    dies; the VM bench saw it after testpmd's txonly, whose frames are for
    no station either."""
    # Seeds for no station: each port's loop lives only if the other port
    # takes them.
    what = f"fwd {name} --iommu {policy} --tx-first 1 --dst {NO_STATION}"
    ports = run_fwd(fwd, what, pair, policy, ["--tx-first", "1", "--dst", NO_STATION])
    check_loop(what, ports[0], ports[1])
    check_loop(what, ports[1], ports[0])
    if name != "virtio-net":
        return
    # The bench's case: frames another program left queued towards a closed
    # port. The taps keep up to 1000 (the e1000e hub keeps none across a
    # reset). Only pktgen's port is open, so no filter drops them first.
    for receiver in (1, 0):
        sender = 1 - receiver
        what = f"fwd {name} --iommu {policy} after pktgen -d {pair[sender]} --dst {NO_STATION}"
        sent = run_json([pktgen, "--iommu", policy, "-d", pair[sender], "-t", "1", "--dst", NO_STATION, "--json",
                         "-q"], f"pktgen -d {pair[sender]} --dst {NO_STATION}", [pair[sender]])
        if sent.get("dst") != NO_STATION or sent["ports"][0]["packets"] <= 0:
            fail(f"{what}: pktgen sent nothing, or not to {NO_STATION}: {sent}")
        ports = run_fwd(fwd, what, pair, policy, [])
        check_loop(what, ports[receiver], ports[sender])


def main():
    build_dir, (verify, pktcheck, disk2net, kernel_style, pktgen, fwd) = vm_script.start(
        "test_examples_iommu", "examples/nvme/nvme_verify", "examples/net/pktcheck",
        "examples/domain/disk2net", "examples/linux/e1000e_kernel_style", "examples/net/pktgen",
        "examples/net/fwd")
    nics = on_vfio(BENCH_NICS)
    nvmes = on_vfio(BENCH_NVME)
    if len(nics) < 2:
        fail(f"needs two e1000e (8086:10d3) on vfio-pci, found {nics}; "
             "tests/vm/guest-init binds them unless scripts/vm ran with --no-bind")
    virtio_nics = on_vfio(BENCH_VIRTIO_NICS)
    if len(virtio_nics) < 2:
        fail(f"needs two virtio-net (1af4:1041) on vfio-pci, found {virtio_nics}; "
             "tests/vm/guest-init binds them unless scripts/vm ran with --no-bind")
    if len(nvmes) != 2:
        fail(f"needs the bench's two NVMe controllers (1b36:0010) on vfio-pci, found {nvmes}")
    try:
        first = bench_nvme.controller(build_dir, 0)
        second = bench_nvme.controller(build_dir, 1)
    except RuntimeError as e:
        fail(str(e))
    for policy in ("pool", "strict"):
        # 36 passes: depths 1/8/64 x 4 sizes x 3 memory kinds.
        run([verify, "-d", first, "--iommu", policy, "--lbas", "2048"], f"nvme_verify --iommu {policy}",
            "36 passes, 0 failed")
        # The second controller: 4 KiB blocks (nsid 1), and 512-byte blocks
        # with 8 bytes of separate metadata each (nsid 2), under MDTS 1.
        for nsid, lbas in (("1", "256"), ("2", "2048")):
            run([verify, "-d", second, "-n", nsid, "--iommu", policy, "--lbas", lbas],
                f"nvme_verify -d {second} -n {nsid} --iommu {policy}", "36 passes, 0 failed")
        for name, pair in (("e1000e", nics), ("virtio-net", virtio_nics)):
            run([pktcheck, "--iommu", policy, "-a", pair[0], "-b", pair[1], "-n", "5000"],
                f"pktcheck {name} --iommu {policy}", "PASS")
            check_pktgen(pktgen, name, pair, policy)
            check_fwd(pktgen, fwd, name, pair, policy)
        # 1000 frames of 1 KiB: LBAs 0-1999, which nvme_verify just filled
        # with its patterns (a blank disk would compare zeros with zeros).
        run([disk2net, "--iommu", policy, "-d", first, "-a", nics[0], "-b", nics[1], "-n", "1000"],
            f"disk2net --iommu {policy}", "verified 1000, corrupt 0")
        # The kernel-style C driver over <dmakit/linux.h>: coherent rings,
        # kmem_cache buffers, a streaming map per frame.
        run([kernel_style, "--iommu", policy, "-a", nics[0], "-b", nics[1], "-n", "20000"],
            f"e1000e_kernel_style --iommu {policy}", "received 20000 intact")
    print("test_examples_iommu: PASS")


if __name__ == "__main__":
    main()
