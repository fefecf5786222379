#include <dmakit/support/error.hpp>

#include <cstring>

namespace dmakit {

Error Error::with_context(std::string_view context) const {
    std::string joined(context);
    joined += ": ";
    joined += message_;
    return Error(code_, std::move(joined));
}

Error system_error(int err, std::string_view what, std::string_view hint) {
    std::string message(what);
    message += ": ";
    message += std::strerror(err);
    if (!hint.empty()) {
        message += " (";
        message += hint;
        message += ")";
    }
    return Error(err, std::move(message));
}

}  // namespace dmakit
