// <dmakit/mem.hpp>: the hugepage buddy allocator, slab caches, kmalloc, NUMA and leak tracking.
// One include for the whole layer; <dmakit/dmakit.hpp> includes every layer.
#pragma once

#include <dmakit/mem/anonymous_source.hpp>
#include <dmakit/mem/buddy.hpp>
#include <dmakit/mem/call_site.hpp>
#include <dmakit/mem/debug.hpp>
#include <dmakit/mem/gfp.hpp>
#include <dmakit/mem/hugepage_source.hpp>
#include <dmakit/mem/kmalloc.hpp>
#include <dmakit/mem/leak_tracker.hpp>
#include <dmakit/mem/numa.hpp>
#include <dmakit/mem/page.hpp>
#include <dmakit/mem/page_source.hpp>
#include <dmakit/mem/region.hpp>
#include <dmakit/mem/slab.hpp>
#include <dmakit/mem/stats.hpp>
