// Bringing a virtio-net device up over a Transport, step by step as virtio
// 1.2 §3.1.1 orders it:
//   1. reset (write 0 to device_status, wait until it reads 0, §4.1.4.3.2)
//   2. ACKNOWLEDGE, 3. DRIVER
//   4. read the 64 feature bits, choose ours (choose_features)
//   5. write them, set FEATURES_OK, 6. re-read: the device may refuse
//   7. per queue (§4.1.5.1.3): select, size, MSI-X vector (read back,
//      §4.1.5.1.2), ring addresses, doorbell, enable; device configuration
//   8. DRIVER_OK
// The Nic (virtio_net.cpp) allocates ring memory between 6 and 7. Each step
// is a function so the unit tests drive it over a fake device; every error
// names the device and, where the device model is to blame, what to change
// on it ("for QEMU: disable-legacy=on,iommu_platform=on").
#pragma once

#include <dmakit/support/result.hpp>

#include <dmakit/drivers/net/nic.hpp>
#include <dmakit/drivers/net/virtio/transport.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

namespace dmakit::net::virtio {

// What the driver asks of the device.
struct FeatureRequest {
    std::uint32_t queue_pairs = 1;
};

// The features dmakit uses, from what the device offers:
//   required  VERSION_1 (modern device: little-endian, 12-byte header) and
//             ACCESS_PLATFORM (every address the device sees is translated by
//             the IOMMU, so dmakit can hand it IOVAs);
//   taken     MAC, STATUS, CTRL_VQ, CTRL_RX when offered; MQ (with CTRL_VQ)
//             only when more than one queue pair is asked for;
//   left      MRG_RXBUF (one 2 KiB buffer per frame is simpler and needs no
//             reassembly), every offload (CSUM, GSO: the header stays zero),
//             MTU (it would oblige RX buffers of mtu + 14 bytes, §5.1.4.2;
//             frames stay at 1514 + a VLAN tag), EVENT_IDX, INDIRECT_DESC,
//             PACKED, NOTIFICATION_DATA.
// EINVAL naming `device` for a missing required feature, or queue_pairs > 1
// without MQ and CTRL_VQ; EINVAL for queue_pairs 0.
[[nodiscard]] Result<std::uint64_t> choose_features(std::uint64_t offered, const FeatureRequest& request,
                                                    std::string_view device);

// Steps 1-3. ETIMEDOUT "stuck in reset" when device_status does not read 0
// within `timeout`; ENODEV when it reads all ones (the device is gone).
[[nodiscard]] Status begin_initialization(Transport& transport, std::chrono::microseconds timeout,
                                          std::string_view device);

// Step 4: the 64 bits of device_feature through device_feature_select.
[[nodiscard]] std::uint64_t read_device_features(Transport& transport);

// Steps 5-6. EPROTO when the device clears FEATURES_OK (it does not accept
// the subset); the driver then sets FAILED.
[[nodiscard]] Status negotiate_features(Transport& transport, std::uint64_t features, std::string_view device);

// Step 7, one queue. `max_size` reads queue_size: ENODEV when the device
// does not have the queue (size 0).
[[nodiscard]] Result<std::uint32_t> queue_max_size(Transport& transport, std::uint16_t index, std::string_view device);

struct QueueSetup {
    std::uint16_t index = 0;
    std::uint32_t size = 0;       // power of two <= the queue's max size
    DeviceAddress desc = 0;       // §2.7.5 descriptor table
    DeviceAddress driver = 0;     // §2.7.6 available ring
    DeviceAddress device = 0;     // §2.7.8 used ring
    std::uint16_t msix_vector = 0xFFFF;
};

// Programs and enables the queue; returns its doorbell. EIO when the device
// did not take the MSI-X vector (reads back NO_VECTOR).
[[nodiscard]] Result<std::unique_ptr<QueueNotifier>> setup_queue(Transport& transport, const QueueSetup& setup,
                                                                 std::string_view device);

// config_msix_vector (§4.1.5.1.2); EIO when not taken.
[[nodiscard]] Status set_config_vector(Transport& transport, std::uint16_t vector, std::string_view device);

// Step 8.
void set_driver_ok(Transport& transport);
// Gives up on the device (§3.1.1: FAILED), keeping the bits already set.
void set_failed(Transport& transport);

// §5.1.4 fields this driver reads, consistent across a config_generation
// read (§4.1.4.3.2: re-read when it changed).
struct NetConfig {
    MacAddress mac;                      // zero without VIRTIO_NET_F_MAC
    std::uint16_t status = 0;            // link up unless VIRTIO_NET_F_STATUS says otherwise
    std::uint16_t max_queue_pairs = 1;   // 1 without VIRTIO_NET_F_MQ
};
[[nodiscard]] Result<NetConfig> read_net_config(Transport& transport, std::uint64_t features, std::string_view device);

// The device_status byte, for link checks and teardown.
[[nodiscard]] std::uint8_t device_status(Transport& transport);

}  // namespace dmakit::net::virtio
