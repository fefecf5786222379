// OpenPort: what every NIC driver's open() does before it touches its chip,
// written once: get the PCI function (the caller's, or a PciDomain of the
// port's own), check that it is a device the driver claims (IDs read from
// config space: the address is never trusted), and get the packet pool (the
// caller's, or one made for the port in the function's DMA context).
//
// A driver keeps the OpenPort as its first member, so it is destroyed last:
// the pool after everything that holds buffers, the domain after the pool.
#pragma once

#include <dmakit/dma/pci_domain.hpp>
#include <dmakit/support/result.hpp>

#include <dmakit/drivers/net/nic_driver.hpp>
#include <dmakit/drivers/net/nic_open_context.hpp>
#include <dmakit/drivers/net/packet_pool.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace dmakit::net {

// The packet buffers a driver needs when the port makes its own pool.
struct PortPoolNeeds {
    std::size_t default_buffers = 0;  // when NicOpenContext::pool_buffers is 0
    std::uint32_t headroom = 0;       // bytes before the frame in each buffer
    std::uint32_t data_room = 0;      // frame bytes one buffer must hold (after headroom)
};

class OpenPort {
public:
    // ENODEV when the function is not one of `driver`'s devices; EINVAL
    // when a borrowed pool's buffers are too small; the VFIO layer's errors
    // otherwise (a device on another driver says "run: dmakit bind BDF").
    [[nodiscard]] static Result<OpenPort> open(NicOpenContext& context, const NicDriver& driver,
                                               const PortPoolNeeds& needs);

    OpenPort(OpenPort&&) noexcept = default;
    OpenPort& operator=(OpenPort&&) noexcept = default;

    [[nodiscard]] dma::PciFunction& function() const noexcept { return *function_; }
    [[nodiscard]] PacketPool& pool() const noexcept { return *pool_; }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }  // "e1000e 0000:00:03.0"

private:
    OpenPort() = default;

    // Declaration order is destruction order reversed: the domain outlives the pool.
    std::unique_ptr<dma::PciDomain> owned_domain_;
    dma::PciFunction* function_ = nullptr;
    std::unique_ptr<PacketPool> owned_pool_;
    PacketPool* pool_ = nullptr;
    std::string name_;
};

// Every driver's open(): make the port, start it, hand it out as a Nic.
// `Port` has a constructor taking the context and `Status start(NicOpenContext&)`.
template <typename Port>
[[nodiscard]] Result<std::unique_ptr<Nic>> start_port(NicOpenContext& context) {
    auto port = std::make_unique<Port>(context);
    DMAKIT_TRY(port->start(context));
    return std::unique_ptr<Nic>(std::move(port));
}

}  // namespace dmakit::net
