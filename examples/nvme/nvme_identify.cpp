// nvme_identify: controller and namespace facts of an NVMe controller on vfio-pci.
#include "common.hpp"

#include <cstdio>
#include <limits>
#include <string>

using namespace dmakit;

namespace {

const char* const prog = "nvme_identify";

void help() {
    std::printf(
        "usage: nvme_identify [-d BDF] [--json] [--smart]\n"
        "Brings the controller up with dmakit's NVMe driver and prints Identify Controller\n"
        "and Identify Namespace facts (NVMe 1.4 §5.15) as a table.\n"
        "  -d BDF     controller address (default: the first NVMe controller on vfio-pci)\n"
        "  --json     one JSON object instead of the table\n"
        "  --smart    also read the SMART / Health log (§5.14.1.2)\n"
        "  -h, --help this text\n");
}

std::string version_text(nvme::Version v) {
    return std::to_string(v.major()) + "." + std::to_string(v.minor()) + "." + std::to_string(v.tertiary());
}

}  // namespace

int main(int argc, char** argv) {
    std::optional<pci::PciAddress> device;
    bool json = false, smart = false;
    examples::Args args(argc, argv);
    while (args.next()) {
        const auto a = args.current();
        if (a == "-h" || a == "--help") { help(); return 0; }
        else if (a == "-d") args.device(prog, device);
        else if (a == "--json") json = true;
        else if (a == "--smart") smart = true;
        else examples::usage_error(prog, "unknown option '" + std::string(a) + "'");
    }
    const auto address = examples::device_or_default(prog, device);
    auto opened = examples::open_controller(address);
    if (!opened.ok()) {
        std::fprintf(stderr, "%s: %s\n", prog, dmakit::to_string(opened.error()).c_str());
        return 1;
    }
    nvme::Controller& c = *opened->controller;
    const auto& i = c.info();
    const bool unlimited = c.max_transfer() == std::numeric_limits<std::uint64_t>::max();
    std::optional<nvme::SmartLog> log;
    if (smart) {
        auto s = c.smart_log();
        if (!s.ok()) {
            std::fprintf(stderr, "%s: SMART log: %s\n", prog, dmakit::to_string(s.error()).c_str());
            return 1;
        }
        log = *s;
    }

    if (json) {
        using examples::json_string;
        std::string out = "{";
        out += "\"address\": " + json_string(address.to_string());
        out += ", \"model\": " + json_string(i.model) + ", \"serial\": " + json_string(i.serial);
        out += ", \"firmware\": " + json_string(i.firmware);
        out += ", \"vid\": " + std::to_string(i.vid) + ", \"ssvid\": " + std::to_string(i.ssvid);
        out += ", \"nvme_version\": " + json_string(version_text(c.version()));
        out += ", \"mdts\": " + std::to_string(i.mdts);
        out += ", \"max_transfer_bytes\": " + (unlimited ? std::string("null") : std::to_string(c.max_transfer()));
        out += ", \"sgls\": " + std::to_string(i.sgls);
        out += ", \"page_size\": " + std::to_string(c.page_size());
        out += ", \"max_queue_entries\": " + std::to_string(c.cap().max_queue_entries());
        out += ", \"io_queues_granted\": " + std::to_string(c.io_queues_granted());
        out += ", \"doorbell_stride\": " + std::to_string(c.cap().doorbell_stride_bytes());
        out += ", \"timeout_ms\": " + std::to_string(c.cap().timeout_ms());
        out += ", \"oncs\": " + std::to_string(i.oncs) + ", \"nn\": " + std::to_string(i.nn);
        out += ", \"volatile_write_cache\": " + std::string(i.volatile_write_cache() ? "true" : "false");
        out += ", \"subnqn\": " + json_string(i.subnqn);
        out += ", \"namespaces\": [";
        bool first = true;
        for (const auto& ns : c.namespaces()) {
            out += first ? "" : ", ";
            first = false;
            out += "{\"nsid\": " + std::to_string(ns.nsid) + ", \"blocks\": " + std::to_string(ns.nsze) +
                   ", \"capacity_blocks\": " + std::to_string(ns.ncap) + ", \"used_blocks\": " +
                   std::to_string(ns.nuse) + ", \"block_size\": " + std::to_string(ns.block_size()) +
                   ", \"bytes\": " + std::to_string(ns.size_bytes()) + ", \"metadata_bytes\": " +
                   std::to_string(ns.metadata_size()) + ", \"extended_lba\": " +
                   (ns.extended_lba() ? "true" : "false") + ", \"protection\": " +
                   (ns.protection_enabled() ? "true" : "false") + ", \"lba_formats\": [";
            for (std::size_t f = 0; f < ns.lba_formats.size(); ++f) {
                const auto& lf = ns.lba_formats[f];
                out += (f ? ", " : "") + std::string("{\"index\": ") + std::to_string(f) + ", \"data_bytes\": " +
                       std::to_string(lf.usable ? (1u << lf.lbads) : 0) + ", \"metadata_bytes\": " +
                       std::to_string(lf.metadata_size) + ", \"in_use\": " +
                       (f == ns.format_index() ? "true" : "false") + "}";
            }
            out += "]}";
        }
        out += "]";
        if (log) {
            out += ", \"smart\": {\"critical_warning\": " + std::to_string(log->critical_warning) +
                   ", \"temperature_c\": " + std::to_string(log->temperature_celsius()) +
                   ", \"available_spare\": " + std::to_string(log->available_spare) +
                   ", \"percentage_used\": " + std::to_string(log->percentage_used) +
                   ", \"host_read_commands\": " + std::to_string(log->host_read_commands) +
                   ", \"host_write_commands\": " + std::to_string(log->host_write_commands) +
                   ", \"power_on_hours\": " + std::to_string(log->power_on_hours) +
                   ", \"unsafe_shutdowns\": " + std::to_string(log->unsafe_shutdowns) +
                   ", \"media_errors\": " + std::to_string(log->media_errors) + "}";
        }
        out += "}";
        std::printf("%s\n", out.c_str());
        return 0;
    }

    auto row = [](const char* k, const std::string& v) { std::printf("  %-26s %s\n", k, v.c_str()); };
    std::printf("NVMe controller %s\n", address.to_string().c_str());
    row("model", i.model);
    row("serial", i.serial);
    row("firmware", i.firmware);
    char ids[32];
    std::snprintf(ids, sizeof ids, "%04x / %04x", i.vid, i.ssvid);
    row("PCI vendor / subsystem", ids);
    row("NVMe version", version_text(c.version()));
    row("MDTS", std::to_string(i.mdts) + (i.mdts ? "" : " (no limit)"));
    row("max transfer (driver)", unlimited ? "no limit (65536 blocks per command)"
                                           : std::to_string(c.max_transfer() / 1024) + " KiB");
    const nvme::SglSupport sgl = c.sgl_support();
    row("SGL (SGLS)", !sgl.supported ? "not supported"
                      : std::string(sgl.dword_aligned ? "supported, dword aligned" : "supported") +
                            (sgl.bit_bucket ? ", bit bucket" : ""));
    row("page size (CC.MPS)", std::to_string(c.page_size()));
    row("max queue entries", std::to_string(c.cap().max_queue_entries()));
    row("I/O queues granted", std::to_string(c.io_queues_granted()));
    row("doorbell stride", std::to_string(c.cap().doorbell_stride_bytes()) + " bytes");
    row("ready timeout (CAP.TO)", std::to_string(c.cap().timeout_ms()) + " ms");
    row("namespaces (NN)", std::to_string(i.nn));
    std::string oncs;
    if (i.supports_compare()) oncs += "compare ";
    if (i.supports_write_uncorrectable()) oncs += "write-uncorrectable ";
    if (i.supports_dsm()) oncs += "dsm ";
    if (i.supports_write_zeroes()) oncs += "write-zeroes ";
    row("optional NVM commands", oncs.empty() ? "none" : oncs);
    row("volatile write cache", i.volatile_write_cache() ? "yes" : "no");
    row("subsystem NQN", i.subnqn);
    std::printf("\n  %-6s %14s %12s %-10s %10s %10s  %s\n", "nsid", "blocks", "block size", "metadata", "size MiB",
                "used MiB", "LBA formats (data+meta, * = in use)");
    for (const auto& ns : c.namespaces()) {
        std::string formats;
        for (std::size_t f = 0; f < ns.lba_formats.size(); ++f) {
            const auto& lf = ns.lba_formats[f];
            formats += (f == ns.format_index() ? "*" : "") + std::to_string(lf.usable ? (1u << lf.lbads) : 0) + "+" +
                       std::to_string(lf.metadata_size) + " ";
        }
        // §5.15.2.2 FLBAS bit 4: metadata inline (extended LBA) or in its own buffer.
        std::string metadata = ns.metadata_size() == 0 ? "none"
                                                       : std::to_string(ns.metadata_size()) +
                                                             (ns.extended_lba() ? " inline" : " separate");
        if (ns.protection_enabled()) metadata += " +PI";
        std::printf("  %-6u %14" PRIu64 " %12u %-10s %10" PRIu64 " %10" PRIu64 "  %s\n", ns.nsid, ns.nsze,
                    ns.block_size(), metadata.c_str(), ns.size_bytes() >> 20, (ns.nuse * ns.block_size()) >> 20,
                    formats.c_str());
    }
    if (log) {
        std::printf("\n  SMART / health\n");
        row("critical warning", std::to_string(log->critical_warning));
        row("temperature", std::to_string(log->temperature_celsius()) + " C");
        row("available spare", std::to_string(log->available_spare) + " %");
        row("percentage used", std::to_string(log->percentage_used) + " %");
        row("host read / write cmds", std::to_string(log->host_read_commands) + " / " +
                                          std::to_string(log->host_write_commands));
        row("power-on hours", std::to_string(log->power_on_hours));
        row("unsafe shutdowns", std::to_string(log->unsafe_shutdowns));
        row("media errors", std::to_string(log->media_errors));
    }
    return 0;
}
