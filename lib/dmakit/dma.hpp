// <dmakit/dma.hpp>: the kernel-shaped DMA API: coherent memory, streaming maps, sg lists, pools, PCI domains.
// One include for the whole layer; <dmakit/dmakit.hpp> includes every layer.
#pragma once

#include <dmakit/dma/coherent.hpp>
#include <dmakit/dma/context.hpp>
#include <dmakit/dma/debug.hpp>
#include <dmakit/dma/device.hpp>
#include <dmakit/dma/large_buffer.hpp>
#include <dmakit/dma/mapped_scatter_list.hpp>
#include <dmakit/dma/pci_domain.hpp>
#include <dmakit/dma/pool.hpp>
#include <dmakit/dma/pool_block.hpp>
#include <dmakit/dma/registration_cache.hpp>
#include <dmakit/dma/scatterlist.hpp>
#include <dmakit/dma/segments.hpp>
#include <dmakit/dma/streaming_mapping.hpp>
#include <dmakit/dma/types.hpp>
