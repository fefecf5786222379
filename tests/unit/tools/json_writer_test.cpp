#include <dmakit/support/json_writer.hpp>

#include <gtest/gtest.h>

#include <sstream>

namespace dmakit {
namespace {

TEST(JsonQuote, EscapesWhatRfc8259Requires) {
    EXPECT_EQ(json_quote("plain"), "\"plain\"");
    EXPECT_EQ(json_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    EXPECT_EQ(json_quote("tab\there\nnew\rret"), "\"tab\\there\\nnew\\rret\"");
    EXPECT_EQ(json_quote(std::string("nul\0x", 5)), "\"nul\\u0000x\"");
    EXPECT_EQ(json_quote("\x1f\b\f"), "\"\\u001f\\b\\f\"");
    EXPECT_EQ(json_quote("Ethernet \xc3\xa9"), "\"Ethernet \xc3\xa9\"");  // UTF-8 as is
}

TEST(JsonWriter, CompactNesting) {
    std::ostringstream out;
    JsonWriter json(out, 0);
    json.begin_array();
    json.begin_object().key("a").value("x").key("n").value(std::int64_t{-3}).key("z").null().end_object();
    json.begin_object().key("empty").begin_array().end_array().key("t").value(true).end_object();
    json.value(std::optional<unsigned>{7}).value(std::optional<std::string>{});
    json.end_array();
    EXPECT_EQ(out.str(), R"([{"a":"x","n":-3,"z":null},{"empty":[],"t":true},7,null])");
}

TEST(JsonWriter, IndentedOutputEndsWithNewline) {
    std::ostringstream out;
    JsonWriter json(out);
    json.begin_array().begin_object().key("k").value(1).end_object().end_array();
    EXPECT_EQ(out.str(), "[\n  {\n    \"k\": 1\n  }\n]\n");
}

TEST(JsonWriter, ConstCharIsAStringNotABool) {
    std::ostringstream out;
    JsonWriter json(out, 0);
    json.begin_array().value("text").end_array();
    EXPECT_EQ(out.str(), R"(["text"])");
}

}  // namespace
}  // namespace dmakit
