// PCI capability list parser (lib/dmakit/pci/capabilities.*): the layouts of
// the NVMe controller and 82574 the VM bench runs (built by hand after QEMU
// 7.2's models and the 82574 datasheet), a real virtio-net config dump, and
// every malformed list a hostile device can present.
#include <dmakit/pci/capabilities.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace dmakit::pci {
namespace {

namespace cap = capability_id;
namespace ext = extended_capability_id;

// A config space image with the header fields the parser reads.
class ConfigSpace {
public:
    explicit ConfigSpace(std::size_t size = extended_config_space_size, std::uint16_t vendor = 0x1b36,
                         std::uint16_t device = 0x0010)
        : bytes_(size, 0) {
        put16(0x00, vendor);
        put16(0x02, device);
    }

    // Sets Status.Capabilities List and the pointer at 0x34.
    ConfigSpace& first(std::uint8_t pointer) {
        put16(0x06, 0x0010);
        bytes_[0x34] = pointer;
        return *this;
    }
    // ID and next at `offset`, then `body` bytes (little-endian registers).
    ConfigSpace& standard(std::uint8_t offset, std::uint8_t id, std::uint8_t next,
                          std::initializer_list<std::uint8_t> body = {}) {
        bytes_.at(offset) = id;
        bytes_.at(offset + 1u) = next;
        std::size_t at = offset + 2u;
        for (std::uint8_t b : body) bytes_.at(at++) = b;
        return *this;
    }
    // An extended header: id, version, next.
    ConfigSpace& extended(std::uint16_t offset, std::uint16_t id, std::uint8_t version, std::uint16_t next) {
        put32(offset, id | (std::uint32_t{version} << 16) | (std::uint32_t{next} << 20));
        return *this;
    }
    ConfigSpace& put16(std::size_t offset, std::uint16_t value) {
        bytes_.at(offset) = value & 0xff;
        bytes_.at(offset + 1) = value >> 8;
        return *this;
    }
    ConfigSpace& put32(std::size_t offset, std::uint32_t value) {
        put16(offset, value & 0xffff);
        return put16(offset + 2, value >> 16);
    }

