#!/usr/bin/env python3
"""Fails when an installed (public) header reaches lib/dmakit/internal/.

Headers under lib/dmakit/internal/ are the library's own and are not
installed, so a public header that includes one, directly or through another
header, cannot compile against an installed tree. Here every header in the
install list (meson-info/intro-installed.json) is preprocessed alone, with
the source tree on the include path so internal headers are reachable, and
the compiler's -H listing of every file it opened is searched for internal/.

Usage: check_public_headers.py BUILD_ROOT SOURCE_ROOT COMPILER...
"""

import concurrent.futures
import json
import os
import subprocess
import sys

INTERNAL = os.sep + os.path.join("dmakit", "internal") + os.sep


def installed_headers(build_root):
    with open(os.path.join(build_root, "meson-info", "intro-installed.json")) as f:
        installed = json.load(f)
    return sorted(source for source, target in installed.items()
                  if target.endswith((".hpp", ".h")) and os.sep + "include" + os.sep in target)


def include_chain(listing, index):
    """The header at listing[index] and the headers that included it."""
    depth, path = listing[index]
    chain = [path]
    for d, p in reversed(listing[:index]):
        if d < depth:
            chain.append(p)
            depth = d
    return " <- ".join(chain)


def check(header, compiler, include_dirs):
    """Problems with one header (none: it reaches no internal header), and
    how many files it opened."""
    if INTERNAL in header:
        return [f"{header}: an internal header is in the install list"], 0
    command = compiler + ["-std=c++20", "-x", "c++", "-E", "-H", "-o", os.devnull]
    command += [f"-I{d}" for d in include_dirs] + [header]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        return [f"{header}: does not preprocess alone:\n{run.stderr.strip()}"], 0
    # -H prints one line per opened file: dots (the include depth), a space, the path.
    listing = []
    for line in run.stderr.splitlines():
        dots = len(line) - len(line.lstrip("."))
        if dots > 0 and line[dots:dots + 1] == " ":
            listing.append((dots, os.path.realpath(line[dots + 1:])))
    return [f"{header} reaches an internal header: {include_chain(listing, i)}"
            for i, (_, path) in enumerate(listing) if INTERNAL in path], len(listing)


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    build_root, source_root, compiler = sys.argv[1], sys.argv[2], sys.argv[3:]
    include_dirs = [os.path.join(source_root, "lib"), os.path.join(build_root, "lib"),
                    os.path.join(source_root, "drivers", "include")]
    headers = installed_headers(build_root)
    # Guards against a silently empty check (a moved intro file, a new layout,
    # a compiler that ignores -H).
    umbrella = os.path.join(source_root, "lib", "dmakit", "dmakit.hpp")
    if umbrella not in headers or len(headers) < 20:
        print(f"install list looks wrong ({len(headers)} headers):", *headers, sep="\n  ")
        return 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = dict(zip(headers, pool.map(lambda h: check(h, compiler, include_dirs), headers)))
    problems = [p for found, _ in results.values() for p in found]
    if results[umbrella][1] < 20:
        problems.append(f"{umbrella}: the compiler listed {results[umbrella][1]} opened files; "
                        "expected the whole library's headers (is -H honoured?)")
    for problem in problems:
        print(problem)
    print(f"{len(headers)} installed headers checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
