// The C layer's kmalloc benchmark rows (kmalloc_c_bench.cpp).
#pragma once

#include <dmakit/support/log.hpp>

void register_kmalloc_c_benchmarks(const dmakit::Logger& logger);
