// A strict check that a document is well-formed XML, for the SVG the
// examples and scripts/lib/plot-rows write: one root element, every tag
// closed in order, attributes quoted and not repeated, no raw '<' or stray
// '&' in text or attribute values. Declarations, comments, CDATA and a
// DOCTYPE without an internal subset are accepted. Not a validator.
#pragma once

#include <string>
#include <string_view>

namespace dmakit::testing {

// Empty when well-formed; otherwise what is wrong and at which byte.
[[nodiscard]] std::string xml_problem(std::string_view doc);

// How many elements named `name` the document opens (well-formed input).
[[nodiscard]] int xml_element_count(std::string_view doc, std::string_view name);

}  // namespace dmakit::testing
