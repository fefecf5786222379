"""What every VM test script does first, in one place.

A script runs in the bench guest (scripts/vm sets DMAKIT_IN_VM=1) on programs
of the meson build folder named by DMAKIT_BUILD_DIR. Outside the guest it
skips (exit 77, meson's skip status), unless it also has something to check
on the host; a missing build folder or program is a failure that says how to
build it.
"""

import os
import sys

SKIP_STATUS = 77


def fail(script, reason):
    """Ends `script` as failed, with `reason` on one line."""
    print(f"{script}: FAIL: {reason}")
    sys.exit(1)


def start(script, *programs, guest_only=True):
    """Checks where `script` runs and that the build has `programs` (paths
    under the build folder, with /), and returns the build folder and the
    programs' full paths, in order."""
    if guest_only and os.environ.get("DMAKIT_IN_VM") != "1":
        print(f"{script}: SKIP outside the bench guest (DMAKIT_IN_VM is not 1); "
              "run it under scripts/vm, or the whole suite with meson test --suite vm")
        sys.exit(SKIP_STATUS)
    build_dir = os.environ.get("DMAKIT_BUILD_DIR")
    if not build_dir:
        fail(script, "DMAKIT_BUILD_DIR is not set (it must name the meson build folder)")
    paths = [os.path.join(build_dir, *program.split("/")) for program in programs]
    for path in paths:
        if not os.access(path, os.X_OK):
            fail(script, f"{path} is missing or not executable; build first: ninja -C {build_dir}")
    return build_dir, paths
