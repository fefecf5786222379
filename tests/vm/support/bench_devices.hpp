// The VM bench's devices for the vm suite's fixtures, and the one rule for a
// missing one. scripts/vm's guest binds the NVMe controller, both e1000e
// NICs and both virtio-net NICs to vfio-pci (tests/vm/guest-init), so inside it (DMAKIT_IN_VM=1) a
// device that is not there means the bind broke: that is a test FAILURE,
// never a skip, or a broken bench would turn the suite green with nothing
// run. Outside the guest (a VM binary started by hand on a host) the tests
// skip with the same reason.
#pragma once

#include <dmakit/pci/address.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace dmakit::vmtest {

// A device model of the bench and how many of it scripts/vm starts.
struct BenchDevice {
    std::uint16_t vendor_id;
    std::uint16_t device_id;
    std::size_t count;
    std::string_view label;
};

inline constexpr BenchDevice kBenchNvme{0x1b36, 0x0010, 2, "QEMU NVMe controller"};
inline constexpr BenchDevice kBenchNic{0x8086, 0x10d3, 2, "e1000e NIC"};
inline constexpr BenchDevice kBenchVirtioNic{0x1af4, 0x1041, 2, "modern virtio-net NIC"};

// gtest prints a parameter with this (instead of its bytes).
inline void PrintTo(const BenchDevice& model, std::ostream* out) { *out << model.label; }

// Functions of that model bound to `driver`, sorted by address.
[[nodiscard]] std::vector<pci::PciAddress> devices_bound_to(const BenchDevice& model,
                                                            std::string_view driver = "vfio-pci");

// Queue pairs each bench virtio-net port offers (scripts/vm --virtio-queues,
// passed in as DMAKIT_VM_VIRTIO_QUEUES); 1 when not set.
[[nodiscard]] std::uint32_t bench_virtio_queue_pairs();

// The serial scripts/vm gives NVMe controller `index`: 0 is the one most
// tests use (DMAKIT_VM_NVME_SERIAL), 1 the second (DMAKIT_VM_NVME1_SERIAL:
// nsid 1 of 4 KiB blocks, nsid 2 of 512 B + 8 B separate metadata, MDTS 1).
// scripts/vm starts them in that order at rising PCI addresses, so
// devices_bound_to(kBenchNvme)[index] is controller `index`; a test checks the
// serial Identify reports against this after opening it. Empty when unknown.
[[nodiscard]] std::string bench_nvme_serial(std::size_t index);

// True inside the bench guest: DMAKIT_IN_VM=1 (set by tests/vm/guest-init).
[[nodiscard]] bool in_bench_guest();

// What is missing when fewer than `needed` of `model` are on `driver`: the
// count found, where the others are bound, and how the bench binds them.
[[nodiscard]] std::string missing_devices(const BenchDevice& model, std::size_t needed,
                                          std::string_view driver = "vfio-pci");

// The failure (in the guest) or skip (elsewhere) text for an unmet need.
[[nodiscard]] std::string unmet_in_guest(std::string_view what);
[[nodiscard]] std::string unmet_outside_guest(std::string_view what);

}  // namespace dmakit::vmtest

// Fails the test in the bench guest, skips it elsewhere, when `condition` is
// false; `what` (a string) names what is missing and how the bench provides
// it. Returns from the calling function (SetUp or a test body), as
// GTEST_FAIL/GTEST_SKIP do; a failure in SetUp keeps the body from running.
#define DMAKIT_VM_REQUIRE(condition, what)                                             \
    do {                                                                               \
        if (!(condition)) {                                                            \
            if (::dmakit::vmtest::in_bench_guest()) {                                  \
                GTEST_FAIL() << ::dmakit::vmtest::unmet_in_guest(what);                \
            }                                                                          \
            GTEST_SKIP() << ::dmakit::vmtest::unmet_outside_guest(what);               \
        }                                                                              \
    } while (0)

// DMAKIT_VM_REQUIRE for "at least model.count of `model` bound to vfio-pci",
// with `found` the result of devices_bound_to(model).
#define DMAKIT_VM_REQUIRE_DEVICES(found, model)                                        \
    DMAKIT_VM_REQUIRE((found).size() >= (model).count,                                 \
                      ::dmakit::vmtest::missing_devices((model), (model).count))
