#include "xml_check.hpp"

#include <cctype>
#include <set>
#include <vector>

namespace dmakit::testing {
namespace {

bool name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':'; }
bool name_char(char c) {
    return name_start(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.';
}
bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string at(std::size_t i, const std::string& what) { return what + " at byte " + std::to_string(i); }

// An entity reference starting at doc[i] == '&': its length, or 0 when malformed.
std::size_t reference_length(std::string_view doc, std::size_t i) {
    const auto end = doc.find(';', i);
    if (end == std::string_view::npos || end - i > 10) return 0;
    const std::string_view ref = doc.substr(i + 1, end - i - 1);
    static const std::set<std::string_view> named = {"amp", "lt", "gt", "quot", "apos"};
    if (named.count(ref)) return end - i + 1;
    if (ref.size() >= 2 && ref[0] == '#') {
        const bool hex = ref[1] == 'x';
        const std::string_view digits = ref.substr(hex ? 2 : 1);
        if (digits.empty()) return 0;
        for (char c : digits) {
            if (!(hex ? std::isxdigit(static_cast<unsigned char>(c)) : std::isdigit(static_cast<unsigned char>(c)))) return 0;
        }
        return end - i + 1;
    }
    return 0;
}

}  // namespace

std::string xml_problem(std::string_view doc) {
    std::vector<std::string_view> open;
    int roots = 0;
    std::size_t i = 0;
    while (i < doc.size()) {
        const char c = doc[i];
        if (c == '&') {
            const auto n = reference_length(doc, i);
            if (n == 0) return at(i, "stray '&'");
            if (open.empty()) return at(i, "text outside the root element");
            i += n;
            continue;
        }
        if (c != '<') {
            if (open.empty() && !space(c)) return at(i, "text outside the root element");
            ++i;
            continue;
        }
        auto skip_to = [&](std::string_view end) -> bool {
            const auto e = doc.find(end, i);
            if (e == std::string_view::npos) return false;
            i = e + end.size();
            return true;
        };
        const std::string_view rest = doc.substr(i);
        if (rest.starts_with("<?")) {
            if (!skip_to("?>")) return at(i, "unterminated <?");
        } else if (rest.starts_with("<!--")) {
            if (!skip_to("-->")) return at(i, "unterminated comment");
        } else if (rest.starts_with("<![CDATA[")) {
            if (open.empty()) return at(i, "CDATA outside the root element");
            if (!skip_to("]]>")) return at(i, "unterminated CDATA");
        } else if (rest.starts_with("<!")) {
            if (!open.empty() || roots) return at(i, "DOCTYPE after the root element opened");
            const auto e = doc.find('>', i);
            if (e == std::string_view::npos || doc.substr(i, e - i).find('[') != std::string_view::npos) {
                return at(i, "DOCTYPE unterminated or with an internal subset");
            }
            i = e + 1;
        } else if (rest.starts_with("</")) {
            std::size_t j = i + 2;
            while (j < doc.size() && name_char(doc[j])) ++j;
            const std::string_view name = doc.substr(i + 2, j - i - 2);
            while (j < doc.size() && space(doc[j])) ++j;
            if (j >= doc.size() || doc[j] != '>') return at(i, "malformed end tag");
            if (open.empty() || open.back() != name) {
                // Appended: GCC 12 -O3 misreports `"lit" + std::string` (-Wrestrict, PR 105651).
                std::string problem = "</";
                problem.append(name).append("> closes ");
                if (open.empty()) problem += "nothing";
                else problem.append("<").append(open.back()).append(">");
                return at(i, problem);
            }
            open.pop_back();
            i = j + 1;
        } else {
            std::size_t j = i + 1;
            if (j >= doc.size() || !name_start(doc[j])) return at(i, "'<' that starts no tag");
            while (j < doc.size() && name_char(doc[j])) ++j;
            const std::string_view name = doc.substr(i + 1, j - i - 1);
            if (open.empty() && roots++ > 0) return at(i, "a second root element");
            std::set<std::string_view> attributes;
            while (true) {
                const std::size_t before = j;
                while (j < doc.size() && space(doc[j])) ++j;
                if (j >= doc.size()) return at(i, "unterminated tag <" + std::string(name));
                if (doc[j] == '>') { open.push_back(name); ++j; break; }
                if (doc.substr(j).starts_with("/>")) { j += 2; break; }
                if (j == before) return at(j, "no space before an attribute");
                if (!name_start(doc[j])) return at(j, "malformed attribute name");
                std::size_t k = j;
                while (k < doc.size() && name_char(doc[k])) ++k;
                const std::string_view attr = doc.substr(j, k - j);
                if (!attributes.insert(attr).second) return at(j, "attribute " + std::string(attr) + " given twice");
                while (k < doc.size() && space(doc[k])) ++k;
                if (k >= doc.size() || doc[k] != '=') return at(k, "attribute without '='");
                ++k;
                while (k < doc.size() && space(doc[k])) ++k;
                if (k >= doc.size() || (doc[k] != '"' && doc[k] != '\'')) return at(k, "unquoted attribute value");
                const char quote = doc[k];
                const auto end = doc.find(quote, k + 1);
                if (end == std::string_view::npos) return at(k, "unterminated attribute value");
                for (std::size_t v = k + 1; v < end; ++v) {
                    if (doc[v] == '<') return at(v, "'<' in an attribute value");
                    if (doc[v] == '&' && reference_length(doc, v) == 0) return at(v, "stray '&' in an attribute value");
                }
                j = end + 1;
            }
            i = j;
        }
    }
    if (!open.empty()) return std::string("<").append(open.back()).append("> is never closed");
    if (roots != 1) return "no root element";
    return {};
}

int xml_element_count(std::string_view doc, std::string_view name) {
    int count = 0;
    const std::string tag = std::string("<").append(name);
    for (auto p = doc.find(tag); p != std::string_view::npos; p = doc.find(tag, p + 1)) {
        const std::size_t after = p + tag.size();
        if (after < doc.size() && (space(doc[after]) || doc[after] == '>' || doc[after] == '/')) ++count;
    }
    return count;
}

}  // namespace dmakit::testing
