// A small SVG line chart for the examples (nvme_perf --sweep --plot): one or
// more panels side by side sharing a linear y axis from 0, a log2 x axis
// with a tick at each power of two, a legend and a footnote. Written here
// rather than piped to gnuplot so an installed example draws its chart with
// nothing else installed. Example code, not library code. Tested in
// tests/unit/tools/svg_line_chart_test.cpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dmakit::examples {

struct ChartSeries {
    std::string name;                              // the legend's text
    std::vector<std::pair<double, double>> points;  // (x, y); x > 0 (log2 axis)
    int colour = 0;                                 // index into the palette, wraps
    bool dashed = false;
};

struct ChartPanel {
    std::string title;
    std::vector<ChartSeries> series;
};

struct LineChart {
    std::string title;
    std::string x_label;  // with its unit, e.g. "transfer size per I/O (bytes, log2 scale)"
    std::string y_label;  // with its unit, e.g. "throughput (MiB/s)"
    std::vector<ChartPanel> panels;
    std::vector<std::string> footnote;  // one line each: command, machine
    std::string (*x_tick_text)(double) = nullptr;  // default: the number
};

// Text and attribute values: the five XML specials escaped, control
// characters (not allowed in XML 1.0) dropped.
inline std::string xml_escape(std::string_view s) {
    std::string out;
    for (char ch : s) {
        switch (ch) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&apos;"; break;
            default:
                if (static_cast<unsigned char>(ch) >= 0x20 || ch == '\t' || ch == '\n') out += ch;
        }
    }
    return out;
}

// "4 KiB", "1 MiB", "512 B": a tick label for byte sizes.
inline std::string byte_size_text(double bytes) {
    static const std::pair<const char*, double> units[] = {{"GiB", 1073741824.0}, {"MiB", 1048576.0}, {"KiB", 1024.0}};
    char buf[48];
    for (const auto& [name, scale] : units) {
        if (bytes >= scale) {
            std::snprintf(buf, sizeof buf, "%g %s", bytes / scale, name);
            return buf;
        }
    }
    std::snprintf(buf, sizeof buf, "%g B", bytes);
    return buf;
}

namespace svg_detail {

inline std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return buf;
}

// A y tick's label: whole numbers without a fraction, small steps with one.
inline std::string tick(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.10g", std::abs(v) < 1e-9 ? 0.0 : v);
    return buf;
}

// 1, 2 or 5 times a power of ten, at least `raw`: a tick step people read.
inline double nice_step(double raw) {
    const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    for (double m : {1.0, 2.0, 5.0, 10.0}) {
        if (m * magnitude >= raw) return m * magnitude;
    }
    return 10.0 * magnitude;
}

inline std::string text(double x, double y, std::string_view s, std::string_view extra = {}) {
    return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\"" + (extra.empty() ? "" : " ") + std::string(extra) + ">" +
           xml_escape(s) + "</text>\n";
}

inline std::string line(double x1, double y1, double x2, double y2, std::string_view style) {
    return "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" + num(y2) + "\" " +
           std::string(style) + "/>\n";
}

}  // namespace svg_detail

