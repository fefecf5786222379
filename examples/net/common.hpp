// What the NIC examples share: option parsing (with --iommu), opening a port
// with a one-line error, per-second rate lines, and JSON text.
#pragma once

#include "../iommu_option.hpp"
#include "coarse_clock.hpp"

#include <dmakit/drivers/net/dma_pool_backing.hpp>
#include <dmakit/drivers/net/driver_registry.hpp>
#include <dmakit/drivers/net/nic.hpp>
#include <dmakit/drivers/net/nic_open_context.hpp>
#include <dmakit/drivers/net/open_nic.hpp>
#include <dmakit/drivers/net/packet_pool.hpp>

#include <dmakit/pci/address.hpp>
#include <dmakit/support/number_text.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dmakit::examples {

[[noreturn]] inline void die(const std::string& program, const std::string& message) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), message.c_str());
    std::exit(1);
}
[[noreturn]] inline void die(const std::string& program, const Error& error) { die(program, to_string(error)); }

// Tiny argv walker: --name VALUE, --name=VALUE and -x VALUE.
class Args {
public:
    Args(int argc, char** argv, std::string program, std::string usage)
        : program_(std::move(program)), usage_(std::move(usage)) {
        for (int i = 1; i < argc; ++i) args_.emplace_back(argv[i]);
    }
    [[nodiscard]] bool done() const { return i_ >= args_.size(); }
    // True when the current argument is one of the names (consumes it).
    bool flag(std::initializer_list<std::string_view> names) {
        for (auto n : names) {
            if (args_[i_] == n) {
                ++i_;
                return true;
            }
        }
        return false;
    }
    // Option with a value; nullopt when the current argument is not it.
    std::optional<std::string> option(std::initializer_list<std::string_view> names) {
        const std::string& a = args_[i_];
        for (auto n : names) {
            if (a == n) {
                if (i_ + 1 >= args_.size()) bad(std::string(n) + " needs a value");
                option_name_ = std::string(n);
                i_ += 2;
                return args_[i_ - 1];
            }
            if (a.size() > n.size() + 1 && a.compare(0, n.size(), n) == 0 && a[n.size()] == '=') {
                option_name_ = std::string(n);
                ++i_;
                return a.substr(n.size() + 1);
            }
        }
        return std::nullopt;
    }
    [[noreturn]] void unknown() { bad("unknown option '" + args_[i_] + "'"); }
    // Bad usage: one line, exit status 2 (as the NVMe examples and dmakit).
    [[noreturn]] void bad(const std::string& why) {
        std::fprintf(stderr, "%s: %s (see %s --help)\n", program_.c_str(), why.c_str(), program_.c_str());
        std::exit(2);
    }
    void help() {
        std::fputs(usage_.c_str(), stdout);
        std::exit(0);
    }
    // The value of the option just taken, in [min, max]; NaN, infinities,
    // signs on counts and anything out of range are usage errors.
    template <typename T>
    T number(const std::string& text, T min, T max) {
        auto value = parse_option_number<T>(option_name_, text, min, max);
        if (!value.ok()) bad(value.error().message());
        return *value;
    }
    dma::IommuPolicy iommu_policy(const std::string& text) {
        auto policy = dma::parse_iommu_policy(text);
        if (!policy) bad(bad_iommu_value(text));
        return *policy;
    }
    net::MacAddress mac(const std::string& text) {
        auto mac = net::MacAddress::parse(text);
        if (!mac.ok()) bad(option_name_ + ": " + mac.error().message());
        return *mac;
    }
    pci::PciAddress address(const std::string& text) {
        // Accept the short form 00:03.0 too.
        std::string full = text;
        if (std::count(text.begin(), text.end(), ':') == 1) full = "0000:" + text;
        auto a = pci::PciAddress::parse(full);
        if (!a.ok()) bad(a.error().message());
        return *a;
    }
    // Adds a port to `ports`; naming one port twice is a usage error (the
    // second open would find the device busy with this very process).
    void add_port(std::vector<pci::PciAddress>& ports, const std::string& text) {
        const pci::PciAddress a = address(text);
        if (std::find(ports.begin(), ports.end(), a) != ports.end()) {
            bad("port " + a.to_string() + " is named twice");
        }
        ports.push_back(a);
    }
    // A port option that may be given once (-a, -b).
    void set_port(std::optional<pci::PciAddress>& port, const std::string& text) {
        const pci::PciAddress a = address(text);
        if (port) bad(option_name_ + " is given twice (" + port->to_string() + " and " + a.to_string() + ")");
        port = a;
    }
    // -a and -b of a two-port program must differ.
    void require_distinct(const pci::PciAddress& a, const pci::PciAddress& b) {
        if (a == b) bad("-a and -b both name " + a.to_string() + "; give two different ports");
    }
    [[nodiscard]] const std::string& program() const { return program_; }

private:
    std::string program_;
    std::string usage_;
    std::vector<std::string> args_;
    std::size_t i_ = 0;
    std::string option_name_;  // spelling of the option last taken, for messages
};

