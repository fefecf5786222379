// <dmakit/support.hpp>: errors, results, logging, file descriptors, mappings, MMIO accessors.
// One include for the whole layer; <dmakit/dmakit.hpp> includes every layer.
#pragma once

#include <dmakit/config.hpp>
#include <dmakit/support/error.hpp>
#include <dmakit/support/inline_copy.hpp>
#include <dmakit/support/json_writer.hpp>
#include <dmakit/support/log.hpp>
#include <dmakit/support/memory_mapping.hpp>
#include <dmakit/support/mmio.hpp>
#include <dmakit/support/number_text.hpp>
#include <dmakit/support/result.hpp>
#include <dmakit/support/text_file.hpp>
#include <dmakit/support/unique_fd.hpp>
