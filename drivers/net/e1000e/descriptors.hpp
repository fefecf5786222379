// 82574 descriptor layouts (datasheet chapter 7, "Inline Functions").
//
// The driver programs legacy descriptors for both directions. For receive,
// RFCTL.EXTEN = 0 selects the legacy layout (§7.1, legacy receive descriptor);
// QEMU's model picks its layout the same way (e1000e_rx_use_legacy_descriptor)
// and its reset value of RFCTL is 0. The extended layout is declared so the
// size/offset facts are checked, but is not used yet.
//
// The structs document the layout; the rings move whole 64-bit words through
// the encode/decode helpers below, so one load snapshots length, status and
// errors together and nothing the device wrote is fetched twice.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace dmakit::net::e1000e {

static_assert(std::endian::native == std::endian::little,
              "descriptor words are little-endian; add byte swaps for big-endian hosts");

// §7.1 legacy receive descriptor: software writes buffer_addr; the device
// writes length (bytes in this buffer, FCS excluded with RCTL.SECRC), status,
// errors. The device writes DD last (it writes the whole descriptor back).
struct LegacyRxDescriptor {
    std::uint64_t buffer_addr;
    std::uint16_t length;
    std::uint16_t checksum;
    std::uint8_t status;
    std::uint8_t errors;
    std::uint16_t special;  // VLAN tag
};
static_assert(sizeof(LegacyRxDescriptor) == 16);
static_assert(offsetof(LegacyRxDescriptor, length) == 8);
static_assert(offsetof(LegacyRxDescriptor, status) == 12);
static_assert(offsetof(LegacyRxDescriptor, errors) == 13);

// §7.1 extended receive descriptor (RFCTL.EXTEN = 1), write-back format.
struct ExtendedRxWriteback {
    std::uint32_t mrq;           // RSS type / queue
    std::uint32_t rss_or_ip_id;  // RSS hash or IP id + checksum
    std::uint32_t status_error;  // status 19:0, errors 31:20
    std::uint16_t length;
    std::uint16_t vlan;
};
static_assert(sizeof(ExtendedRxWriteback) == 16);
static_assert(offsetof(ExtendedRxWriteback, status_error) == 8);
static_assert(offsetof(ExtendedRxWriteback, length) == 12);

// §7.2 legacy transmit descriptor (DEXT = 0).
struct LegacyTxDescriptor {
    std::uint64_t buffer_addr;
    std::uint16_t length;
    std::uint8_t cso;
    std::uint8_t cmd;
    std::uint8_t status;  // DD written back when cmd has RS
    std::uint8_t css;
    std::uint16_t special;
};
static_assert(sizeof(LegacyTxDescriptor) == 16);
static_assert(offsetof(LegacyTxDescriptor, cmd) == 11);
static_assert(offsetof(LegacyTxDescriptor, status) == 12);

inline constexpr std::size_t descriptor_size = 16;

namespace rxd {
// status byte
inline constexpr std::uint8_t DD = 0x01;    // descriptor done
inline constexpr std::uint8_t EOP = 0x02;   // end of packet
inline constexpr std::uint8_t IXSM = 0x04;  // ignore checksum indication
inline constexpr std::uint8_t VP = 0x08;    // 802.1Q tag stripped
inline constexpr std::uint8_t TCPCS = 0x20;
inline constexpr std::uint8_t IPCS = 0x40;
// errors byte: frame errors make the frame unusable; checksum errors
// (TCPE 0x20, IPE 0x40) only say the offload check failed.
inline constexpr std::uint8_t ERR_CE = 0x01;   // CRC / alignment
inline constexpr std::uint8_t ERR_SE = 0x02;   // symbol
inline constexpr std::uint8_t ERR_SEQ = 0x04;  // sequence
inline constexpr std::uint8_t ERR_CXE = 0x10;  // carrier extension
inline constexpr std::uint8_t ERR_TCPE = 0x20;
inline constexpr std::uint8_t ERR_IPE = 0x40;
inline constexpr std::uint8_t ERR_RXE = 0x80;  // RX data error
inline constexpr std::uint8_t ERR_FRAME = ERR_CE | ERR_SE | ERR_SEQ | ERR_CXE | ERR_RXE;

// Fields of the second 64-bit word of a legacy RX descriptor.
[[nodiscard]] constexpr std::uint16_t length(std::uint64_t w) { return static_cast<std::uint16_t>(w); }
[[nodiscard]] constexpr std::uint8_t status(std::uint64_t w) { return static_cast<std::uint8_t>(w >> 32); }
[[nodiscard]] constexpr std::uint8_t errors(std::uint64_t w) { return static_cast<std::uint8_t>(w >> 40); }
[[nodiscard]] constexpr std::uint64_t make_writeback(std::uint16_t len, std::uint8_t st, std::uint8_t err) {
    return std::uint64_t{len} | (std::uint64_t{st} << 32) | (std::uint64_t{err} << 40);
}
}  // namespace rxd

namespace txd {
// cmd byte
inline constexpr std::uint8_t CMD_EOP = 0x01;   // last descriptor of the frame
inline constexpr std::uint8_t CMD_IFCS = 0x02;  // insert FCS
inline constexpr std::uint8_t CMD_IC = 0x04;    // insert checksum
inline constexpr std::uint8_t CMD_RS = 0x08;    // report status (write back DD)
inline constexpr std::uint8_t CMD_DEXT = 0x20;  // extended descriptor (not used)
inline constexpr std::uint8_t CMD_VLE = 0x40;
inline constexpr std::uint8_t CMD_IDE = 0x80;   // interrupt delay
// status byte
inline constexpr std::uint8_t STA_DD = 0x01;
// Longest buffer one legacy descriptor may carry (§7.2).
inline constexpr std::uint32_t max_length = 16288;

[[nodiscard]] constexpr std::uint64_t make_upper(std::uint16_t len, std::uint8_t cmd) {
    return std::uint64_t{len} | (std::uint64_t{cmd} << 24);
}
[[nodiscard]] constexpr std::uint16_t length(std::uint64_t w) { return static_cast<std::uint16_t>(w); }
[[nodiscard]] constexpr std::uint8_t cmd(std::uint64_t w) { return static_cast<std::uint8_t>(w >> 24); }
[[nodiscard]] constexpr std::uint8_t status(std::uint64_t w) { return static_cast<std::uint8_t>(w >> 32); }
}  // namespace txd

}  // namespace dmakit::net::e1000e
