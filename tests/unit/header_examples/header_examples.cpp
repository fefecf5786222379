// Every code example in a public header's comment, as the header writes it,
// so that none of them stops compiling unnoticed (issue 13: one did). Each
// function holds one example between "example:" and "end"; what it needs
// (addresses, counts) comes in as parameters, and anything the example
// leaves unused is touched after "end". Built by every build, never run:
// the device examples need VFIO, which the host does not have (the VM suite
// runs the same calls: examples/hello_device, tests/vm/dma/registers_only_vm_test.cpp).
// When you change an example in a header, change it here too: the unit test
// header_example_copies (check_copies.py) fails until both agree.
#include <dmakit/dmakit.hpp>
#include <dmakit/drivers/nvme/controller.hpp>
#include <dmakit/drivers/nvme/io_queue.hpp>
#include <dmakit/testing/test_backend.hpp>

#include <array>
#include <memory>
#include <span>

namespace dmakit {

// lib/dmakit/dma/pci_domain.hpp
void pci_domain_example(const pci::PciAddress& nvme_bdf, const pci::PciAddress& nic_bdf) {
    // example:
    auto domain = dma::PciDomain::open(std::array{nvme_bdf, nic_bdf});
    auto ctrl = nvme::Controller::open((*domain)->function(0), {});
    auto ring = (*domain)->function(1).dma().alloc_coherent(4096);
    // end
}

// drivers/nvme/controller.hpp
void nvme_controller_example(const pci::PciAddress& address, std::uint32_t nsid, std::uint64_t slba,
                             std::uint32_t blocks, std::span<const nvme::DmaSegment> segments) {
    // example:
    auto domain = dma::PciDomain::open(address);
    auto ctrl = nvme::Controller::open((*domain)->function(0), {});
    auto* q = *(*ctrl)->create_io_queue();       // one per thread
    auto status = q->read_sync(nsid, slba, blocks, segments);
    // end
}

// lib/dmakit/vfio/device.hpp (Region)
void region_doorbell_example(const vfio::Region& bar, std::size_t DOORBELL, std::uint32_t tail) {
    // example:
    mmio::write32(bar.base(), DOORBELL, tail);
    // end
}

// lib/dmakit/testing/test_backend.hpp
void test_backend_example() {
    using namespace iommu;
    // example:
    auto backend = std::make_unique<TestIommuBackend>();
    TestIommuBackend* test = backend.get();
    auto domain = IommuDomain::create(std::move(backend));
    // end
    (void)test;
}

}  // namespace dmakit
