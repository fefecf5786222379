// A fake 82574 register file: plain storage plus per-register hooks, and a
// log of every access so tests can check order and batching.
#pragma once

#include <dmakit/drivers/net/e1000e/register_access.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <utility>
#include <vector>

namespace dmakit::net::test {

class FakeRegisters : public e1000e::RegisterAccess {
public:
    using ReadHook = std::function<std::uint32_t(std::uint32_t& stored)>;
    using WriteHook = std::function<void(std::uint32_t& stored, std::uint32_t value)>;

    std::uint32_t read32(std::uint32_t offset) override {
        log_.push_back({false, offset, 0});
        std::uint32_t& stored = regs_[offset];
        if (auto it = read_hooks_.find(offset); it != read_hooks_.end()) return it->second(stored);
        const std::uint32_t v = stored;
        if (clear_on_read_.count(offset) != 0) stored = 0;
        return v;
    }
    void write32(std::uint32_t offset, std::uint32_t value) override {
        log_.push_back({true, offset, value});
        std::uint32_t& stored = regs_[offset];
        if (auto it = write_hooks_.find(offset); it != write_hooks_.end()) it->second(stored, value);
        else stored = value;
    }

    std::uint32_t& at(std::uint32_t offset) { return regs_[offset]; }
    void on_read(std::uint32_t offset, ReadHook hook) { read_hooks_[offset] = std::move(hook); }
    void on_write(std::uint32_t offset, WriteHook hook) { write_hooks_[offset] = std::move(hook); }
    void clear_on_read(std::uint32_t offset) { clear_on_read_.insert(offset); }

    struct Access {
        bool write;
        std::uint32_t offset;
        std::uint32_t value;
    };
    const std::vector<Access>& log() const { return log_; }
    void clear_log() { log_.clear(); }
    std::size_t writes_to(std::uint32_t offset) const {
        std::size_t n = 0;
        for (const auto& a : log_) n += (a.write && a.offset == offset) ? 1 : 0;
        return n;
    }
    // Index in the log of the first matching access, or -1.
    long first(bool write, std::uint32_t offset, std::size_t from = 0) const {
        for (std::size_t i = from; i < log_.size(); ++i) {
            if (log_[i].write == write && log_[i].offset == offset) return static_cast<long>(i);
        }
        return -1;
    }

private:
    std::map<std::uint32_t, std::uint32_t> regs_;
    std::map<std::uint32_t, ReadHook> read_hooks_;
    std::map<std::uint32_t, WriteHook> write_hooks_;
    std::set<std::uint32_t> clear_on_read_;
    std::vector<Access> log_;
};

}  // namespace dmakit::net::test