// The whole document. Non-finite points and x <= 0 are left out (they have
// no place on the axes); a chart with no point at all still has its axes.
inline std::string to_svg(const LineChart& chart) {
    using namespace svg_detail;
    static const char* const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"};
    constexpr double panel_w = 380, panel_h = 260, left = 70, top = 60, gap = 40, legend_w = 190;
    constexpr double bottom = 60, footnote_line = 14;

    double x_min = INFINITY, x_max = -INFINITY, y_max = 0;
    std::vector<std::string> legend;  // names in first-seen order, with their style
    std::vector<const ChartSeries*> legend_series;
    for (const auto& panel : chart.panels) {
        for (const auto& s : panel.series) {
            for (const auto& [x, y] : s.points) {
                if (!std::isfinite(x) || !std::isfinite(y) || x <= 0) continue;
                x_min = std::min(x_min, x);
                x_max = std::max(x_max, x);
                y_max = std::max(y_max, y);
            }
            if (std::find(legend.begin(), legend.end(), s.name) == legend.end()) {
                legend.push_back(s.name);
                legend_series.push_back(&s);
            }
        }
    }
    if (!(x_min <= x_max)) x_min = x_max = 1;
    double e_min = std::floor(std::log2(x_min)), e_max = std::ceil(std::log2(x_max));
    if (e_min == e_max) { e_min -= 1; e_max += 1; }
    const double y_step = nice_step(y_max > 0 ? y_max / 5 : 0.2);
    const double y_top = std::max(y_step, std::ceil(y_max / y_step) * y_step);

    const std::size_t n_panels = std::max<std::size_t>(chart.panels.size(), 1);
    const double width = left + double(n_panels) * panel_w + double(n_panels - 1) * gap + 20 + legend_w;
    const double height = top + panel_h + bottom + footnote_line * double(chart.footnote.size()) + 10;

    std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" + num(height) +
           "\" viewBox=\"0 0 " + num(width) + " " + num(height) + "\" font-family=\"sans-serif\" font-size=\"11\">\n";
    out += "<rect x=\"0\" y=\"0\" width=\"" + num(width) + "\" height=\"" + num(height) + "\" fill=\"white\"/>\n";
    out += text(width / 2, 22, chart.title, "text-anchor=\"middle\" font-size=\"14\"");

    // A grid line at every power of two, a label only every `label_stride`
    // so labels (up to "512 KiB") stay about 48 px apart.
    const int label_stride = std::max(1, static_cast<int>(std::ceil((e_max - e_min + 1) * 48 / panel_w)));
    for (std::size_t p = 0; p < chart.panels.size(); ++p) {
        const ChartPanel& panel = chart.panels[p];
        const double x0 = left + double(p) * (panel_w + gap), y0 = top + panel_h;
        auto px = [&](double x) { return x0 + (std::log2(x) - e_min) / (e_max - e_min) * panel_w; };
        auto py = [&](double y) { return y0 - y / y_top * panel_h; };
        out += "<g>\n";
        out += text(x0 + panel_w / 2, top - 10, panel.title, "text-anchor=\"middle\" font-size=\"12\"");
        for (double y = 0; y <= y_top + y_step / 2; y += y_step) {
            out += line(x0, py(y), x0 + panel_w, py(y), "stroke=\"#dddddd\"");
            if (p == 0) out += text(x0 - 6, py(y) + 4, tick(y), "text-anchor=\"end\"");
        }
        for (double e = e_min; e <= e_max; e += 1) {
            const double x = std::exp2(e);
            out += line(px(x), top, px(x), y0, "stroke=\"#eeeeee\"");
            if (static_cast<int>(e - e_min) % label_stride != 0) continue;
            out += line(px(x), y0, px(x), y0 + 4, "stroke=\"black\"");
            out += text(px(x), y0 + 16, chart.x_tick_text ? chart.x_tick_text(x) : num(x), "text-anchor=\"middle\"");
        }
        out += "<rect x=\"" + num(x0) + "\" y=\"" + num(top) + "\" width=\"" + num(panel_w) + "\" height=\"" +
               num(panel_h) + "\" fill=\"none\" stroke=\"black\"/>\n";
        out += text(x0 + panel_w / 2, y0 + 36, chart.x_label, "text-anchor=\"middle\"");
        for (const auto& s : panel.series) {
            const char* colour = palette[static_cast<std::size_t>(std::abs(s.colour)) % std::size(palette)];
            std::string points, markers;
            for (const auto& [x, y] : s.points) {
                if (!std::isfinite(x) || !std::isfinite(y) || x <= 0) continue;
                // Appended piece by piece: GCC 12 at -O3 misreports `"lit" + std::string`
                // as an overlapping memcpy (-Werror=restrict; GCC PR 105651).
                if (!points.empty()) points += ' ';
                points += num(px(x));
                points += ',';
                points += num(py(y));
                markers += "<circle cx=\"" + num(px(x)) + "\" cy=\"" + num(py(y)) + "\" r=\"2.5\" fill=\"" + colour + "\"/>\n";
            }
            out += "<g>\n<title>" + xml_escape(s.name) + "</title>\n";
            out += "<polyline fill=\"none\" stroke=\"" + std::string(colour) + "\" stroke-width=\"1.5\"" +
                   (s.dashed ? " stroke-dasharray=\"6,3\"" : "") + " points=\"" + points + "\"/>\n" + markers + "</g>\n";
        }
        out += "</g>\n";
    }
    out += text(16, top + panel_h / 2, chart.y_label,
                "text-anchor=\"middle\" transform=\"rotate(-90 16 " + num(top + panel_h / 2) + ")\"");

    const double lx = left + double(n_panels) * panel_w + double(n_panels - 1) * gap + 20;
    for (std::size_t i = 0; i < legend_series.size(); ++i) {
        const ChartSeries& s = *legend_series[i];
        const char* colour = palette[static_cast<std::size_t>(std::abs(s.colour)) % std::size(palette)];
        const double ly = top + 10 + 18 * double(i);
        out += line(lx, ly, lx + 28, ly, "stroke=\"" + std::string(colour) + "\" stroke-width=\"1.5\"" +
                                             (s.dashed ? " stroke-dasharray=\"6,3\"" : ""));
        out += text(lx + 34, ly + 4, s.name);
    }
    for (std::size_t i = 0; i < chart.footnote.size(); ++i) {
        out += text(8, top + panel_h + bottom + footnote_line * double(i), chart.footnote[i],
                    "font-size=\"9\" fill=\"#444444\"");
    }
    out += "</svg>\n";
    return out;
}

}  // namespace dmakit::examples
