// A DmaContext over the recording TestIommuBackend and plain anonymous memory:
// the DMA layer end to end with no kernel, where the test plays the device by
// translating IOVAs through the backend.
#pragma once

#include <dmakit/dma/context.hpp>
#include <dmakit/dma/device.hpp>
#include <dmakit/testing/test_backend.hpp>
#include <dmakit/support/log.hpp>

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace dmakit::dma::testing {

// Read `lines` once the threads that log are done; the concurrency tests
// log from several threads at once.
struct CapturedLog {
    std::mutex mutex;
    std::vector<std::string> lines;
    Logger logger{LogLevel::debug, [this](LogLevel, std::string_view m) {
                      std::lock_guard lock(mutex);
                      lines.emplace_back(m);
                  }};
};

struct TestContextOptions {
    iommu::TestBackendConfig backend;
    iommu::DomainConfig domain;
    DmaContextConfig context;
    // The pool's page source; null: plain anonymous memory.
    std::function<std::unique_ptr<mem::PageSource>()> source;
};

class DmaTest : public ::testing::Test {
protected:
    void SetUp() override { make_context({}); }

    void make_context(TestContextOptions options);

    // The CPU address the device reaches at `addr` for reading and writing,
    // or null (an IOMMU fault).
    [[nodiscard]] void* device_view(DmaAddr addr, std::size_t length,
                                    iommu::Access access = iommu::Access::read_write) const;
    // Whether the device may read / write `length` bytes at `addr`.
    [[nodiscard]] bool device_can_read(DmaAddr addr, std::size_t length) const;
    [[nodiscard]] bool device_can_write(DmaAddr addr, std::size_t length) const;
    [[nodiscard]] std::size_t backend_maps() const;
    [[nodiscard]] std::size_t backend_unmaps() const;

    CapturedLog log_;
    iommu::TestIommuBackend* backend_ = nullptr;
    std::unique_ptr<DmaContext> context_;
    std::unique_ptr<DmaDevice> device_;
};

// The same over a context with IommuPolicy::strict.
class StrictDmaTest : public DmaTest {
protected:
    void SetUp() override {
        TestContextOptions options;
        options.context.policy = IommuPolicy::strict;
        make_context(options);
    }
};

}  // namespace dmakit::dma::testing
