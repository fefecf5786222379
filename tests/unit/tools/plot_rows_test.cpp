// scripts/lib/plot-rows on a small rows file (data/plot_rows.json): a chart
// per metric with a peer and one for the DMA sweep, each well-formed SVG
// naming its series, the machine and the command; none for a metric with no
// peer; bad input refused with one line and exit 2.
#include "run_tool.hpp"
#include "xml_check.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace dmakit::testing {
namespace {

namespace fs = std::filesystem;

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

std::string slurp(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream content;
    content << in.rdbuf();
    return content.str();
}

class PlotRows : public ::testing::Test {
protected:
    void SetUp() override {
        script = env("DMAKIT_PLOT_ROWS");
        fixture = env("DMAKIT_PLOT_ROWS_FIXTURE");
        ASSERT_FALSE(script.empty() || fixture.empty()) << "run through: meson test --suite unit";
        char pattern[] = "/tmp/plot-rows-test.XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        out = pattern;
    }
    void TearDown() override {
        if (!out.empty()) fs::remove_all(out);
    }
    std::string script, fixture;
    fs::path out;
};

TEST_F(PlotRows, DrawsEachMetricWithAPeerAndTheSweep) {
    const auto run = run_program(script, {fixture, "--out", out.string()});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    struct Expected {
        const char* file;
        std::vector<const char*> texts;
    };
    const std::vector<Expected> expected = {
        {"nvme-slab_pair.svg", {"dmakit / rte_mempool", "dmakit / glibc", "slab_pair", "64B", "2KiB", "lower is better"}},
        {"nvme-nvme_randread_iops.svg", {"dmakit / linux_fio", "pool/hugepage", "higher is better"}},
        {"nvme-nic_tx_pps.svg", {"dmakit / dpdk_testpmd", "0000:00:04.0"}},
        {"nvme-dma_sweep.svg",
         {"hugepage PRP", "map_single SGL", "4k_pages", "sequential read", "sequential write", "throughput (MiB/s)",
          "transfer size per I/O (log2 scale)", "4 KiB", "4 MiB"}},
    };
    for (const auto& e : expected) {
        const fs::path file = out / e.file;
        ASSERT_TRUE(fs::exists(file)) << e.file << " not written; stdout: " << run.out;
        EXPECT_NE(run.out.find(file.string()), std::string::npos) << "path not printed: " << e.file;
        const std::string svg = slurp(file);
        EXPECT_EQ(xml_problem(svg), "") << e.file;
        EXPECT_NE(svg.find("<svg"), std::string::npos) << e.file;
        for (const char* text : e.texts) EXPECT_NE(svg.find(text), std::string::npos) << e.file << ": no " << text;
        EXPECT_NE(svg.find("fixture machine, 2 CPUs"), std::string::npos) << e.file << ": no machine";
        EXPECT_NE(svg.find("scripts/run-bench nvme --json fixture.json"), std::string::npos) << e.file << ": no command";
    }
    EXPECT_FALSE(fs::exists(out / "nvme-metadata_overhead.svg")) << "a metric with no peer got a chart";
    const auto files = std::distance(fs::directory_iterator(out), fs::directory_iterator{});
    EXPECT_EQ(files, static_cast<long>(expected.size()));
}

TEST_F(PlotRows, RedrawingGivesTheSameFile) {
    ASSERT_EQ(run_program(script, {fixture, "--out", (out / "a").string()}).exit_code, 0);
    ASSERT_EQ(run_program(script, {fixture, "--out", (out / "b").string()}).exit_code, 0);
    EXPECT_EQ(slurp(out / "a" / "nvme-dma_sweep.svg"), slurp(out / "b" / "nvme-dma_sweep.svg"));
}

TEST_F(PlotRows, BadInputIsOneLineAndExitTwo) {
    const fs::path not_rows = out / "not-rows.json";
    std::ofstream(not_rows) << "{\"suite\": \"mem\"}";
    const fs::path no_chart = out / "no-chart.json";
    std::ofstream(no_chart) << "{\"suite\": \"mem\", \"rows\": [{\"metric\": \"m\", \"size\": \"1B\", \"unit\": \"%\", "
                               "\"better\": \"lower\", \"value\": 1, \"peer\": null, \"peer_value\": null, \"ratio\": null}]}";
    const fs::path broken = out / "broken.json";
    std::ofstream(broken) << "{\"rows\": [";
    struct Case {
        std::vector<std::string> args;
        const char* says;
    };
    const std::vector<Case> cases = {
        {{(out / "missing.json").string(), "--out", out.string()}, "cannot read rows"},
        {{broken.string(), "--out", out.string()}, "cannot read rows"},
        {{not_rows.string(), "--out", out.string()}, "no \"rows\" list"},
        {{no_chart.string(), "--out", out.string()}, "nothing to draw"},
        {{fixture, "--out", "/proc/no-such-dir/charts"}, "cannot create"},
    };
    for (const auto& c : cases) {
        const auto run = run_program(script, c.args);
        EXPECT_EQ(run.exit_code, 2) << c.args[0] << ": " << run.err;
        EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
        EXPECT_NE(run.err.find(c.says), std::string::npos) << run.err;
        EXPECT_TRUE(run.out.empty()) << run.out;
    }
}

}  // namespace
}  // namespace dmakit::testing
