// Constants of the virtio 1.2 specification that the virtio-net driver uses,
// each with the section that defines it. Only the modern (non-legacy)
// interface: every field is little-endian, as x86 is.
#pragma once

#include <cstdint>

namespace dmakit::net::virtio {

// §4.1.2: PCI vendor 0x1AF4; a modern device is 0x1040 + the device type
// (network = 1, §5.1.1). 0x1000 is the transitional (legacy-capable) network
// device, which this driver refuses.
inline constexpr std::uint16_t pci_vendor = 0x1AF4;
inline constexpr std::uint16_t pci_device_net_modern = 0x1041;
inline constexpr std::uint16_t pci_device_net_transitional = 0x1000;

// §2.1: device status bits.
namespace status {
inline constexpr std::uint8_t acknowledge = 1;
inline constexpr std::uint8_t driver = 2;
inline constexpr std::uint8_t driver_ok = 4;
inline constexpr std::uint8_t features_ok = 8;
inline constexpr std::uint8_t device_needs_reset = 64;
inline constexpr std::uint8_t failed = 128;
}  // namespace status

// Feature bit numbers: §6 (reserved, transport-independent) and §5.1.3 (net).
namespace feature {
inline constexpr unsigned net_mtu = 3;
inline constexpr unsigned net_mac = 5;
inline constexpr unsigned net_mrg_rxbuf = 15;
inline constexpr unsigned net_status = 16;
inline constexpr unsigned net_ctrl_vq = 17;
inline constexpr unsigned net_ctrl_rx = 18;
inline constexpr unsigned net_mq = 22;
inline constexpr unsigned ring_indirect_desc = 28;
inline constexpr unsigned ring_event_idx = 29;
inline constexpr unsigned version_1 = 32;
inline constexpr unsigned access_platform = 33;
inline constexpr unsigned ring_packed = 34;
inline constexpr unsigned in_order = 35;
inline constexpr unsigned notification_data = 38;

[[nodiscard]] constexpr std::uint64_t bit(unsigned n) noexcept { return std::uint64_t{1} << n; }
}  // namespace feature

// §4.1.4: virtio_pci_cap, a vendor-specific (0x09) PCI capability.
namespace pci_cap {
inline constexpr std::uint8_t common_cfg = 1;
inline constexpr std::uint8_t notify_cfg = 2;
inline constexpr std::uint8_t isr_cfg = 3;
inline constexpr std::uint8_t device_cfg = 4;
// Byte offsets inside the capability.
inline constexpr std::uint32_t cap_len = 2;
inline constexpr std::uint32_t cfg_type = 3;
inline constexpr std::uint32_t bar = 4;
inline constexpr std::uint32_t offset = 8;
inline constexpr std::uint32_t length = 12;
inline constexpr std::uint32_t size = 16;                   // struct virtio_pci_cap
inline constexpr std::uint32_t notify_off_multiplier = 16;  // §4.1.4.4, struct virtio_pci_notify_cap
inline constexpr std::uint32_t notify_size = 20;
inline constexpr std::uint8_t max_bar = 5;                  // 0..5; others reserved: ignored
}  // namespace pci_cap

// §4.1.4.3: struct virtio_pci_common_cfg, byte offsets.
namespace common {
inline constexpr std::uint32_t device_feature_select = 0x00;
inline constexpr std::uint32_t device_feature = 0x04;
inline constexpr std::uint32_t driver_feature_select = 0x08;
inline constexpr std::uint32_t driver_feature = 0x0C;
inline constexpr std::uint32_t config_msix_vector = 0x10;
inline constexpr std::uint32_t num_queues = 0x12;
inline constexpr std::uint32_t device_status = 0x14;
inline constexpr std::uint32_t config_generation = 0x15;
inline constexpr std::uint32_t queue_select = 0x16;
inline constexpr std::uint32_t queue_size = 0x18;
inline constexpr std::uint32_t queue_msix_vector = 0x1A;
inline constexpr std::uint32_t queue_enable = 0x1C;
inline constexpr std::uint32_t queue_notify_off = 0x1E;
inline constexpr std::uint32_t queue_desc = 0x20;    // le64, written as two le32 (§4.1.3.1)
inline constexpr std::uint32_t queue_driver = 0x28;
inline constexpr std::uint32_t queue_device = 0x30;
inline constexpr std::uint32_t size = 0x38;          // the fields above; 1.2 adds two more
}  // namespace common

// §4.1.5.1.2: "no vector": the device signals nothing for that source.
inline constexpr std::uint16_t no_vector = 0xFFFF;

// §2.7.5 descriptor flags, §2.7.6 / §2.7.8 ring flags.
namespace vring {
inline constexpr std::uint16_t desc_f_next = 1;
inline constexpr std::uint16_t desc_f_write = 2;
inline constexpr std::uint16_t avail_f_no_interrupt = 1;
inline constexpr std::uint16_t used_f_no_notify = 1;
inline constexpr std::uint32_t max_size = 32768;  // §2.7: Queue Size, a power of 2
}  // namespace vring

// §5.1.4: struct virtio_net_config, byte offsets.
namespace net_config {
inline constexpr std::uint32_t mac = 0;                    // u8[6], with VIRTIO_NET_F_MAC
inline constexpr std::uint32_t status = 6;                 // le16, with VIRTIO_NET_F_STATUS
inline constexpr std::uint32_t max_virtqueue_pairs = 8;    // le16, with VIRTIO_NET_F_MQ
inline constexpr std::uint16_t status_link_up = 1;
inline constexpr std::uint16_t status_announce = 2;
}  // namespace net_config

// §5.1.6: struct virtio_net_hdr. With VIRTIO_F_VERSION_1 it is 12 bytes
// whether or not MRG_RXBUF is negotiated (num_buffers is always there).
namespace net_hdr {
inline constexpr std::uint32_t size = 12;
inline constexpr std::uint32_t flags = 0;        // u8
inline constexpr std::uint32_t gso_type = 1;     // u8
inline constexpr std::uint8_t gso_none = 0;
}  // namespace net_hdr

// §5.1.6.5: control virtqueue commands.
namespace ctrl {
inline constexpr std::uint8_t ok = 0;
inline constexpr std::uint8_t err = 1;
inline constexpr std::uint8_t class_rx = 0;          // §5.1.6.5.1
inline constexpr std::uint8_t rx_promisc = 0;
inline constexpr std::uint8_t class_mq = 4;          // §5.1.6.5.5
inline constexpr std::uint8_t mq_vq_pairs_set = 0;   // §5.1.6.5.6
inline constexpr std::uint16_t mq_pairs_min = 1;
inline constexpr std::uint16_t mq_pairs_max = 0x8000;
}  // namespace ctrl

// §5.1.2: receiveqN = 2(N-1), transmitqN = 2(N-1)+1, controlq = 2 *
// max_virtqueue_pairs (or 2 without VIRTIO_NET_F_MQ).
[[nodiscard]] constexpr std::uint16_t rx_queue_index(std::uint32_t pair) noexcept {
    return static_cast<std::uint16_t>(2 * pair);
}
[[nodiscard]] constexpr std::uint16_t tx_queue_index(std::uint32_t pair) noexcept {
    return static_cast<std::uint16_t>(2 * pair + 1);
}

}  // namespace dmakit::net::virtio
