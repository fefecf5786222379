// <dmakit/iommu.hpp>: IOMMU domains, their IOVA allocator and backend interface.
// One include for the whole layer; <dmakit/dmakit.hpp> includes every layer.
#pragma once

#include <dmakit/iommu/backend.hpp>
#include <dmakit/iommu/domain.hpp>
#include <dmakit/iommu/iova_allocator.hpp>
#include <dmakit/iommu/pci_windows.hpp>
