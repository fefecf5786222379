#include "mini_json.hpp"

#include <cctype>

namespace dmakit::testing {
namespace {

class Reader {
public:
    explicit Reader(const std::string& text) : s_(text) {}

    void blanks() {
        while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    bool eat(char c) {
        blanks();
        if (i_ < s_.size() && s_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    bool at_end() {
        blanks();
        return i_ == s_.size();
    }
    char peek() {
        blanks();
        return i_ < s_.size() ? s_[i_] : '\0';
    }

    std::optional<std::string> string() {
        if (!eat('"')) return std::nullopt;
        std::string out;
        while (i_ < s_.size()) {
            char c = s_[i_++];
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20) return std::nullopt;
            if (c != '\\') {
                out += c;
                continue;
            }
            if (i_ >= s_.size()) return std::nullopt;
            char e = s_[i_++];
            switch (e) {
            case '"': case '\\': case '/': out += e; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                if (i_ + 4 > s_.size()) return std::nullopt;
                unsigned code = std::stoul(s_.substr(i_, 4), nullptr, 16);
                i_ += 4;
                if (code >= 0x80) return std::nullopt;  // the tool only escapes control chars
                out += static_cast<char>(code);
                break;
            }
            default: return std::nullopt;
            }
        }
        return std::nullopt;
    }

    // Any value; returns its text (strings unescaped but kept in quotes, containers "<nested>").
    std::optional<std::string> value() {
        char c = peek();
        if (c == '"') {
            auto text = string();
            if (!text) return std::nullopt;
            return '"' + *text + '"';
        }
        if (c == '{' || c == '[') return container() ? std::optional<std::string>("<nested>") : std::nullopt;
        std::size_t start = i_;
        while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '-' ||
                                  s_[i_] == '.' || s_[i_] == '+')) {
            ++i_;
        }
        std::string word = s_.substr(start, i_ - start);
        if (word == "null" || word == "true" || word == "false") return word;
        if (word.empty()) return std::nullopt;
        std::size_t used = 0;
        try {
            (void)std::stod(word, &used);
        } catch (...) {
            return std::nullopt;
        }
        return used == word.size() ? std::optional<std::string>(word) : std::nullopt;
    }

    std::optional<FlatObject> object() {
        if (!eat('{')) return std::nullopt;
        FlatObject object;
        if (eat('}')) return object;
        do {
            auto key = string();
            if (!key || !eat(':')) return std::nullopt;
            auto v = value();
            if (!v) return std::nullopt;
            object[*key] = *v;
        } while (eat(','));
        if (!eat('}')) return std::nullopt;
        return object;
    }

    bool container() {
        if (peek() == '{') return object().has_value();
        if (!eat('[')) return false;
        if (eat(']')) return true;
        do {
            if (!value()) return false;
        } while (eat(','));
        return eat(']');
    }

private:
    const std::string& s_;
    std::size_t i_ = 0;
};

}  // namespace

std::optional<std::vector<FlatObject>> parse_object_array(const std::string& text) {
    Reader reader(text);
    if (!reader.eat('[')) return std::nullopt;
    std::vector<FlatObject> objects;
    if (!reader.eat(']')) {
        do {
            auto object = reader.object();
            if (!object) return std::nullopt;
            objects.push_back(std::move(*object));
        } while (reader.eat(','));
        if (!reader.eat(']')) return std::nullopt;
    }
    if (!reader.at_end()) return std::nullopt;
    return objects;
}

}  // namespace dmakit::testing
