// Fuzzes the PCI capability list parser (lib/dmakit/pci/capabilities.*): the
// input is a function's config space as a device presents it, of any size.
// A hostile device chooses every byte, so whatever the parser accepts must be
// safe to use: every entry inside the bytes given and in its own space,
// aligned, no entry twice, the walk bounded.
#include "fuzz_check.hpp"

#include <dmakit/pci/capabilities.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

using namespace dmakit::pci;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // An exact-size heap copy, so ASan sees any read past the end.
    std::vector<std::uint8_t> config(data, data + size);
    auto result = parse_capabilities(config);
    if (size < config_header_size || size > extended_config_space_size) {
        FUZZ_CHECK(!result.ok() && result.error().code() == EINVAL);
        return 0;
    }
    if (!result.ok()) {
        FUZZ_CHECK(result.error().code() == EPROTO && !result.error().message().empty());
        return 0;
    }
    const CapabilityList& list = *result;
    const std::size_t standard_limit = std::min(size, config_space_size);
    unsigned checksum = 0;  // reads every byte an entry claims

    FUZZ_CHECK(list.standard.size() <= (config_space_size - config_header_size) / 4);
    std::set<std::uint16_t> seen;
    for (const Capability& c : list.standard) {
        FUZZ_CHECK(c.offset >= config_header_size && c.offset % 4 == 0);
        FUZZ_CHECK(c.length >= 2 && c.offset + c.length <= standard_limit);
        FUZZ_CHECK(seen.insert(c.offset).second);
        FUZZ_CHECK(config[c.offset] == c.id);
        if (c.id == capability_id::vendor_specific) FUZZ_CHECK(c.length >= 3 && c.length == config[c.offset + 2]);
        for (std::size_t i = 0; i < c.length; ++i) checksum += config[c.offset + i];
        // Lookups agree with the list.
        auto first = list.find(c.id);
        FUZZ_CHECK(first && first->offset == list.find_all(c.id).front().offset);
    }

    FUZZ_CHECK(list.extended.size() <= (extended_config_space_size - config_space_size) / 4);
    if (size < config_space_size + 4) FUZZ_CHECK(list.extended.empty());
    seen.clear();
    for (const ExtendedCapability& c : list.extended) {
        FUZZ_CHECK(c.offset >= config_space_size && c.offset % 4 == 0);
        FUZZ_CHECK(c.length >= 4 && c.offset + c.length <= size);
        FUZZ_CHECK(seen.insert(c.offset).second);
        FUZZ_CHECK((config[c.offset] | (config[c.offset + 1] << 8)) == c.id);
        for (std::size_t i = 0; i < c.length; ++i) checksum += config[c.offset + i];
        FUZZ_CHECK(list.find_extended(c.id).has_value());
    }
    // Keep the reads from being optimised away.
    volatile unsigned sink = checksum;
    (void)sink;
    return 0;
}