// A packet pool for one port of a shared domain, made by the program so it
// can outlive the ports (a buffer of one port's pool may sit in another
// port's TX ring when they close): 4096 buffers of 2 KiB plus headroom.
inline std::unique_ptr<net::PacketPool> port_pool_or_die(const std::string& program, dma::DmaContext& context,
                                                         const pci::PciAddress& port, const Logger& logger) {
    net::PacketPoolConfig config;
    config.logger = &logger;
    auto pool = net::create_dma_packet_pool(context, program + "-" + port.to_string(), 4096, 2048 + 128, config);
    if (!pool.ok()) die(program, pool.error());
    return std::move(pool).value();
}

inline std::unique_ptr<net::Nic> open_port_or_die(const std::string& program,
                                                  const net::NicDriverRegistry& registry,
                                                  net::NicOpenContext& context) {
    auto nic = net::open_nic(registry, context);
    if (!nic.ok()) die(program, nic.error());
    auto link = (*nic)->link();
    if (!link.ok()) die(program, link.error());
    if (!link->up) {
        std::fprintf(stderr, "%s: warning: link of %s is down\n", program.c_str(),
                     context.address.to_string().c_str());
    }
    return std::move(nic).value();
}

// A port that failed on the hot path (removed, most often): the error, and
// how many of its pool's buffers are still out once the caller has given
// back what it held; 0 means the driver lost none.
inline void report_port_failure(const std::string& program, const std::string& bdf, net::Nic& nic,
                                const Error& error) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), to_string(error).c_str());
    if (const net::PacketPool* pool = nic.packet_pool()) {
        std::fprintf(stderr, "%s: %s: %zu of %zu pool buffers still in use after the port stopped\n",
                     program.c_str(), bdf.c_str(), pool->in_use(), pool->capacity());
    }
}

inline double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// Gbit/s of Ethernet frames (FCS included, preamble and gap not).
inline double gbits(double pps, std::size_t frame_bytes) { return pps * (frame_bytes + 4) * 8 / 1e9; }

inline std::string json_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

// The driver's own device counters (Nic::stats().device.all: hardware
// registers for the e1000e, doorbells and refused used entries for
// virtio-net) as one JSON object.
inline std::string json_counters(const net::DeviceCounters& counters) {
    std::string out = "{";
    for (std::size_t i = 0; i < counters.all.size(); ++i) {
        out += (i ? ", \"" : "\"") + json_escape(counters.all[i].name) + "\": " + std::to_string(counters.all[i].value);
    }
    return out + "}";
}

inline std::string json_array(const std::vector<double>& v) {
    std::string out = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%s%.0f", i ? ", " : "", v[i]);
        out += buf;
    }
    return out + "]";
}

}  // namespace dmakit::examples
