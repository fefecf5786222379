// <dmakit/vfio.hpp>: VFIO containers, groups, devices, regions and interrupts.
// One include for the whole layer; <dmakit/dmakit.hpp> includes every layer.
#pragma once

#include <dmakit/vfio/container.hpp>
#include <dmakit/vfio/device.hpp>
#include <dmakit/vfio/info.hpp>
#include <dmakit/vfio/interrupts.hpp>
#include <dmakit/vfio/memlock.hpp>
#include <dmakit/vfio/removal_request.hpp>
#include <dmakit/vfio/type1_backend.hpp>
