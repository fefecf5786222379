#include <dmakit/drivers/net/e1000e/bring_up.hpp>

namespace dmakit::net::e1000e {

Result<MacAddress> bring_up(RegisterAccess& regs, const BringUpConfig& config, HwStats& stats,
                            const Sleeper& sleep) {
    DMAKIT_TRY(reset(regs, config.timeouts, sleep));
    set_link_up(regs);
    DMAKIT_ASSIGN_OR_RETURN(MacAddress mac, read_mac_address(regs, config.timeouts, sleep));
    clear_multicast_table(regs);
    // Read the counters to zero so totals start at this bring-up (§4.6 statistics).
    DMAKIT_TRY(stats.fold(regs));
    stats.reset();
    configure_rx(regs, RxSetup{config.rx_ring, config.promiscuous});
    configure_tx(regs, config.tx_ring);
    DMAKIT_TRY(check_present(regs, "after configuring the rings"));
    return mac;
}

}  // namespace dmakit::net::e1000e
