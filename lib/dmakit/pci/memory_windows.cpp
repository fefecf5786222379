#include <dmakit/pci/memory_windows.hpp>

#include <dmakit/support/text_file.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <optional>

namespace dmakit::pci {

namespace {

// include/linux/ioport.h
constexpr std::uint64_t kIoresourceMem = 0x200;
constexpr std::uint64_t kIoresourceDisabled = 0x10000000;
constexpr std::uint64_t kIoresourceUnset = 0x20000000;

// drivers/pci: resources 0-5 are the BARs, 6 the expansion ROM.
constexpr std::size_t kBarCount = 6;
constexpr std::size_t kRomIndex = 6;

// A whole token of 1 to 16 hex digits, nothing else (no sign, no prefix).
std::optional<std::uint64_t> hex_token(std::string_view token) {
    if (token.empty() || token.size() > 16) return std::nullopt;
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value, 16);
    if (ec != std::errc() || end != token.data() + token.size()) return std::nullopt;
    return value;
}

// Calls `on_line` for each line of `text` (the last one may lack '\n').
template <typename OnLine>
void for_each_line(std::string_view text, OnLine on_line) {
    while (!text.empty()) {
        const std::size_t newline = text.find('\n');
        const std::string_view line = text.substr(0, newline);
        on_line(line);
        if (newline == std::string_view::npos) break;
        text.remove_prefix(newline + 1);
    }
}

bool blank(std::string_view line) {
    return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

struct IomemEntry {
    std::uint64_t start;
    std::uint64_t last;
    std::string_view name;
};

// "  fe800000-febfffff : PCI Bus 0000:00"
std::optional<IomemEntry> parse_iomem_line(std::string_view line) {
    const std::size_t first = line.find_first_not_of(' ');
    if (first == std::string_view::npos) return std::nullopt;
    line.remove_prefix(first);
    const std::size_t dash = line.find('-');
    const std::size_t separator = line.find(" : ");
    if (dash == std::string_view::npos || separator == std::string_view::npos || dash > separator) {
        return std::nullopt;
    }
    auto start = hex_token(line.substr(0, dash));
    auto last = hex_token(line.substr(dash + 1, separator - dash - 1));
    if (!start || !last || *last < *start) return std::nullopt;
    std::string_view name = line.substr(separator + 3);
    while (!name.empty() && (name.back() == '\r' || name.back() == ' ')) name.remove_suffix(1);
    if (name.empty()) return std::nullopt;
    return IomemEntry{*start, *last, name};
}

bool is_pci_window_name(std::string_view name) {
    return name.starts_with("PCI Bus ") || name.starts_with("PCI MMCONFIG") ||
           name.starts_with("PCI ECAM");
}

// "0x00000000febf1000 0x00000000febf1fff 0x0000000000040200" -> three numbers.
std::optional<std::array<std::uint64_t, 3>> parse_resource_line(std::string_view line) {
    std::array<std::uint64_t, 3> values{};
    std::size_t count = 0;
    while (!line.empty()) {
        const std::size_t token_start = line.find_first_not_of(" \t\r");
        if (token_start == std::string_view::npos) break;
        line.remove_prefix(token_start);
        const std::size_t token_end = std::min(line.find_first_of(" \t\r"), line.size());
        std::string_view token = line.substr(0, token_end);
        line.remove_prefix(token_end);
        if (count == values.size() || !(token.starts_with("0x") || token.starts_with("0X"))) {
            return std::nullopt;
        }
        auto value = hex_token(token.substr(2));
        if (!value) return std::nullopt;
        values[count++] = *value;
    }
    if (count != values.size()) return std::nullopt;
    return values;
}

std::string resource_name(std::string_view device, std::size_t index) {
    std::string name(device);
    if (index < kBarCount) return name + " BAR " + std::to_string(index);
    if (index == kRomIndex) return name + " ROM";
    return name + " resource " + std::to_string(index);
}

}  // namespace

IomemWindows parse_iomem(std::string_view text) {
    IomemWindows result;
    bool any_address = false;
    for_each_line(text, [&](std::string_view line) {
        if (blank(line)) return;
        auto entry = parse_iomem_line(line);
        if (!entry) {
            ++result.skipped_lines;
            return;
        }
        ++result.entries;
        if (entry->start != 0 || entry->last != 0) any_address = true;
        if (is_pci_window_name(entry->name)) {
            result.windows.push_back({entry->start, entry->last, std::string(entry->name)});
        }
    });
    result.addresses_hidden = result.entries > 0 && !any_address;
    if (result.addresses_hidden) result.windows.clear();
    return result;
}

ResourceWindows parse_resource_file(std::string_view text, std::string_view device) {
    ResourceWindows result;
    std::size_t index = 0;
    for_each_line(text, [&](std::string_view line) {
        if (blank(line)) return;
        const std::size_t this_index = index++;
        auto values = parse_resource_line(line);
        if (!values) {
            ++result.skipped_lines;
            return;
        }
        const auto [start, last, flags] = *values;
        if ((flags & kIoresourceMem) == 0) return;  // I/O ports or no resource
        if ((flags & (kIoresourceUnset | kIoresourceDisabled)) != 0) return;
        if (start == 0 && last == 0) return;  // not assigned
        if (last < start) {
            ++result.skipped_lines;
            return;
        }
        result.windows.push_back({start, last, resource_name(device, this_index)});
    });
    return result;
}

Result<std::vector<MemoryWindow>> read_memory_windows(const MemoryWindowSources& sources,
                                                      const Logger& logger) {
    std::vector<MemoryWindow> windows;

    auto iomem_text = read_text_file(sources.iomem);
    if (!iomem_text.ok()) {
        logger.warning("cannot read " + sources.iomem + " (" + dmakit::to_string(iomem_text.error()) +
                       "): IOVAs avoid the PCI BARs and bridge windows from sysfs only, not the "
                       "host bridge windows");
    } else {
        IomemWindows iomem = parse_iomem(*iomem_text);
        if (iomem.addresses_hidden) {
            logger.warning(sources.iomem +
                           " shows every address as 0 (not root): IOVAs avoid the PCI BARs and "
                           "bridge windows from sysfs only, not the host bridge windows; run as "
                           "root to reserve those too");
        }
        if (iomem.skipped_lines != 0) {
            logger.warning("skipped " + std::to_string(iomem.skipped_lines) + " line(s) of " +
                           sources.iomem + " that are not \"start-last : name\"");
        }
        windows = std::move(iomem.windows);
    }

    Sysfs sysfs(sources.sysfs);
    auto devices = sysfs.list_devices();
    if (!devices.ok()) {
        return std::move(devices).error().with_context("listing PCI BARs to keep IOVAs off them");
    }
    std::size_t skipped = 0;
    for (const PciAddress& address : *devices) {
        const std::string path = sysfs.device_path(address) + "/resource";
        auto text = read_text_file(path);
        if (!text.ok()) {
            // A device removed since the listing has no BARs left to avoid.
            if (text.error().code() != ENOENT) {
                logger.warning("cannot read " + path + " (" + dmakit::to_string(text.error()) +
                               "): its BARs are not kept out of the IOVA space");
            }
            continue;
        }
        ResourceWindows resources = parse_resource_file(*text, address.to_string());
        skipped += resources.skipped_lines;
        for (MemoryWindow& window : resources.windows) windows.push_back(std::move(window));
    }
    if (skipped != 0) {
        logger.warning("skipped " + std::to_string(skipped) + " line(s) of PCI resource files in " +
                       sources.sysfs + " that are not \"0xstart 0xend 0xflags\"");
    }
    std::stable_sort(windows.begin(), windows.end(),
                     [](const MemoryWindow& a, const MemoryWindow& b) { return a.start < b.start; });
    return windows;
}

}  // namespace dmakit::pci
