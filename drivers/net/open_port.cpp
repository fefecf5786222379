#include <dmakit/drivers/net/open_port.hpp>

#include <dmakit/drivers/net/dma_pool_backing.hpp>

#include <cerrno>

namespace dmakit::net {

Result<OpenPort> OpenPort::open(NicOpenContext& context, const NicDriver& driver, const PortPoolNeeds& needs) {
    OpenPort port;
    if (context.function != nullptr) {
        port.function_ = context.function;
    } else {
        dma::PciDmaOptions options = context.dma_options;
        if (options.context.logger == nullptr) options.context.logger = context.logger;
        DMAKIT_ASSIGN_OR_RETURN(port.owned_domain_, dma::PciDomain::open(context.address, options));
        port.function_ = &port.owned_domain_->function(0);
    }
    DMAKIT_TRY(port.function_->require_dma("the " + std::string(driver.name) + " driver"));
    const std::string bdf = port.function_->address().to_string();
    port.name_ = std::string(driver.name) + " " + bdf;

    // Never trust the address: the function must be one of the driver's
    // devices before the driver pokes at it.
    vfio::Device& device = port.function_->vfio();
    DMAKIT_ASSIGN_OR_RETURN(const std::uint16_t vendor, device.config_read16(0x00));
    DMAKIT_ASSIGN_OR_RETURN(const std::uint16_t device_id, device.config_read16(0x02));
    const PciId id{vendor, device_id};
    if (!driver.claims(id)) {
        return Error(ENODEV, std::string(driver.name) + ": " + bdf + " is " + id.to_string() +
                                 ", not a device this driver handles");
    }

    if (context.pool != nullptr) {
        port.pool_ = context.pool;
    } else {
        const std::size_t count = context.pool_buffers != 0 ? context.pool_buffers : needs.default_buffers;
        PacketPoolConfig config;
        config.headroom = needs.headroom;
        config.logger = context.logger;
        DMAKIT_ASSIGN_OR_RETURN(port.owned_pool_,
                                create_dma_packet_pool(port.function_->context(), std::string(driver.name) + "-" + bdf,
                                                       count, needs.headroom + needs.data_room, config));
        port.pool_ = port.owned_pool_.get();
    }
    if (port.pool_->data_room() < needs.data_room) {
        return Error(EINVAL, port.name_ + ": pool buffers hold " + std::to_string(port.pool_->data_room()) +
                                 " bytes after headroom; this driver needs " + std::to_string(needs.data_room));
    }
    return port;
}

}  // namespace dmakit::net
