#include "e1000e.hpp"

#include "../nic_open_context.hpp"

#include <cerrno>

namespace dmakit::net::e1000e {

Result<std::unique_ptr<Nic>> open(NicOpenContext& context) {
    (void)context;
    return Error(ENOSYS, "e1000e: opening a port needs the VFIO device and DMA context, "
                         "which this build does not wire up yet (drivers/net glue pending)");
}

}  // namespace dmakit::net::e1000e
