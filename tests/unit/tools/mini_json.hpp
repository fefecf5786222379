// A tiny JSON reader for the tool tests: checks that text is one well-formed
// JSON value and turns an array of flat objects into maps of raw values
// (strings unescaped but kept in quotes, so "\"3\"" and "3" differ;
// everything else as written: 3, null, true).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dmakit::testing {

using FlatObject = std::map<std::string, std::string>;

// nullopt when `text` is not well-formed JSON or not an array of objects
// (nested values are validated, and stored as "<nested>").
[[nodiscard]] std::optional<std::vector<FlatObject>> parse_object_array(const std::string& text);

}  // namespace dmakit::testing
