#include <dmakit/drivers/nvme/registers.hpp>

#include <dmakit/drivers/nvme/format.hpp>

#include <cerrno>
#include <string>

namespace dmakit::nvme {

Status validate_cap(Cap cap) {
    if (cap.raw == ~std::uint64_t{0}) {
        return Error(ENODEV, "CAP reads as all ones: the controller is not responding "
                             "(device removed, or BAR0 not mapped); reset or rebind the device");
    }
    if (cap.mpsmin() > cap.mpsmax()) {
        return Error(EPROTO, "CAP.MPSMIN=" + std::to_string(cap.mpsmin()) + " is greater than CAP.MPSMAX=" +
                                 std::to_string(cap.mpsmax()) + ": impossible page-size range, not using this controller");
    }
    if (!cap.nvm_command_set()) {
        return Error(ENOTSUP, "CAP.CSS=" + hex(cap.command_sets()) +
                                  " does not include the NVM command set; this driver only speaks NVM");
    }
    // MQES is 0-based and a value of 0 (a 1-entry queue) is invalid (§3.1.1).
    if (cap.max_queue_entries() < 2) {
        return Error(EPROTO, "CAP.MQES=0: queues of one entry cannot hold a command; the controller is broken");
    }
    if (cap.timeout_units() == 0) {
        return Error(EPROTO, "CAP.TO=0: the controller gives no ready timeout; the driver cannot wait for CSTS.RDY");
    }
    return {};
}

std::string csts_text(Csts c) {
    if (c.device_gone()) return "CSTS reads all ones (device gone: removed, or its PCIe link is down)";
    std::string text = "CSTS " + hex(c.raw) + " (RDY " + std::to_string(c.ready()) + ", CFS " +
                       std::to_string(c.fatal()) + ", SHST " + std::to_string(static_cast<unsigned>(c.shutdown())) +
                       ")";
    if (c.fatal()) {
        text += ": controller fatal status (CSTS.CFS, NVMe 1.4 §10.5); reset the controller (Controller::reset(), "
                "or open it again), and if it comes back, check the device (firmware, power, PCIe link)";
    }
    return text;
}

Result<std::uint32_t> choose_page_size(Cap cap, std::uint32_t host_page_size) {
    const std::uint64_t lo = cap.min_page_size();
    const std::uint64_t hi = cap.max_page_size();
    if (host_page_size < 4096 || (host_page_size & (host_page_size - 1)) != 0) {
        return Error(EINVAL, "host page size " + std::to_string(host_page_size) +
                                 " is not a power of two of at least 4096");
    }
    if (host_page_size < lo || host_page_size > hi) {
        return Error(ENOTSUP, "controller page sizes are " + std::to_string(lo) + ".." + std::to_string(hi) +
                                  " bytes (CAP.MPSMIN/MPSMAX), host page size " + std::to_string(host_page_size) +
                                  " is outside that range");
    }
    std::uint32_t mps = 0;
    while ((std::uint64_t{4096} << mps) < host_page_size) ++mps;
    return mps;
}

Result<std::uint32_t> encode_aqa(std::uint32_t sq_entries, std::uint32_t cq_entries) {
    for (auto [name, n] : {std::pair{"admin SQ", sq_entries}, std::pair{"admin CQ", cq_entries}}) {
        if (n < 2 || n > max_admin_queue_entries) {
            return Error(EINVAL, std::string(name) + " size " + std::to_string(n) +
                                     " is outside 2..4096 entries (NVMe 1.4 §3.1.8 AQA)");
        }
    }
    return (sq_entries - 1) | ((cq_entries - 1) << 16);
}

Status check_doorbells_in_bar(std::uint32_t qid, std::uint32_t dstrd, std::uint64_t bar_size) {
    const std::uint64_t end = cq_head_doorbell(qid, dstrd) + 4;
    if (end > bar_size) {
        return Error(ERANGE, "queue " + std::to_string(qid) + " doorbell at " + hex(end - 4) + " (DSTRD=" +
                                 std::to_string(dstrd) + ") lies outside BAR0 of " + std::to_string(bar_size) +
                                 " bytes; use fewer queues");
    }
    return {};
}

Error doorbell_not_mapped(std::uint32_t qid, std::uint32_t dstrd, std::uint64_t offset) {
    return Error(ERANGE, "queue " + std::to_string(qid) + " doorbell at BAR0 offset " + hex(offset) + " (CAP.DSTRD=" +
                             std::to_string(dstrd) + ") is not in an mmapped part of BAR0; use fewer queues or "
                             "check the VFIO region's mmap areas");
}

}  // namespace dmakit::nvme
