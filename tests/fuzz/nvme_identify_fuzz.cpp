// Fuzzes the NVMe Identify and log page parsers (drivers/nvme/identify.*,
// log_pages.*) with buffers a hostile controller could have written. The
// parsers must refuse what they cannot use with an Error and never read out
// of bounds; what they accept must be safe to use through the accessors.
#include "fuzz_check.hpp"

#include <dmakit/drivers/nvme/identify.hpp>
#include <dmakit/drivers/nvme/log_pages.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

using namespace dmakit::nvme;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    const auto mpsmin = in.ConsumeIntegralInRange<unsigned>(0, 15);  // CAP.MPSMIN, 4 bits
    const auto nsid = in.ConsumeIntegral<std::uint32_t>();
    const auto nn = in.ConsumeIntegral<std::uint32_t>();
    const std::vector<std::uint8_t> rest = in.ConsumeRemainingBytes<std::uint8_t>();

    // Identify data is always a 4096-byte page; a short input is zero-padded.
    std::array<std::byte, 4096> page{};
    for (std::size_t i = 0; i < rest.size() && i < page.size(); ++i) page[i] = std::byte{rest[i]};

    if (auto c = parse_identify_controller(page, std::uint64_t{4096} << mpsmin); c.ok()) {
        FUZZ_CHECK(c->sq_entry_size() >= 64 && c->cq_entry_size() >= 16);
        if (c->max_transfer_bytes) FUZZ_CHECK(*c->max_transfer_bytes <= (std::uint64_t{1} << 32));
        for (char ch : c->model) FUZZ_CHECK(ch >= 0x20 && ch < 0x7f);
    }
    if (auto ns = parse_identify_namespace(page, nsid); ns.ok()) {
        FUZZ_CHECK(ns->lba_formats.size() == std::size_t{ns->nlbaf} + 1);
        FUZZ_CHECK(ns->format_index() < ns->lba_formats.size());
        FUZZ_CHECK(ns->block_size() >= 512 && ns->block_size() <= 65536);
        FUZZ_CHECK(ns->ncap <= ns->nsze && ns->nuse <= ns->ncap);
        FUZZ_CHECK((ns->size_bytes() >> ns->current_format().lbads) == ns->nsze);
    }
    if (auto list = parse_active_namespace_list(page, nsid, nn); list.ok()) {
        FUZZ_CHECK(list->size() <= 1024);
        std::uint32_t previous = nsid;
        for (std::uint32_t id : *list) {
            FUZZ_CHECK(id > previous && id != 0xFFFFFFFFu);
            if (nn != 0) FUZZ_CHECK(id <= nn);
            previous = id;
        }
    }
    // Log pages take the device's length as is (no padding).
    const auto* bytes = reinterpret_cast<const std::byte*>(rest.data());
    if (auto smart = parse_smart_log({bytes, rest.size()}); smart.ok()) {
        FUZZ_CHECK(smart->temperature_kelvin != 0);
    }
    if (auto errors = parse_error_log({bytes, rest.size()}); errors.ok()) {
        FUZZ_CHECK(errors->size() <= rest.size() / 64);
        for (const auto& e : *errors) FUZZ_CHECK(e.error_count != 0);
    }
    return 0;
}
