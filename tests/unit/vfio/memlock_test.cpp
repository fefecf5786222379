// The locked-memory check that PciDomain::open and `dmakit doctor` run:
// PROC/self/limits and status parsed from fake files, the verdict for each
// limit, and the live /proc of this process after lowering its own limit.
#include <dmakit/dma/pci_domain.hpp>
#include <dmakit/vfio/memlock.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace dmakit::vfio {
namespace {

namespace fs = std::filesystem;

class FakeProc {
public:
    FakeProc() {
        std::string pattern = (fs::temp_directory_path() / "dmakit-memlock-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp");
        root_ = pattern;
        fs::create_directories(root_ + "/self");
    }
    ~FakeProc() {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }
    void set(const std::string& soft, const std::string& hard, const std::string& cap_eff = "0000000000000000",
             const std::string& vm_lck = "       0 kB") const {
        std::ofstream(root_ + "/self/limits")
            << "Limit                     Soft Limit           Hard Limit           Units     \n"
               "Max open files            1024                 524288               files     \n"
               "Max locked memory         " << soft << "              " << hard << "              bytes     \n";
        std::ofstream(root_ + "/self/status") << "Name:\tprog\nVmLck:\t" << vm_lck << "\nCapInh:\t0000000000000000\n"
                                              << "CapEff:\t" << cap_eff << "\n";
    }
    [[nodiscard]] const std::string& root() const { return root_; }

private:
    std::string root_;
};

TEST(Memlock, ParsesLimitsCapabilityAndLockedBytes) {
    FakeProc proc;
    proc.set("8388608", "unlimited", "0000000000004000", "    2048 kB");
    auto state = read_memlock_state(proc.root());
    ASSERT_TRUE(state.ok()) << state.error();
    EXPECT_EQ(state->soft_limit, std::optional<std::uint64_t>(8u << 20));
    EXPECT_EQ(state->hard_limit, std::nullopt);
    EXPECT_EQ(state->locked, 2u << 20);
    EXPECT_TRUE(state->cap_ipc_lock);
}

TEST(Memlock, UnreadableFilesSayWhich) {
    FakeProc proc;
    auto missing = read_memlock_state(proc.root());
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().message().find("/self/limits"), std::string::npos) << missing.error();
    proc.set("lots", "unlimited");
    auto garbled = read_memlock_state(proc.root());
    ASSERT_FALSE(garbled.ok());
    EXPECT_EQ(garbled.error().code(), EINVAL);
    EXPECT_NE(garbled.error().message().find("'lots'"), std::string::npos) << garbled.error();
}

TEST(Memlock, TooSmallLimitSaysHowToRaiseIt) {
    const MemlockState state{8u << 20, 8u << 20, 0, false};
    auto status = check_memlock(state, 64u << 20, "the DMA pool's first region");
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code(), ENOMEM);
    const std::string& text = status.error().message();
    for (const char* part : {"is 8 MiB", "pins 64 MiB", "ulimit -l 65536", "/etc/security/limits.conf",
                             "LimitMEMLOCK=64M", "prlimit --memlock=67108864", "CAP_IPC_LOCK",
                             "above the hard limit 8 MiB"}) {
        EXPECT_NE(text.find(part), std::string::npos) << part << " not in: " << text;
    }
    EXPECT_EQ(text.find('\n'), std::string::npos);
}

TEST(Memlock, LockedBytesCountAgainstTheLimit) {
    // 64 MiB limit, 1 MiB already locked: 64 MiB more does not fit, 63 does.
    const MemlockState state{64u << 20, std::nullopt, 1u << 20, false};
    EXPECT_FALSE(check_memlock(state, 64u << 20, "x").ok());
    EXPECT_TRUE(check_memlock(state, 63u << 20, "x").ok());
    auto status = check_memlock(state, 64u << 20, "x");
    ASSERT_FALSE(status.ok());
    EXPECT_NE(status.error().message().find("1 MiB already locked"), std::string::npos);
    EXPECT_NE(status.error().message().find("at least 65 MiB"), std::string::npos);
    EXPECT_EQ(status.error().message().find("hard limit"), std::string::npos) << "the hard limit is unlimited";
}

TEST(Memlock, UnlimitedOrCapabilityPasses) {
    EXPECT_TRUE(check_memlock({std::nullopt, std::nullopt, 0, false}, 1ull << 40, "x").ok());
    EXPECT_TRUE(check_memlock({0, 0, 0, true}, 1ull << 40, "x").ok());
    EXPECT_TRUE(check_memlock({64u << 20, 64u << 20, 0, false}, 64u << 20, "x").ok());
}

TEST(Memlock, PoolCheckUsesTheRegionSizeAndPolicy) {
    FakeProc proc;
    proc.set("16777216", "16777216");  // 16 MiB
    dma::PciDmaOptions options;
    options.proc = proc.root();
    auto pool = dma::check_memlock_for_pool(options);  // 64 MiB region by default
    ASSERT_FALSE(pool.ok());
    EXPECT_NE(pool.error().message().find("pins 64 MiB"), std::string::npos) << pool.error();
    options.context.pages.region_size = 8u << 20;
    EXPECT_TRUE(dma::check_memlock_for_pool(options).ok());
    options.context.pages.region_size = 64u << 20;
    options.context.policy = dma::IommuPolicy::strict;  // pins per buffer
    EXPECT_TRUE(dma::check_memlock_for_pool(options).ok());
}

// The real /proc of a child that lowered its own soft limit (always allowed).
TEST(Memlock, SeesThisProcessLimit) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        rlimit limit{};
        ::getrlimit(RLIMIT_MEMLOCK, &limit);
        limit.rlim_cur = 4u << 20;
        if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < limit.rlim_cur) limit.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_MEMLOCK, &limit) != 0) ::_exit(2);
        auto state = read_memlock_state();
        if (!state.ok() || state->soft_limit != std::optional<std::uint64_t>(limit.rlim_cur)) ::_exit(3);
        // Root has CAP_IPC_LOCK, so the check passes whatever the limit.
        const bool refused = !check_memlock(*state, 64u << 20, "x").ok();
        ::_exit(refused == !state->cap_ipc_lock ? 0 : 4);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace dmakit::vfio