    [[nodiscard]] Result<CapabilityList> parse() const { return parse_capabilities(bytes_); }

private:
    std::vector<std::uint8_t> bytes_;
};

// QEMU 7.2 hw/nvme: PM added at 0x60, PCIe v2 at 0x80, MSI-X at 0x40 (first
// free space); pci_add_capability puts each new one at the head, so the list
// runs 0x40 -> 0x80 -> 0x60, as `dmakit list -v` showed it in the test
// guest. No extended capabilities.
ConfigSpace qemu_nvme() {
    ConfigSpace c;
    c.first(0x40)
        .standard(0x40, cap::msix, 0x80, {0x40, 0x80, 0x00, 0x20, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00})
        .standard(0x80, cap::pci_express, 0x60, {0x02, 0x00})  // flags: version 2, endpoint
        .standard(0x60, cap::power_management, 0x00, {0x03, 0x00});
    return c;
}

// The 82574 (datasheet §9.5) as QEMU's e1000e lays it out: PM 0xc8, MSI
// 0xd0 (64-bit), PCIe v1 0xe0, MSI-X 0xa0; AER v2 at 0x100, serial number
// 0x140 (the order `dmakit list -v` showed in the test guest).
ConfigSpace qemu_e1000e() {
    ConfigSpace c(extended_config_space_size, 0x8086, 0x10d3);
    c.first(0xc8)
        .standard(0xc8, cap::power_management, 0xd0, {0x22, 0xc8})
        .standard(0xd0, cap::msi, 0xe0, {0x80, 0x00})  // control: 64-bit address
        .standard(0xe0, cap::pci_express, 0xa0, {0x01, 0x00})
        .standard(0xa0, cap::msix, 0x00, {0x04, 0x00})
        .extended(0x100, ext::advanced_error_reporting, 2, 0x140)
        .extended(0x140, ext::device_serial_number, 1, 0);
    return c;
}

void expect_standard(const CapabilityList& list, std::initializer_list<Capability> expected) {
    ASSERT_EQ(list.standard.size(), expected.size());
    std::size_t i = 0;
    for (const Capability& want : expected) {
        const Capability& got = list.standard[i++];
        EXPECT_EQ(got.id, want.id) << "entry " << i;
        EXPECT_EQ(got.offset, want.offset) << "entry " << i;
        EXPECT_EQ(got.length, want.length) << "entry " << i;
    }
}

// Refused with EPROTO and a message holding every piece.
void expect_malformed(const Result<CapabilityList>& result, std::initializer_list<const char*> pieces) {
    ASSERT_FALSE(result.ok()) << "a malformed list was accepted";
    EXPECT_EQ(result.error().code(), EPROTO);
    for (const char* piece : pieces) {
        EXPECT_NE(result.error().message().find(piece), std::string::npos)
            << "missing '" << piece << "' in: " << result.error();
    }
}

TEST(Capabilities, QemuNvme) {
    auto list = qemu_nvme().parse();
    ASSERT_TRUE(list.ok()) << list.error();
    expect_standard(*list, {{cap::msix, 0x40, 12}, {cap::pci_express, 0x80, 0x3c}, {cap::power_management, 0x60, 8}});
    EXPECT_TRUE(list->extended.empty());
    ASSERT_TRUE(list->find(cap::msix));
    EXPECT_EQ(list->find(cap::msix)->offset, 0x40);
    EXPECT_FALSE(list->find(cap::msi));
    EXPECT_TRUE(list->find_all(cap::vendor_specific).empty());
}

TEST(Capabilities, QemuE1000eWithExtendedList) {
    auto list = qemu_e1000e().parse();
    ASSERT_TRUE(list.ok()) << list.error();
    expect_standard(*list, {{cap::power_management, 0xc8, 8},
                            {cap::msi, 0xd0, 0x0e},
                            {cap::pci_express, 0xe0, 0x14},
                            {cap::msix, 0xa0, 12}});
    ASSERT_EQ(list->extended.size(), 2u);
    EXPECT_EQ(list->extended[0].id, ext::advanced_error_reporting);
    EXPECT_EQ(list->extended[0].version, 2);
    EXPECT_EQ(list->extended[0].offset, 0x100);
    ASSERT_TRUE(list->find_extended(ext::device_serial_number));
    EXPECT_EQ(list->find_extended(ext::device_serial_number)->offset, 0x140);
    EXPECT_EQ(list->find_extended(ext::device_serial_number)->length, 4);
    EXPECT_FALSE(list->find_extended(ext::sr_iov));
}

TEST(Capabilities, RealVirtioNetDumpVendorCapabilitiesCarryTheirLength) {
    // sysfs config of the development host's virtio-net (1af4:1041, modern),
    // read as root: bytes 0x00-0xaf, the rest of the 256 are zero. One vendor
    // capability per virtio structure (cfg_type at +3: common 1, ISR 3,
    // device 4, notify 2 with its multiplier, PCI cfg access 5), then MSI-X.
    static constexpr std::uint8_t dump[] = {
        0xf4, 0x1a, 0x41, 0x10, 0x06, 0x04, 0x10, 0x00, 0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x04, 0x00, 0x10, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf4, 0x1a, 0x41, 0x10,
        0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x09, 0x50, 0x10, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x38, 0x00, 0x00, 0x00,
        0x09, 0x60, 0x10, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x09, 0x70, 0x10, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
        0x09, 0x84, 0x14, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x60, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
        0x04, 0x00, 0x00, 0x00, 0x09, 0x98, 0x14, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0x00, 0x02, 0x80, 0x00, 0x80, 0x00, 0x00,
        0x00, 0x80, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    std::vector<std::uint8_t> config(dump, dump + sizeof dump);
    config.resize(config_space_size, 0);
    auto list = parse_capabilities(config);
    ASSERT_TRUE(list.ok()) << list.error();
    auto vendor = list->find_all(cap::vendor_specific);
    ASSERT_EQ(vendor.size(), 5u);
    const std::uint16_t offsets[] = {0x40, 0x50, 0x60, 0x70, 0x84};
    const std::uint16_t lengths[] = {16, 16, 16, 20, 20};
    const std::uint8_t cfg_types[] = {1, 3, 4, 2, 5};
    for (std::size_t i = 0; i < vendor.size(); ++i) {
        EXPECT_EQ(vendor[i].offset, offsets[i]);
        EXPECT_EQ(vendor[i].length, lengths[i]);
        EXPECT_EQ(config[vendor[i].offset + 3], cfg_types[i]);
    }
    EXPECT_EQ(list->find(cap::vendor_specific)->offset, 0x40);
    ASSERT_TRUE(list->find(cap::msix));
    EXPECT_EQ(list->find(cap::msix)->offset, 0x98);
    EXPECT_EQ(list->standard.size(), 6u);
    EXPECT_TRUE(list->extended.empty()) << "256 bytes hold no extended space";
}

TEST(Capabilities, NoListWhenStatusBitIsClear) {
    // The pointer is set but Status bit 4 is not: it means nothing (PCI 3.0 §6.7).
    ConfigSpace c = qemu_nvme();
    c.put16(0x06, 0x0000);
    auto list = c.parse();
    ASSERT_TRUE(list.ok()) << list.error();
    EXPECT_TRUE(list->standard.empty());
}

TEST(Capabilities, HeaderOnlyAndEmptyExtendedSpace) {
    ConfigSpace header(config_header_size);
    auto list = header.parse();
    ASSERT_TRUE(list.ok()) << list.error();
    EXPECT_TRUE(list->standard.empty());

    // All ones at 0x100: the function does not decode extended config space.
    ConfigSpace ones = qemu_nvme();
    ones.put32(0x100, 0xffffffff);
    list = ones.parse();
    ASSERT_TRUE(list.ok()) << list.error();
    EXPECT_TRUE(list->extended.empty());
}

TEST(Capabilities, SizeOutsideConfigSpaceIsEinval) {
    for (std::size_t size : {std::size_t{0}, std::size_t{63}, std::size_t{4097}}) {
        std::vector<std::uint8_t> bytes(size, 0);
        auto list = parse_capabilities(bytes);
        ASSERT_FALSE(list.ok()) << size;
        EXPECT_EQ(list.error().code(), EINVAL);
        EXPECT_NE(list.error().message().find("expected 64 to 4096"), std::string::npos) << list.error();
    }
}

TEST(Capabilities, ReservedPointerBitsAreMasked) {
    // PCI 3.0 §6.7: the low two bits of every pointer are reserved and
    // software masks them, so 0x43 means 0x40 and 0x62 means 0x60.
    ConfigSpace c;
    c.first(0x43).standard(0x40, cap::msix, 0x62).standard(0x60, cap::power_management, 0x00);
    auto list = c.parse();
    ASSERT_TRUE(list.ok()) << list.error();
    expect_standard(*list, {{cap::msix, 0x40, 12}, {cap::power_management, 0x60, 8}});
}

TEST(Capabilities, PointerIntoTheHeaderIsRefused) {
    ConfigSpace first;
    first.first(0x10);
    expect_malformed(first.parse(), {"capabilities pointer (0x34) points to 0x10, inside the 64-byte header"});

    ConfigSpace next = qemu_nvme();
    next.standard(0x60, cap::power_management, 0x3c);
    expect_malformed(next.parse(), {"next pointer of capability 0x1 (Power Management) at 0x60",
                                    "points to 0x3c, inside the 64-byte header"});
}

TEST(Capabilities, PointerBeyondTheBytesGivenIsRefused) {
    // Without root the kernel shows only the header: say so.
    ConfigSpace header(config_header_size);
    header.first(0x40);
    expect_malformed(header.parse(), {"points to 0x40, beyond the 64 bytes of config space given", "run as root"});

    ConfigSpace short_space(0x90);
    short_space.first(0x40).standard(0x40, cap::msix, 0x90);
    expect_malformed(short_space.parse(), {"next pointer of capability 0x11 (MSI-X) at 0x40",
                                           "points to 0x90, beyond the 144 bytes"});
}

TEST(Capabilities, LoopsAreRefused) {
    ConfigSpace self;
    self.first(0x40).standard(0x40, cap::msix, 0x40);
    expect_malformed(self.parse(), {"next pointer of capability 0x11 (MSI-X) at 0x40 points back to 0x40",
                                    "the list loops"});

    ConfigSpace longer = qemu_nvme();
    longer.standard(0x60, cap::power_management, 0x80);  // PM points back to PCIe
    expect_malformed(longer.parse(), {"points back to 0x80"});
}

TEST(Capabilities, LongestPossibleStandardListIsAccepted) {
    // One 4-byte capability in every dword from 0x40 to 0xfc: 48 entries.
    ConfigSpace c(config_space_size);
    c.first(0x40);
    for (unsigned at = 0x40; at <= 0xfc; at += 4) {
        c.standard(static_cast<std::uint8_t>(at), 0x0c, static_cast<std::uint8_t>(at == 0xfc ? 0 : at + 4));
    }
    auto list = c.parse();
    ASSERT_TRUE(list.ok()) << list.error();
    EXPECT_EQ(list->standard.size(), 48u);
    EXPECT_EQ(list->find_all(0x0c).size(), 48u);
}

TEST(Capabilities, EntryRunningPastItsSpaceIsRefused) {
    // MSI-X is 12 bytes: at 0xf8 it would end in extended space.
    ConfigSpace msix;
    msix.first(0xf8).standard(0xf8, cap::msix, 0x00);
    expect_malformed(msix.parse(), {"capability 0x11 (MSI-X) at 0xf8 is 12 bytes long",
                                    "runs past the end of the 256-byte standard config space"});

    // MSI with 64-bit address and per-vector masking is 0x18 bytes: it fits
    // at 0xe8 and not at 0xec.
    ConfigSpace msi;
    msi.first(0xe8).standard(0xe8, cap::msi, 0x00, {0x80, 0x01});
    auto fits = msi.parse();
    ASSERT_TRUE(fits.ok()) << fits.error();
    expect_standard(*fits, {{cap::msi, 0xe8, 0x18}});
    msi.first(0xec).standard(0xec, cap::msi, 0x00, {0x80, 0x01});
    expect_malformed(msi.parse(), {"capability 0x5 (MSI) at 0xec is 24 bytes long"});

    // A PCIe v2 capability needs 0x3c bytes of the 0x50 given.
    ConfigSpace pcie(0x50);
    pcie.first(0x40).standard(0x40, cap::pci_express, 0x00, {0x02, 0x00});
    expect_malformed(pcie.parse(), {"(PCI Express) at 0x40 is 60 bytes long", "the 80 bytes of config space given"});

    // Its length registers themselves beyond the bytes given.
    ConfigSpace cut(0x42);
    cut.first(0x40).standard(0x40, cap::msi, 0x00);
    expect_malformed(cut.parse(), {"capability 0x5 (MSI) at 0x40 runs past the end of the 66 bytes"});
}

TEST(Capabilities, VendorCapabilityLengthIsChecked) {
    ConfigSpace past;
    past.first(0xf0).standard(0xf0, cap::vendor_specific, 0x00, {0x20});
    expect_malformed(past.parse(), {"capability 0x9 (Vendor Specific) at 0xf0 is 32 bytes long",
                                    "runs past the end of the 256-byte standard config space"});

    ConfigSpace tiny;
    tiny.first(0x40).standard(0x40, cap::vendor_specific, 0x00, {0x02});
    expect_malformed(tiny.parse(), {"claims 2 bytes, fewer than its own ID, next and length bytes"});

    // The last dword of standard space holds a 4-byte vendor capability.
    ConfigSpace last;
    last.first(0xfc).standard(0xfc, cap::vendor_specific, 0x00, {0x04});
    auto list = last.parse();
    ASSERT_TRUE(list.ok()) << list.error();
    expect_standard(*list, {{cap::vendor_specific, 0xfc, 4}});
}

TEST(Capabilities, ExtendedPointerIntoStandardSpaceIsRefused) {
    ConfigSpace c = qemu_e1000e();
    c.extended(0x140, ext::device_serial_number, 1, 0x0fc);
    expect_malformed(c.parse(), {"next pointer of extended capability 0x3 (Device Serial Number) at 0x140",
                                 "points to 0xfc, inside the 256-byte standard config space"});
}

TEST(Capabilities, ExtendedPointerBeyondTheBytesGivenIsRefused) {
    ConfigSpace c(0x200);
    c.extended(0x100, ext::advanced_error_reporting, 1, 0x200);
    expect_malformed(c.parse(), {"points to 0x200, beyond the 512 bytes of config space given"});
}

TEST(Capabilities, ExtendedLoopsAreRefused) {
    ConfigSpace c = qemu_e1000e();
    c.extended(0x140, ext::device_serial_number, 1, 0x100);
    expect_malformed(c.parse(), {"points back to 0x100: the list loops"});

    // All ones after a valid entry: ID 0xffff whose next (0xffc) is itself.
    ConfigSpace ones = qemu_e1000e();
    ones.extended(0x140, ext::device_serial_number, 1, 0xffc).put32(0xffc, 0xffffffff);
    expect_malformed(ones.parse(), {"extended capability 0xffff (unknown) at 0xffc points back to 0xffc"});
}

TEST(Capabilities, LongestPossibleExtendedListIsAccepted) {
    ConfigSpace c;
    for (unsigned at = 0x100; at <= 0xffc; at += 4) {
        c.extended(static_cast<std::uint16_t>(at), ext::advanced_error_reporting, 1,
                   static_cast<std::uint16_t>(at == 0xffc ? 0 : at + 4));
    }
    auto list = c.parse();
    ASSERT_TRUE(list.ok()) << list.error();
    EXPECT_EQ(list->extended.size(), 960u);
}

TEST(Capabilities, VendorExtendedCapabilityLengthIsChecked) {
    ConfigSpace good = qemu_e1000e();
    good.extended(0x140, ext::device_serial_number, 1, 0x200)
        .extended(0x200, ext::vendor_specific, 1, 0)
        .put32(0x204, (0x18u << 20) | 0x0001);  // VSEC ID 1, rev 0, 24 bytes
    auto list = good.parse();
    ASSERT_TRUE(list.ok()) << list.error();
    ASSERT_TRUE(list->find_extended(ext::vendor_specific));
    EXPECT_EQ(list->find_extended(ext::vendor_specific)->length, 0x18);

    ConfigSpace past = qemu_e1000e();
    past.extended(0x140, ext::device_serial_number, 1, 0xff8)
        .extended(0xff8, ext::designated_vendor_specific, 1, 0)
        .put32(0xffc, 0x10u << 20);
    expect_malformed(past.parse(), {"extended capability 0x23 (Designated Vendor-Specific) at 0xff8 is 16 bytes long",
                                    "runs past the end of the 4096 bytes"});

    ConfigSpace tiny = qemu_e1000e();
    tiny.extended(0x140, ext::vendor_specific, 1, 0).put32(0x144, 4u << 20);
    expect_malformed(tiny.parse(), {"claims 4 bytes, fewer than its own 8-byte header"});

    ConfigSpace cut(0x104);
    cut.extended(0x100, ext::vendor_specific, 1, 0);
    expect_malformed(cut.parse(), {"(Vendor-Specific Extended) at 0x100 runs past the end of the 260 bytes"});
}

TEST(Capabilities, Names) {
    EXPECT_EQ(capability_name(cap::power_management), "Power Management");
    EXPECT_EQ(capability_name(cap::msi), "MSI");
    EXPECT_EQ(capability_name(cap::vendor_specific), "Vendor Specific");
    EXPECT_EQ(capability_name(cap::pci_express), "PCI Express");
    EXPECT_EQ(capability_name(cap::msix), "MSI-X");
    EXPECT_EQ(capability_name(0x15), "Flattening Portal Bridge");
    EXPECT_EQ(capability_name(0x00), "unknown");
    EXPECT_EQ(capability_name(0x16), "unknown");
    EXPECT_EQ(extended_capability_name(ext::advanced_error_reporting), "Advanced Error Reporting");
    EXPECT_EQ(extended_capability_name(ext::sr_iov), "SR-IOV");
    EXPECT_EQ(extended_capability_name(ext::designated_vendor_specific), "Designated Vendor-Specific");
    EXPECT_EQ(extended_capability_name(0x27), "Lane Margining at the Receiver");
    EXPECT_EQ(extended_capability_name(0x14), "unknown");
    EXPECT_EQ(extended_capability_name(0x28), "unknown");
}

}  // namespace
}  // namespace dmakit::pci
