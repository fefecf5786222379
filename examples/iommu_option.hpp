// `--iommu pool|strict`: the IOMMU policy option the NVMe and NIC examples
// share (dma::IommuPolicy; docs/dma.md says what each mode isolates). Each
// example's common.hpp turns a bad value into its usual one-line usage error
// (exit status 2) with the text below.
#pragma once

#include <dmakit/dma/types.hpp>

#include <string>
#include <string_view>

namespace dmakit::examples {

// The usage error for a value that is neither spelling.
[[nodiscard]] inline std::string bad_iommu_value(std::string_view got) {
    return "--iommu wants pool or strict, got '" + std::string(got) + "'";
}

}  // namespace dmakit::examples
