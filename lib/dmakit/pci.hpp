// <dmakit/pci.hpp>: PCI addresses, sysfs discovery, capabilities, vfio-pci binding, names.
// One include for the whole layer; <dmakit/dmakit.hpp> includes every layer.
#pragma once

#include <dmakit/pci/address.hpp>
#include <dmakit/pci/binding.hpp>
#include <dmakit/pci/capabilities.hpp>
#include <dmakit/pci/host_use.hpp>
#include <dmakit/pci/memory_windows.hpp>
#include <dmakit/pci/names.hpp>
#include <dmakit/pci/sysfs.hpp>
