// The examples' SVG line chart (examples/svg_line_chart.hpp, drawn by
// nvme_perf --sweep --plot): well-formed XML whatever the names hold, every
// series drawn and named, points placed on the axes' scales.
#include "svg_line_chart.hpp"
#include "xml_check.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <regex>
#include <string>
#include <vector>

namespace dmakit::testing {
namespace {

using examples::ChartPanel;
using examples::ChartSeries;
using examples::LineChart;

LineChart sweep_like() {
    LineChart chart;
    chart.title = "DMA throughput";
    chart.x_label = "transfer size per I/O (log2 scale)";
    chart.y_label = "throughput (MiB/s)";
    chart.x_tick_text = examples::byte_size_text;
    chart.footnote = {"nvme_perf --sweep -t 1 --plot sweep.svg", "controller 0000:00:03.0"};
    for (const char* op : {"read", "write"}) {
        ChartPanel panel{op, {}};
        panel.series.push_back({"hugepage PRP", {{4096, 45}, {65536, 412}, {4 << 20, 2328}}, 0, false});
        panel.series.push_back({"hugepage SGL", {{4096, 51}, {65536, 473}, {4 << 20, 3060}}, 0, true});
        panel.series.push_back({"map_single PRP", {{4096, 23}, {65536, 192}, {4 << 20, 416}}, 2, false});
        chart.panels.push_back(panel);
    }
    return chart;
}

// The "x,y" pairs of each polyline, in document order.
std::vector<std::vector<std::pair<double, double>>> polylines(const std::string& svg) {
    std::vector<std::vector<std::pair<double, double>>> out;
    const std::regex points_attr("<polyline[^>]* points=\"([^\"]*)\"");
    const std::regex pair("(-?[0-9.]+),(-?[0-9.]+)");
    for (auto it = std::sregex_iterator(svg.begin(), svg.end(), points_attr); it != std::sregex_iterator(); ++it) {
        const std::string points = (*it)[1];
        auto& line = out.emplace_back();
        for (auto p = std::sregex_iterator(points.begin(), points.end(), pair); p != std::sregex_iterator(); ++p) {
            line.emplace_back(std::stod((*p)[1]), std::stod((*p)[2]));
        }
    }
    return out;
}

TEST(SvgLineChart, IsWellFormedAndDrawsEverySeriesInEveryPanel) {
    const std::string svg = examples::to_svg(sweep_like());
    EXPECT_EQ(xml_problem(svg), "") << svg;
    EXPECT_EQ(xml_element_count(svg, "svg"), 1);
    EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
    EXPECT_EQ(xml_element_count(svg, "polyline"), 6);  // 3 series x 2 panels
    for (const char* text : {"hugepage PRP", "hugepage SGL", "map_single PRP", "DMA throughput",
                             "throughput (MiB/s)", "transfer size per I/O (log2 scale)", ">read<", ">write<",
                             "4 KiB", "4 MiB", "nvme_perf --sweep -t 1 --plot sweep.svg"}) {
        EXPECT_NE(svg.find(text), std::string::npos) << text;
    }
    EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos) << "the dashed series is not dashed";
}

TEST(SvgLineChart, PointsFollowTheAxes) {
    const auto lines = polylines(examples::to_svg(sweep_like()));
    ASSERT_EQ(lines.size(), 6u);
    const auto& hugepage_prp = lines[0];
    ASSERT_EQ(hugepage_prp.size(), 3u);
    // Log2 x: 4 KiB -> 64 KiB is 4 doublings, 64 KiB -> 4 MiB is 6.
    const double step1 = hugepage_prp[1].first - hugepage_prp[0].first;
    const double step2 = hugepage_prp[2].first - hugepage_prp[1].first;
    EXPECT_GT(step1, 0);
    EXPECT_NEAR(step2 / step1, 6.0 / 4.0, 0.01);
    // Linear y from 0, drawn downwards: larger values higher up, proportionally.
    const double base = hugepage_prp[0].second + 45.0 * (hugepage_prp[0].second - hugepage_prp[1].second) / (412 - 45);
    EXPECT_GT(hugepage_prp[0].second, hugepage_prp[1].second);
    EXPECT_GT(hugepage_prp[1].second, hugepage_prp[2].second);
    EXPECT_NEAR((base - hugepage_prp[2].second) / (base - hugepage_prp[1].second), 2328.0 / 412.0, 0.02);
    // The same series in the second panel sits further right, at the same heights.
    EXPECT_GT(lines[3][0].first, hugepage_prp[2].first);
    EXPECT_DOUBLE_EQ(lines[3][2].second, hugepage_prp[2].second);
}

TEST(SvgLineChart, NamesWithMarkupAreEscaped) {
    LineChart chart = sweep_like();
    chart.title = "a <b> & \"c\" 'd'";
    chart.panels[0].series[0].name = "</text><script>alert(1)</script>&x";
    chart.footnote.push_back(std::string("control\x01" "char"));
    const std::string svg = examples::to_svg(chart);
    EXPECT_EQ(xml_problem(svg), "") << svg;
    EXPECT_EQ(svg.find("<script"), std::string::npos);
    EXPECT_NE(svg.find("a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;"), std::string::npos);
    EXPECT_NE(svg.find("controlchar"), std::string::npos);
}

TEST(SvgLineChart, BadPointsAreLeftOutAndAnEmptyChartStillHasAxes) {
    LineChart chart = sweep_like();
    chart.panels[0].series[0].points.push_back({0, 10});
    chart.panels[0].series[0].points.push_back({8192, std::nan("")});
    chart.panels[0].series[0].points.push_back({-4, 1});
    const auto lines = polylines(examples::to_svg(chart));
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines[0].size(), 3u);
    for (const auto& [x, y] : lines[0]) {
        EXPECT_TRUE(std::isfinite(x) && std::isfinite(y));
    }

    LineChart empty;
    empty.title = "nothing measured";
    empty.panels.push_back({"read", {}});
    const std::string svg = examples::to_svg(empty);
    EXPECT_EQ(xml_problem(svg), "") << svg;
    EXPECT_NE(svg.find("nothing measured"), std::string::npos);
    EXPECT_EQ(xml_element_count(svg, "polyline"), 0);
}

TEST(XmlCheck, RefusesWhatIsNotWellFormed) {
    EXPECT_EQ(xml_problem("<a><b/></a>"), "");
    EXPECT_EQ(xml_problem("<?xml version=\"1.0\"?>\n<!DOCTYPE svg PUBLIC \"x\" \"y\">\n<!-- c --><a x='1'>&amp;&#38;&#x26;<![CDATA[<&]]></a>\n"), "");
    for (const char* bad : {"<a><b></a>", "<a>", "<a></a><b/>", "<a x=1/>", "<a x=\"1\" x=\"2\"/>", "<a>&</a>",
                            "<a>&nope;</a>", "<a x=\"<\"/>", "text<a/>", "<a>< b</a>", "", "<a x=\"1\"y=\"2\"/>"}) {
        EXPECT_NE(xml_problem(bad), "") << bad;
    }
}

}  // namespace
}  // namespace dmakit::testing
