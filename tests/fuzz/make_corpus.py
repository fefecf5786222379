#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz harness into tests/fuzz/corpus/<harness>/.

Each seed is a small valid input: well-formed device data for the parsers, and
short scripts of normal queue/ring use for the stateful harnesses, encoded the
way the harnesses read them with FuzzedDataProvider (integers are taken from
the end of the input, most significant byte first; bulk bytes and strings
from the front). Deterministic: running it again rewrites the same files.

Usage: tests/fuzz/make_corpus.py [OUTPUT_DIR]   (default: tests/fuzz/corpus)
"""
import struct
import sys
from pathlib import Path


class Script:
    """Builds an input for FuzzedDataProvider: draws go to the tail, reversed."""

    def __init__(self):
        self.front = b""
        self.draws = []  # bytes in consumption order

    def int(self, value, lo, hi):
        span = hi - lo
        assert lo <= value <= hi
        v = value - lo
        n = 0
        while n < 8 and (span >> (8 * n)) > 0:
            n += 1
        # FuzzedDataProvider reads the most significant byte first.
        for i in reversed(range(n)):
            self.draws.append((v >> (8 * i)) & 0xFF)
        return self

    def u8(self, v): return self.int(v, 0, 0xFF)
    def u16(self, v): return self.int(v, 0, 0xFFFF)
    def u32(self, v): return self.int(v, 0, 0xFFFFFFFF)
    def u64(self, v): return self.int(v, 0, 0xFFFFFFFFFFFFFFFF)
    def bool(self, v): return self.u8(1 if v else 0)

    def bytes(self):
        return self.front + bytes(reversed(self.draws))


def put(buf, offset, fmt, *values):
    struct.pack_into("<" + fmt, buf, offset, *values)


def ascii_field(buf, offset, length, text):
    buf[offset:offset + length] = text.encode().ljust(length, b" ")


# ---- nvme_identify: mpsmin, nsid, nn, then the page ----
def identify_seed(page, mpsmin=0, nsid=1, nn=1):
    s = Script().int(mpsmin, 0, 15).u32(nsid).u32(nn)
    s.front = bytes(page)
    return s.bytes()


def identify_controller():
    b = bytearray(4096)
    put(b, 0, "HH", 0x1B36, 0x1AF4)
    ascii_field(b, 4, 20, "deadbeef")
    ascii_field(b, 24, 40, "QEMU NVMe Ctrl")
    ascii_field(b, 64, 8, "7.2.0")
    b[77] = 7  # MDTS
    put(b, 78, "HI", 0, 0x10400)
    put(b, 256, "H", 0x000A)
    b[512], b[513] = 0x66, 0x44
    put(b, 514, "HIH", 0, 1, 0x15)
    b[525] = 1
    nqn = b"nqn.2019-08.org.qemu:deadbeef"
    b[768:768 + len(nqn)] = nqn
    return b


def identify_namespace(lbads=12, nlbaf=1, flbas=1, blocks=0x40000):
    b = bytearray(4096)
    put(b, 0, "QQQ", blocks, blocks, blocks // 2)
    b[25], b[26] = nlbaf, flbas
    put(b, 128, "I", 9 << 16)
    put(b, 132, "I", lbads << 16)
    return b


def namespace_list(ids):
    b = bytearray(4096)
    for i, nsid in enumerate(ids):
        put(b, 4 * i, "I", nsid)
    return b


def smart_log():
    b = bytearray(512)
    put(b, 1, "H", 300)
    b[3], b[4], b[5] = 100, 10, 1
    put(b, 32, "Q", 1234)
    put(b, 128, "Q", 42)
    return b


def error_log(entries):
    b = bytearray(64 * entries)
    for i in range(entries):
        put(b, 64 * i, "QHHHHQI", i + 1, 1, 7, 0x4004, 0, 100 + i, 1)
    return b


# ---- nvme_queue: depth, then steps ----
SUBMIT, RING, DEVICE, POLL, SCAN, CANCEL = range(6)


class QueueScript(Script):
    def __init__(self, depth):
        super().__init__()
        self.depth = depth
        self.submitted = 0
        self.int(depth, 2, 64)

    def step(self, s): return self.int(s, 0, 5)

    def submit(self, deadline_ms=1000):
        self.step(SUBMIT).int(deadline_ms, 0, 1000)
        self.submitted += 1
        return self

    def ring(self): return self.step(RING)

    def complete(self, offset, command_index, sq_head, status=0):
        self.step(DEVICE).int(offset, 0, self.depth - 1).u32(0).u16(sq_head).bool(True)
        self.bool(True)
        if self.submitted > 1:
            self.int(command_index, 0, self.submitted - 1)
        self.u16(status).bool(True)  # expected phase
        return self

    def poll(self, max_entries): return self.step(POLL).int(max_entries, 0, 128)
    def scan(self, now_ms): return self.step(SCAN).int(now_ms, 0, 1000)
    def cancel(self): return self.step(CANCEL)


def queue_seeds():
    seeds = {}
    q = QueueScript(8)
    q.submit().submit().ring().complete(0, 0, 1).complete(1, 1, 2).poll(8)
    seeds["submit_ring_complete"] = q.bytes()
    q = QueueScript(4)  # wraps the rings: 3 rounds of 3 commands
    for r in range(3):
        q.submit().submit().submit().ring()
        for i in range(3):
            q.complete(i, 3 * r + i, (3 * r + i + 1) % 4)
        q.poll(3)
    seeds["wrap"] = q.bytes()
    q = QueueScript(8)
    q.submit(10).ring().scan(20).complete(0, 0, 1, status=0x4004).poll(1)
    seeds["timeout_then_error_status"] = q.bytes()
    q = QueueScript(8)
    q.submit().submit().complete(0, 0, 1).poll(4).ring().cancel()
    seeds["unrung_completion_then_cancel"] = q.bytes()
    q = QueueScript(8)
    q.submit().ring().complete(0, 0, 1).complete(1, 0, 1).poll(8)
    seeds["duplicate_completion"] = q.bytes()
    return seeds


# ---- e1000e_rings: ring size, rs_interval, then steps ----
RX_REFILL, RX_DEVICE, RX_HARVEST, TX_ENQUEUE, TX_DEVICE, TX_RECLAIM, RELEASE = range(7)


class RingScript(Script):
    def __init__(self, size_shift, rs_interval):
        super().__init__()
        self.size = 8 << size_shift
        self.int(size_shift, 0, 3).int(rs_interval, 1, self.size // 2)

    def step(self, s): return self.int(s, 0, 6)

    def rx_refill(self, n, wanted): return self.step(RX_REFILL).int(n, 0, wanted)

    def rx_frame(self, slot, length, status=0x03, errors=0):
        upper = length | (status << 32) | (errors << 40)
        return self.step(RX_DEVICE).int(slot, 0, self.size - 1).bool(False).u64(upper)

    def rx_harvest(self, n): return self.step(RX_HARVEST).int(n, 0, self.size)

    def tx_enqueue(self, lengths):
        self.step(TX_ENQUEUE).int(len(lengths), 0, self.size)
        for n in lengths:
            self.int(n, 0, 1600)
        return self

    def tx_done(self, slot): return self.step(TX_DEVICE).int(slot, 0, self.size - 1).bool(False).u64(1 << 32)
    def tx_reclaim(self, n): return self.step(TX_RECLAIM).int(n, 0, self.size)
    def release(self, rx): return self.step(RELEASE).bool(rx)


def ring_seeds():
    seeds = {}
    r = RingScript(0, 4)
    r.rx_refill(7, 7).rx_frame(0, 60).rx_frame(1, 1514).rx_harvest(8)
    seeds["rx_two_frames"] = r.bytes()
    r = RingScript(0, 4)
    r.rx_refill(7, 7).rx_frame(0, 60, status=0x01).rx_frame(1, 60).rx_frame(2, 0).rx_frame(3, 60, errors=0x01)
    r.rx_harvest(8).release(True)
    seeds["rx_bad_frames"] = r.bytes()
    r = RingScript(0, 2)
    r.tx_enqueue([60, 60, 1514, 100]).tx_done(1).tx_done(3).tx_reclaim(8)
    seeds["tx_reclaim"] = r.bytes()
    r = RingScript(1, 8)
    r.tx_enqueue([64] * 15).tx_done(14).tx_reclaim(16).tx_enqueue([0, 1600]).release(False)
    seeds["tx_full_and_invalid"] = r.bytes()
    return seeds


# ---- virtio_queues: ring size (2^0..2^5), RX interrupts, then steps ----
V_RX_REFILL, V_RX_DEVICE, V_RX_HARVEST, V_TX_ENQUEUE, V_TX_DEVICE, V_TX_RECLAIM, V_RELEASE = range(7)
V_COMPLETE, V_ENTRY, V_USED_IDX, V_BUMP, V_FLAGS, V_SCRIBBLE = range(6)
V_RX_WRITABLE = 12 + 2048  # header + room of the harness's buffers


class VirtioScript(Script):
    def __init__(self, size_shift, interrupts=False):
        super().__init__()
        self.size = 1 << size_shift
        self.int(size_shift, 0, 5).bool(interrupts)

    def step(self, s): return self.int(s, 0, 6)
    def rx_refill(self, n, wanted): return self.step(V_RX_REFILL).int(n, 0, wanted)

    def rx_complete(self, length, header_byte=0):
        self.step(V_RX_DEVICE).int(V_COMPLETE, 0, 5).int(length, 0, V_RX_WRITABLE + 16)
        return self.u8(header_byte)

    def rx_harvest(self, n): return self.step(V_RX_HARVEST).int(n, 0, self.size + 2)

    def tx_enqueue(self, lengths):
        self.step(V_TX_ENQUEUE).int(len(lengths), 0, self.size + 2)
        for n in lengths:
            self.int(n, 0, 1600)
        return self

    def tx_complete(self): return self.step(V_TX_DEVICE).int(V_COMPLETE, 0, 5)
    def tx_used_idx(self, idx): return self.step(V_TX_DEVICE).int(V_USED_IDX, 0, 5).u16(idx)

    def rx_entry(self, slot, ident, length):
        return self.step(V_RX_DEVICE).int(V_ENTRY, 0, 5).int(slot, 0, self.size - 1).int(ident, 0, self.size + 2).u32(length)

    def rx_bump(self, n): return self.step(V_RX_DEVICE).int(V_BUMP, 0, 5).int(n, 1, 3)
    def tx_reclaim(self, n): return self.step(V_TX_RECLAIM).int(n, 0, self.size + 2)
    def release(self, rx): return self.step(V_RELEASE).bool(rx)


def virtio_seeds():
    seeds = {}
    v = VirtioScript(3)
    v.rx_refill(4, 8).rx_complete(12 + 60).rx_complete(12 + 1514).rx_harvest(4)
    seeds["rx_two_frames"] = v.bytes()
    v = VirtioScript(3, interrupts=True)
    v.rx_refill(4, 8).rx_complete(5).rx_complete(12).rx_complete(V_RX_WRITABLE + 16).rx_complete(72, 1)
    v.rx_harvest(8).release(True)
    seeds["rx_bad_lengths_and_header"] = v.bytes()
    v = VirtioScript(3)
    v.tx_enqueue([60, 1514, 0]).tx_complete().tx_complete().tx_reclaim(8)
    seeds["tx_reclaim_and_invalid"] = v.bytes()
    v = VirtioScript(3)
    v.tx_enqueue([60] * 10).tx_used_idx(1000).tx_reclaim(8).release(False)
    seeds["tx_full_then_bad_used_index"] = v.bytes()
    v = VirtioScript(2)
    v.rx_refill(2, 4).rx_entry(0, 6, 72).rx_bump(1).rx_complete(72).rx_harvest(4)
    seeds["rx_unknown_id"] = v.bytes()
    return seeds


# ---- vfio_info: selector byte, then the reply ----
def region_info(flags, size, sparse=None):
    caps = b""
    cap_offset = 0
    if sparse is not None:
        flags |= 8  # VFIO_REGION_INFO_FLAG_CAPS
        cap_offset = 32
        caps = struct.pack("<HHIII", 1, 1, 0, len(sparse), 0)
        for off, length in sparse:
            caps += struct.pack("<QQ", off, length)
    fixed = struct.pack("<IIIIQQ", 32 + len(caps), flags, 0, cap_offset, size, 0)
    return b"\x00" + fixed + caps


def type1_info(ranges, avail):
    cap1 = struct.pack("<HHIII", 1, 1, 0, len(ranges), 0)
    for start, end in ranges:
        cap1 += struct.pack("<QQ", start, end)
    cap2_at = 24 + len(cap1)
    cap1 = struct.pack("<HHI", 1, 1, cap2_at) + cap1[8:]
    cap2 = struct.pack("<HHII", 3, 1, 0, avail)
    fixed = struct.pack("<IIQII", 24 + len(cap1) + len(cap2), 3, 0x40201000, 24, 0)
    return b"\x01" + fixed + cap1 + cap2


# ---- pci_text: address string (ended by "\\n"), then file text ----
def pci_text(address, text):
    return address.encode() + b"\\n" + text.encode()


IOMEM = """00000000-00000fff : Reserved
00001000-0009fbff : System RAM
000a0000-000bffff : PCI Bus 0000:00
fe000000-febfffff : PCI Bus 0000:00
  fe000000-fe7fffff : 0000:00:02.0
  feb80000-febbffff : 0000:00:03.0
