#include <dmakit/pci/names.hpp>

#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

extern "C" {
#include <pci/pci.h>
}

namespace dmakit::pci {
namespace {

// libpci reports fatal conditions (a corrupt pci.ids, out of memory) through
// a->error, which takes no context pointer and must not return; its default
// exits the process. The library must not exit, so the hook jumps back to the
// libpci call that is in progress on this thread, which then reports failure.
// This pointer is set only for the duration of such a call (see guarded()).
thread_local std::jmp_buf* active_jump = nullptr;

// The GNU spelling, not [[noreturn]]: pci.h declares the hook's pointer type
// with __attribute__((noreturn)), which clang treats as part of the type.
__attribute__((noreturn)) void on_libpci_error(char* /*format*/, ...) {
    if (active_jump != nullptr) std::longjmp(*active_jump, 1);
    std::abort();  // unreachable: every libpci call that can fail runs under guarded()
}

void on_libpci_message(char* /*format*/, ...) {}  // the library does not print

// Runs `call()` so that a libpci error returns false instead of
// exiting. Only trivially destructible locals live in this frame, as longjmp
// requires.
template <typename Call>
bool guarded(Call call) {
    std::jmp_buf jump;
    std::jmp_buf* previous = active_jump;
    active_jump = &jump;
    volatile bool ok = false;  // read after a longjmp
    if (setjmp(jump) == 0) {
        ok = call();
    }
    active_jump = previous;
    return ok;
}

std::string hex(unsigned value, int digits) {
    char buffer[16];
    std::snprintf(buffer, sizeof buffer, "%0*x", digits, value);
    return buffer;
}

}  // namespace

void PciNames::AccessDeleter::operator()(pci_access* access) const noexcept {
    pci_cleanup(access);
}

PciNames::PciNames(std::optional<std::string> ids_file) {
    access_.reset(pci_alloc());  // zeroed struct plus defaults; no device access yet
    if (!access_) return;
    pci_access* a = access_.get();
    a->error = on_libpci_error;
    a->warning = on_libpci_message;
    a->debug = on_libpci_message;
    a->id_lookup_mode = 0;  // no ~/.pciids-cache, no DNS
    if (ids_file) {
        // libpci frees the copy when to_be_freed is set (pci_cleanup).
        pci_set_name_list_path(a, strdup(ids_file->c_str()), 1);
        a->id_lookup_mode |= PCI_LOOKUP_NO_HWDB;
    }
    // Load once now; a later lookup never re-parses (libpci remembers failure).
    // pci_init() is not needed: it sets up config-space access, which names do
    // not use, and it exits when no access method works (containers).
    database_loaded_ = guarded([a] { return pci_load_name_list(a) != 0; });
    if (!database_loaded_ && !ids_file) {
        // udev's hwdb may still know the names without a pci.ids file.
        char buffer[256];
        database_loaded_ = guarded([&] {
            return pci_lookup_name(a, buffer, sizeof buffer, PCI_LOOKUP_VENDOR | PCI_LOOKUP_NO_NUMBERS,
                                   0x8086) != nullptr;
        });
    }
}

PciNames::~PciNames() = default;
PciNames::PciNames(PciNames&&) noexcept = default;
PciNames& PciNames::operator=(PciNames&&) noexcept = default;

std::string PciNames::vendor(std::uint16_t vendor_id) const {
    char buffer[256];
    const char* name = nullptr;
    if (database_loaded_) {
        pci_access* a = access_.get();
        guarded([&] {
            name = pci_lookup_name(a, buffer, sizeof buffer, PCI_LOOKUP_VENDOR | PCI_LOOKUP_NO_NUMBERS,
                                   static_cast<int>(vendor_id));
            return true;
        });
    }
    return name ? std::string(name) : hex(vendor_id, 4);
}

std::string PciNames::device(std::uint16_t vendor_id, std::uint16_t device_id) const {
    char buffer[256];
    const char* name = nullptr;
    if (database_loaded_) {
        pci_access* a = access_.get();
        guarded([&] {
            name = pci_lookup_name(a, buffer, sizeof buffer, PCI_LOOKUP_DEVICE | PCI_LOOKUP_NO_NUMBERS,
                                   static_cast<int>(vendor_id), static_cast<int>(device_id));
            return true;
        });
    }
    return name ? std::string(name) : hex(device_id, 4);
}

std::string PciNames::class_name(std::uint32_t class_code) const {
    char buffer[256];
    const char* name = nullptr;
    const unsigned base_sub = class_code >> 8;
    if (database_loaded_) {
        pci_access* a = access_.get();
        guarded([&] {
            name = pci_lookup_name(a, buffer, sizeof buffer, PCI_LOOKUP_CLASS | PCI_LOOKUP_NO_NUMBERS,
                                   static_cast<int>(base_sub));
            return true;
        });
    }
    return name ? std::string(name) : hex(base_sub, 4);
}

}  // namespace dmakit::pci
