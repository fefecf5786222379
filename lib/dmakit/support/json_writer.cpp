#include <dmakit/support/json_writer.hpp>

#include <cassert>
#include <cstdio>

namespace dmakit {

std::string json_quote(std::string_view text) {
    std::string quoted;
    quoted.reserve(text.size() + 2);
    quoted += '"';
    for (char c : text) {
        switch (c) {
        case '"': quoted += "\\\""; break;
        case '\\': quoted += "\\\\"; break;
        case '\b': quoted += "\\b"; break;
        case '\f': quoted += "\\f"; break;
        case '\n': quoted += "\\n"; break;
        case '\r': quoted += "\\r"; break;
        case '\t': quoted += "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                char escape[8];
                std::snprintf(escape, sizeof escape, "\\u%04x", static_cast<unsigned>(c));
                quoted += escape;
            } else {
                quoted += c;  // UTF-8 passes through unchanged
            }
        }
    }
    quoted += '"';
    return quoted;
}

JsonWriter::JsonWriter(std::ostream& out, int indent) : out_(out), indent_(indent) {}

void JsonWriter::newline() {
    if (indent_ <= 0) return;
    out_ << '\n';
    for (std::size_t i = 0; i < has_items_.size() * static_cast<std::size_t>(indent_); ++i) out_ << ' ';
}

void JsonWriter::before_value() {
    if (after_key_) {
        after_key_ = false;
        return;
    }
    if (has_items_.empty()) return;  // the top-level value
    if (has_items_.back()) out_ << ',';
    has_items_.back() = true;
    newline();
}

void JsonWriter::open(char bracket) {
    before_value();
    out_ << bracket;
    has_items_.push_back(false);
}

void JsonWriter::close(char bracket) {
    assert(!has_items_.empty() && !after_key_);
    bool had_items = has_items_.back();
    has_items_.pop_back();
    if (had_items) newline();
    out_ << bracket;
    if (has_items_.empty() && indent_ > 0) out_ << '\n';
}

JsonWriter& JsonWriter::begin_object() { open('{'); return *this; }
JsonWriter& JsonWriter::end_object() { close('}'); return *this; }
JsonWriter& JsonWriter::begin_array() { open('['); return *this; }
JsonWriter& JsonWriter::end_array() { close(']'); return *this; }

JsonWriter& JsonWriter::key(std::string_view name) {
    assert(!has_items_.empty() && !after_key_);
    before_value();
    out_ << json_quote(name) << (indent_ > 0 ? ": " : ":");
    after_key_ = true;
    return *this;
}

JsonWriter& JsonWriter::value(std::string_view text) {
    before_value();
    out_ << json_quote(text);
    return *this;
}

JsonWriter& JsonWriter::value(std::int64_t number) {
    before_value();
    out_ << number;
    return *this;
}

JsonWriter& JsonWriter::value(std::uint64_t number) {
    before_value();
    out_ << number;
    return *this;
}

JsonWriter& JsonWriter::value(bool flag) {
    before_value();
    out_ << (flag ? "true" : "false");
    return *this;
}

JsonWriter& JsonWriter::null() {
    before_value();
    out_ << "null";
    return *this;
}

}  // namespace dmakit