fed00000-fed003ff : PNP0103:00
100000000-17fffffff : System RAM
"""
RESOURCE = """0x00000000febd0000 0x00000000febd3fff 0x0000000000140204
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x000000000000c000 0x000000000000c03f 0x0000000000040101
0x00000000fe000000 0x00000000fe003fff 0x000000000014220c
"""


# ---- pci_capabilities: the config space bytes ----
class Config:
    """A config space image: header ids, Status bit 4 and the capability lists."""

    def __init__(self, size=4096, vendor=0x1B36, device=0x0010):
        self.b = bytearray(size)
        put(self.b, 0, "HH", vendor, device)

    def first(self, pointer):
        put(self.b, 0x06, "H", 0x0010)
        self.b[0x34] = pointer
        return self

    def cap(self, offset, cap_id, nxt, body=b""):
        self.b[offset:offset + 2 + len(body)] = bytes([cap_id, nxt]) + bytes(body)
        return self

    def ext(self, offset, cap_id, version, nxt):
        put(self.b, offset, "I", cap_id | (version << 16) | (nxt << 20))
        return self


def capability_seeds():
    nvme = Config().first(0x40)  # QEMU 7.2 hw/nvme: MSI-X, PCIe v2, PM
    nvme.cap(0x40, 0x11, 0x80, b"\x40\x80").cap(0x80, 0x10, 0x60, b"\x02\x00").cap(0x60, 0x01, 0x00, b"\x03\x00")
    e1000e = Config(4096, 0x8086, 0x10D3).first(0xC8)  # 82574: PM, MSI 64-bit, PCIe v1, MSI-X; AER v2, DSN
    e1000e.cap(0xC8, 0x01, 0xD0, b"\x22\xc8").cap(0xD0, 0x05, 0xE0, b"\x80\x00")
    e1000e.cap(0xE0, 0x10, 0xA0, b"\x01\x00").cap(0xA0, 0x11, 0x00, b"\x04\x00")
    e1000e.ext(0x100, 0x0001, 2, 0x140).ext(0x140, 0x0003, 1, 0x200).ext(0x200, 0x000B, 1, 0)
    put(e1000e.b, 0x204, "I", (0x18 << 20) | 1)  # VSEC of 24 bytes
    virtio = Config(256, 0x1AF4, 0x1041).first(0x40)  # a real virtio-net-pci: 5 vendor caps, MSI-X
    for offset, nxt, length, kind in [(0x40, 0x50, 16, 1), (0x50, 0x60, 16, 3), (0x60, 0x70, 16, 4),
                                      (0x70, 0x84, 20, 2), (0x84, 0x98, 20, 5)]:
        virtio.cap(offset, 0x09, nxt, bytes([length, kind]))
    virtio.cap(0x98, 0x11, 0x00, b"\x02\x80")
    header_only = Config(64, 0x8086, 0x29C0).first(0x40)  # what a non-root sysfs read gives
    return {
        "qemu_nvme": bytes(nvme.b),
        "e1000e_extended": bytes(e1000e.b),
        "virtio_vendor": bytes(virtio.b),
        "header_only": bytes(header_only.b),
    }


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "corpus"
    corpus = {
        "nvme_identify": {
            "controller": identify_seed(identify_controller()),
            "namespace_4k": identify_seed(identify_namespace()),
            "namespace_512": identify_seed(identify_namespace(lbads=9, nlbaf=0, flbas=0)),
            "namespace_list": identify_seed(namespace_list([1, 2, 5, 9]), nsid=0, nn=16),
            "smart_log": identify_seed(smart_log()),
            "error_log": identify_seed(error_log(3)),
        },
        "nvme_queue": queue_seeds(),
        "e1000e_rings": ring_seeds(),
        "virtio_queues": virtio_seeds(),
        "vfio_info": {
            "bar0_mmap": region_info(7, 0x4000),
            "bar0_sparse": region_info(7, 0x4000, [(0, 0x2000), (0x3000, 0x1000)]),
            "config_space": region_info(3, 0x1000),
            "type1": type1_info([(0, 0xFEDFFFFF), (0xFEF00000, (1 << 39) - 1)], 65535),
        },
        "pci_text": {
            "iomem": pci_text("0000:00:03.0", IOMEM),
            "resource": pci_text("0000:00:02.0", RESOURCE),
            "address_domain": pci_text("10000:ff:1f.7", ""),
        },
        "pci_capabilities": capability_seeds(),
        "cli": {
            "bind": b"bind\x000000:00:03.0\x00--sysfs-root\x00/tmp/sys",
            "hugepages": b"--pci-ids=/usr/share/misc/pci.ids\x00hugepages\x00--reserve\x00512M\x00--node=0",
            "sizes": b"4k\x0016M\x001g\x00pool\x00strict\x00--help\x000.5\x00nan\x001e400",
            "missing_value": b"list\x00--json\x00--sysfs-root",
        },
    }
    for harness, seeds in corpus.items():
        d = out / harness
        d.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (d / name).write_bytes(data)
    print(f"make_corpus: wrote {sum(len(s) for s in corpus.values())} seeds under {out}")


if __name__ == "__main__":
    main()
