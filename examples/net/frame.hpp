// Test frames for the NIC examples and VM tests: Ethernet + IPv4 + UDP, with
// a payload that says which run and which frame it is and checks itself.
//
// Payload (at offset 42): seq (u64 LE) | run id (u32 LE) | checksum (u32 LE)
// | fill bytes derived from seq. The checksum (FNV-1a 32) covers the payload
// except its own field, so any flipped byte, a frame from another run, or a
// frame truncated/extended is seen. Frames are at least 60 bytes (the
// minimum Ethernet frame without FCS).
#pragma once

#include <dmakit/drivers/net/nic.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace dmakit::examples {

inline constexpr std::size_t kMinFrame = 60;
inline constexpr std::size_t kMaxFrame = 1514;
inline constexpr std::size_t kPayloadOffset = 42;
inline constexpr std::uint16_t kUdpPort = 54439;  // ours: frames to other ports are not checked

enum class FrameCheck { ok, foreign, corrupt };

namespace detail {
inline std::uint32_t fnv(std::uint32_t h, const std::byte* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        h ^= static_cast<std::uint8_t>(p[i]);
        h *= 16777619u;
    }
    return h;
}
inline std::uint32_t payload_checksum(const std::byte* payload, std::size_t length) {
    std::uint32_t h = fnv(2166136261u, payload, 12);
    return fnv(h, payload + 16, length - 16);
}
inline void put16be(std::byte* p, std::uint16_t v) {
    p[0] = std::byte(v >> 8);
    p[1] = std::byte(v & 0xff);
}
inline std::uint16_t get16be(const std::byte* p) {
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(p[0]) << 8) | std::to_integer<unsigned>(p[1]));
}
}  // namespace detail

// Writes the Ethernet, IPv4 and UDP headers (kPayloadOffset bytes) of a
// frame of `length` bytes (60..1514) into `out`; the payload is the caller's.
inline void write_headers(std::span<std::byte> out, std::size_t length, const net::MacAddress& dst,
                          const net::MacAddress& src) {
    std::byte* f = out.data();
    std::memcpy(f, dst.bytes.data(), 6);
    std::memcpy(f + 6, src.bytes.data(), 6);
    detail::put16be(f + 12, 0x0800);
    // IPv4: version 4, IHL 5, total length, TTL 64, UDP, 10.0.0.1 -> 10.0.0.2.
    std::byte* ip = f + 14;
    std::memset(ip, 0, 20);
    ip[0] = std::byte{0x45};
    detail::put16be(ip + 2, static_cast<std::uint16_t>(length - 14));
    ip[8] = std::byte{64};
    ip[9] = std::byte{17};
    const std::uint8_t addrs[8] = {10, 0, 0, 1, 10, 0, 0, 2};
    std::memcpy(ip + 12, addrs, 8);
    std::uint32_t sum = 0;
    for (int i = 0; i < 20; i += 2) sum += detail::get16be(ip + i);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    detail::put16be(ip + 10, static_cast<std::uint16_t>(~sum));
    std::byte* udp = f + 34;
    detail::put16be(udp, kUdpPort);
    detail::put16be(udp + 2, kUdpPort);
    detail::put16be(udp + 4, static_cast<std::uint16_t>(length - 34));
    detail::put16be(udp + 6, 0);  // no UDP checksum (allowed for IPv4)
}

// Writes a whole test frame of `length` bytes (60..1514) into `out`.
inline void build_frame(std::span<std::byte> out, std::size_t length, const net::MacAddress& dst,
                        const net::MacAddress& src, std::uint32_t run, std::uint64_t seq) {
    write_headers(out, length, dst, src);
    std::byte* payload = out.data() + kPayloadOffset;
    const std::size_t plen = length - kPayloadOffset;
    std::memcpy(payload, &seq, 8);
    std::memcpy(payload + 8, &run, 4);
    for (std::size_t i = 16; i < plen; ++i) payload[i] = std::byte(static_cast<std::uint8_t>(seq * 31 + i));
    const std::uint32_t c = detail::payload_checksum(payload, plen);
    std::memcpy(payload + 12, &c, 4);
}

inline void build_frame(net::PacketBuffer& b, std::size_t length, const net::MacAddress& dst,
                        const net::MacAddress& src, std::uint32_t run, std::uint64_t seq) {
    build_frame(std::span(b.data(), b.room()), length, dst, src, run, seq);
    b.length = static_cast<std::uint32_t>(length);
}

// Gives a built frame its own UDP source port: a flow of its own for a
// receiver that spreads flows over queues by hash. The UDP checksum is off
// (write_headers), so nothing else changes.
inline void set_udp_source_port(net::PacketBuffer& b, std::uint16_t port) { detail::put16be(b.data() + 34, port); }

// ok (and *seq set) for an intact frame of run `run`; foreign for anything
// that is not one of our test frames of this run; corrupt for one of ours
// whose checksum, length or fill does not match.
inline FrameCheck check_frame(std::span<const std::byte> frame, std::uint32_t run, std::uint64_t* seq) {
    if (frame.size() < kMinFrame) return FrameCheck::foreign;
    const std::byte* f = frame.data();
    if (detail::get16be(f + 12) != 0x0800 || f[23] != std::byte{17} ||
        detail::get16be(f + 36) != kUdpPort) {
        return FrameCheck::foreign;
    }
    const std::byte* payload = f + kPayloadOffset;
    std::uint32_t frame_run;
    std::memcpy(&frame_run, payload + 8, 4);
    if (frame_run != run) return FrameCheck::foreign;
    const std::size_t ip_len = detail::get16be(f + 16);
    if (ip_len + 14 != frame.size()) return FrameCheck::corrupt;
    std::uint32_t c;
    std::memcpy(&c, payload + 12, 4);
    if (c != detail::payload_checksum(payload, frame.size() - kPayloadOffset)) return FrameCheck::corrupt;
    std::memcpy(seq, payload, 8);
    return FrameCheck::ok;
}

}  // namespace dmakit::examples
