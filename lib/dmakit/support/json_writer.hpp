// JsonWriter: streams JSON with correct string escaping (RFC 8259 section 7).
//
// Small on purpose: the tool prints arrays of flat objects, the leak tracker its report. Misuse (a value
// where a key is due) is a programming bug and is checked with assert.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace dmakit {

// The JSON string literal for `text`, quotes included.
[[nodiscard]] std::string json_quote(std::string_view text);

class JsonWriter {
public:
    // `indent` spaces per level; 0 writes everything on one line.
    explicit JsonWriter(std::ostream& out, int indent = 2);

    JsonWriter& begin_object();
    JsonWriter& end_object();
    JsonWriter& begin_array();
    JsonWriter& end_array();
    JsonWriter& key(std::string_view name);

    JsonWriter& value(std::string_view text);
    JsonWriter& value(const char* text) { return value(std::string_view(text)); }
    JsonWriter& value(const std::string& text) { return value(std::string_view(text)); }
    JsonWriter& value(std::int64_t number);
    JsonWriter& value(std::uint64_t number);
    JsonWriter& value(int number) { return value(static_cast<std::int64_t>(number)); }
    JsonWriter& value(unsigned number) { return value(static_cast<std::uint64_t>(number)); }
    JsonWriter& value(bool flag);
    JsonWriter& null();

    // A value, or null when absent.
    template <typename T>
    JsonWriter& value(const std::optional<T>& maybe) {
        return maybe ? value(*maybe) : null();
    }

private:
    void before_value();
    void open(char bracket);
    void close(char bracket);
    void newline();

    std::ostream& out_;
    int indent_;
    std::vector<bool> has_items_;  // one entry per open container
    bool after_key_ = false;
};

}  // namespace dmakit
