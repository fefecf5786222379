// Table: left-aligned text columns for the tool's human output.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace dmakit::tool {

class Table {
public:
    explicit Table(std::vector<std::string> headers);

    void add_row(std::vector<std::string> cells);
    [[nodiscard]] bool empty() const noexcept { return rows_.empty(); }

    // Columns separated by two spaces; the last column is not padded.
    void print(std::ostream& out) const;

private:
    std::vector<std::string> headers_;
    std::vector<std::vector<std::string>> rows_;
};

}  // namespace dmakit::tool
