#include <dmakit/drivers/net/virtio/device_init.hpp>

#include <dmakit/drivers/net/virtio/spec.hpp>

#include <cerrno>
#include <string>
#include <thread>

namespace dmakit::net::virtio {
namespace {

using feature::bit;

std::string prefix(std::string_view device) { return "virtio-net " + std::string(device) + ": "; }

// A read of a device that is gone (surprise removal, or a bus error)
// returns all ones.
constexpr std::uint8_t kGone = 0xFF;

}  // namespace

Result<std::uint64_t> choose_features(std::uint64_t offered, const FeatureRequest& request, std::string_view device) {
    if (!(offered & bit(feature::version_1))) {
        return Error(EINVAL, prefix(device) +
                                 "the device does not offer VIRTIO_F_VERSION_1 (feature bit 32): it is a legacy "
                                 "virtio device, and dmakit drives modern (virtio 1.x) devices only; make it "
                                 "modern (for QEMU: -device virtio-net-pci,disable-legacy=on,iommu_platform=on)");
    }
    if (!(offered & bit(feature::access_platform))) {
        return Error(EINVAL, prefix(device) +
                                 "the device does not offer VIRTIO_F_ACCESS_PLATFORM (feature bit 33): its DMA "
                                 "would bypass the IOMMU, but dmakit hands devices IOVAs only; enable it (for "
                                 "QEMU: -device virtio-net-pci,disable-legacy=on,iommu_platform=on)");
    }
    if (request.queue_pairs == 0) return Error(EINVAL, prefix(device) + "asked for 0 queue pairs; at least 1");
    std::uint64_t chosen = bit(feature::version_1) | bit(feature::access_platform);
    for (unsigned f : {feature::net_mac, feature::net_status, feature::net_ctrl_vq}) {
        if (offered & bit(f)) chosen |= bit(f);
    }
    // CTRL_RX and MQ depend on CTRL_VQ (§5.1.3.1).
    if ((offered & bit(feature::net_ctrl_rx)) && (chosen & bit(feature::net_ctrl_vq))) {
        chosen |= bit(feature::net_ctrl_rx);
    }
    if (request.queue_pairs > 1) {
        if (!(offered & bit(feature::net_mq)) || !(chosen & bit(feature::net_ctrl_vq))) {
            return Error(EINVAL, prefix(device) + "asked for " + std::to_string(request.queue_pairs) +
                                     " queue pairs, but the device offers one only (no VIRTIO_NET_F_MQ with a "
                                     "control queue); ask for 1, or give the device more (for QEMU: mq=on,vectors=" +
                                     std::to_string(2 * request.queue_pairs + 2) + " and a netdev with " +
                                     std::to_string(request.queue_pairs) + " queues)");
        }
        chosen |= bit(feature::net_mq);
    }
    return chosen;
}

Status begin_initialization(Transport& transport, std::chrono::microseconds timeout, std::string_view device) {
    transport.write8(common::device_status, 0);
    // §4.1.4.3.2: after writing 0 the driver waits for a 0 read before
    // reinitializing; until then the device may still use the old rings.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const std::uint8_t s = transport.read8(common::device_status);
        if (s == 0) break;
        if (s == kGone) {
            return Error(ENODEV, prefix(device) + "device_status reads 0xff: the device is gone or not responding");
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return Error(ETIMEDOUT, prefix(device) + "stuck in reset: device_status still reads " +
                                        std::to_string(s) + " " +
                                        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
                                        " ms after writing 0 (virtio 1.2 §4.1.4.3.2); reset the function "
                                        "(dmakit unbind/bind) or restart the VM");
        }
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    transport.write8(common::device_status, status::acknowledge);
    transport.write8(common::device_status, status::acknowledge | status::driver);
    return {};
}

std::uint64_t read_device_features(Transport& transport) {
    transport.write32(common::device_feature_select, 0);
    const std::uint64_t low = transport.read32(common::device_feature);
    transport.write32(common::device_feature_select, 1);
    const std::uint64_t high = transport.read32(common::device_feature);
    return low | (high << 32);
}

Status negotiate_features(Transport& transport, std::uint64_t features, std::string_view device) {
    transport.write32(common::driver_feature_select, 0);
    transport.write32(common::driver_feature, static_cast<std::uint32_t>(features));
    transport.write32(common::driver_feature_select, 1);
    transport.write32(common::driver_feature, static_cast<std::uint32_t>(features >> 32));
    const std::uint8_t before = transport.read8(common::device_status);
    transport.write8(common::device_status, static_cast<std::uint8_t>(before | status::features_ok));
    // §3.1.1 step 6: the device clears FEATURES_OK when it does not accept
    // the subset.
    const std::uint8_t after = transport.read8(common::device_status);
    if (after == kGone || (after & status::features_ok) == 0) {
        set_failed(transport);
        return Error(EPROTO, prefix(device) + "the device did not accept the features dmakit chose (FEATURES_OK "
                                              "cleared; device_status " + std::to_string(after) + ")");
    }
    return {};
}

Result<std::uint32_t> queue_max_size(Transport& transport, std::uint16_t index, std::string_view device) {
    transport.write16(common::queue_select, index);
    const std::uint16_t size = transport.read16(common::queue_size);
    if (size == 0) {
        return Error(ENODEV, prefix(device) + "the device has no virtqueue " + std::to_string(index) +
                                 " (queue_size 0, virtio 1.2 §4.1.5.1.3)");
    }
    return std::uint32_t{size};
}

Result<std::unique_ptr<QueueNotifier>> setup_queue(Transport& transport, const QueueSetup& setup,
                                                   std::string_view device) {
    transport.write16(common::queue_select, setup.index);
    transport.write16(common::queue_size, static_cast<std::uint16_t>(setup.size));
    transport.write16(common::queue_msix_vector, setup.msix_vector);
    if (setup.msix_vector != no_vector && transport.read16(common::queue_msix_vector) != setup.msix_vector) {
        return Error(EIO, prefix(device) + "the device did not take MSI-X vector " +
                              std::to_string(setup.msix_vector) + " for virtqueue " + std::to_string(setup.index) +
                              " (virtio 1.2 §4.1.5.1.2); give it more vectors (for QEMU: vectors=2N+2)");
    }
    transport.write64(common::queue_desc, setup.desc);
    transport.write64(common::queue_driver, setup.driver);
    transport.write64(common::queue_device, setup.device);
    const std::uint16_t notify_off = transport.read16(common::queue_notify_off);
    DMAKIT_ASSIGN_OR_RETURN(auto notifier, transport.notifier(setup.index, notify_off));
    transport.write16(common::queue_enable, 1);
    return notifier;
}

Status set_config_vector(Transport& transport, std::uint16_t vector, std::string_view device) {
    transport.write16(common::config_msix_vector, vector);
    if (vector != no_vector && transport.read16(common::config_msix_vector) != vector) {
        return Error(EIO, prefix(device) + "the device did not take MSI-X vector " + std::to_string(vector) +
                              " for configuration changes (virtio 1.2 §4.1.5.1.2)");
    }
    return {};
}

void set_driver_ok(Transport& transport) {
    const std::uint8_t s = transport.read8(common::device_status);
    transport.write8(common::device_status, static_cast<std::uint8_t>(s | status::driver_ok));
}

void set_failed(Transport& transport) {
    const std::uint8_t s = transport.read8(common::device_status);
    transport.write8(common::device_status, static_cast<std::uint8_t>((s == kGone ? 0 : s) | status::failed));
}

std::uint8_t device_status(Transport& transport) { return transport.read8(common::device_status); }

Result<NetConfig> read_net_config(Transport& transport, std::uint64_t features, std::string_view device) {
    for (int attempt = 0; attempt < 100; ++attempt) {
        const std::uint8_t generation = transport.read8(common::config_generation);
        NetConfig c;
        if (features & bit(feature::net_mac)) {
            for (std::uint32_t i = 0; i < 6; ++i) {
                DMAKIT_ASSIGN_OR_RETURN(c.mac.bytes[i], transport.device_read8(net_config::mac + i));
            }
        }
        if (features & bit(feature::net_status)) {
            DMAKIT_ASSIGN_OR_RETURN(c.status, transport.device_read16(net_config::status));
        } else {
            c.status = net_config::status_link_up;  // §5.1.4: without STATUS the link is assumed up
        }
        if (features & bit(feature::net_mq)) {
            DMAKIT_ASSIGN_OR_RETURN(c.max_queue_pairs, transport.device_read16(net_config::max_virtqueue_pairs));
        }
        if (transport.read8(common::config_generation) == generation) return c;
    }
    return Error(EAGAIN, prefix(device) + "device configuration kept changing while being read "
                                          "(config_generation moved 100 times)");
}

}  // namespace dmakit::net::virtio
