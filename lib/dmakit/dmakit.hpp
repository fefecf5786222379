// <dmakit/dmakit.hpp>: everything a user-space PCI driver needs from dmakit,
// lowest layer first (docs/architecture.md). Include one layer's header
// (<dmakit/dma.hpp>, <dmakit/vfio.hpp>, ...) to pull in less. Drivers are
// separate libraries: <dmakit/drivers/nvme/controller.hpp>,
// <dmakit/drivers/net/open_nic.hpp> (pkg-config dmakit-nvme, dmakit-net).
#pragma once

#include <dmakit/support.hpp>
#include <dmakit/mem.hpp>
#include <dmakit/pci.hpp>
#include <dmakit/iommu.hpp>
#include <dmakit/vfio.hpp>
#include <dmakit/dma.hpp>
