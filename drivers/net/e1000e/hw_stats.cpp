#include <dmakit/drivers/net/e1000e/hw_stats.hpp>

#include <dmakit/drivers/net/e1000e/regs.hpp>

#include <cerrno>

namespace dmakit::net::e1000e {

namespace {
constexpr std::array<StatRegister, stat_register_count> kStats{{
    {"crcerrs", reg::CRCERRS, 0}, {"algnerrc", reg::ALGNERRC, 0}, {"symerrs", reg::SYMERRS, 0},
    {"rxerrc", reg::RXERRC, 0},   {"mpc", reg::MPC, 0},           {"scc", reg::SCC, 0},
    {"ecol", reg::ECOL, 0},       {"mcc", reg::MCC, 0},           {"latecol", reg::LATECOL, 0},
    {"colc", reg::COLC, 0},       {"dc", reg::DC, 0},             {"tncrs", reg::TNCRS, 0},
    {"rlec", reg::RLEC, 0},       {"xonrxc", reg::XONRXC, 0},     {"xontxc", reg::XONTXC, 0},
    {"xoffrxc", reg::XOFFRXC, 0}, {"xofftxc", reg::XOFFTXC, 0},   {"fcruc", reg::FCRUC, 0},
    {"gprc", reg::GPRC, 0},       {"bprc", reg::BPRC, 0},         {"mprc", reg::MPRC, 0},
    {"gptc", reg::GPTC, 0},       {"gorc", reg::GORCL, reg::GORCH}, {"gotc", reg::GOTCL, reg::GOTCH},
    {"rnbc", reg::RNBC, 0},       {"ruc", reg::RUC, 0},           {"rfc", reg::RFC, 0},
    {"roc", reg::ROC, 0},         {"rjc", reg::RJC, 0},           {"tor", reg::TORL, reg::TORH},
    {"tot", reg::TOTL, reg::TOTH}, {"tpr", reg::TPR, 0},          {"tpt", reg::TPT, 0},
    {"mptc", reg::MPTC, 0},       {"bptc", reg::BPTC, 0},
}};
}  // namespace

const std::array<StatRegister, stat_register_count>& stat_registers() noexcept { return kStats; }

Status HwStats::fold(RegisterAccess& regs) {
    const auto gone = [] {
        return Error(ENODEV, "e1000e: device stopped responding while reading statistics "
                             "(STATUS reads all ones); counters left unchanged");
    };
    if (regs.read32(reg::STATUS) == all_ones) return gone();
    std::array<std::uint64_t, stat_register_count> delta{};
    for (std::size_t i = 0; i < kStats.size(); ++i) {
        const std::uint64_t low = regs.read32(kStats[i].low);  // low first: reading high clears
        const std::uint64_t high = kStats[i].high != 0 ? regs.read32(kStats[i].high) : 0;
        delta[i] = (high << 32) | low;
    }
    // The device may have vanished mid-way; then every value above is suspect.
    if (regs.read32(reg::STATUS) == all_ones) return gone();
    for (std::size_t i = 0; i < kStats.size(); ++i) totals_[i] += delta[i];
    return {};
}

std::uint64_t HwStats::value(std::string_view name) const noexcept {
    for (std::size_t i = 0; i < kStats.size(); ++i) {
        if (kStats[i].name == name) return totals_[i];
    }
    return 0;
}

DeviceCounters HwStats::counters() const {
    DeviceCounters c;
    c.rx_good_packets = value("gprc");
    c.tx_good_packets = value("gptc");
    c.rx_good_octets = value("gorc");
    c.tx_good_octets = value("gotc");
    c.rx_missed = value("mpc");
    c.rx_errors = value("crcerrs") + value("algnerrc") + value("symerrs") + value("rxerrc") +
                  value("rlec");
    c.all.reserve(kStats.size());
    for (std::size_t i = 0; i < kStats.size(); ++i) c.all.push_back({kStats[i].name, totals_[i]});
    return c;
}

}  // namespace dmakit::net::e1000e
