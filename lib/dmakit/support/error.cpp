#include <dmakit/support/error.hpp>

#include <cstring>
#include <ostream>

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

std::string errno_name(int code) {
    // glibc's strerrorname_np (2.32+): the symbolic name, null for an unknown code.
    if (const char* name = ::strerrorname_np(code)) return name;
    return "errno " + std::to_string(code);
}

std::string to_string(const Error& error) {
    std::string text = error.message();
    text += " [";
    text += errno_name(error.code());
    text += ']';
    return text;
}

std::ostream& operator<<(std::ostream& out, const Error& error) { return out << to_string(error); }

}  // namespace dmakit
