#!/usr/bin/env python3
"""Checks that header_examples.cpp holds each header's example as written.

header_examples.cpp names a header ("// lib/dmakit/dma/pci_domain.hpp") above
each function, and the example sits between "// example:" and "// end". Every
line of it must appear, in order, as a comment line of that header (after
"//" and indentation), so a header whose example changes without the copy (or
the other way round) fails here instead of compiling a stale copy forever.

usage: check_copies.py SOURCE_ROOT
"""
import pathlib
import re
import sys


def blocks(cpp_text):
    """(header path, [example lines]) for each example in the copies file."""
    header = None
    found = []
    lines = cpp_text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        m = re.fullmatch(r"// ((?:lib|drivers)/\S+\.hpp)(?: \(.*\))?", line)
        if m:
            header = m.group(1)
        elif line == "// example:":
            body = []
            i += 1
            while i < len(lines) and lines[i].strip() != "// end":
                body.append(lines[i].strip())
                i += 1
            if i == len(lines):
                sys.exit(f"check_copies: an example for {header} has no '// end'")
            if header is None:
                sys.exit("check_copies: an example comes before any header name")
            found.append((header, [b for b in body if b]))
        i += 1
    return found


def comment_lines(header_text):
    return [l.strip()[2:].strip() for l in header_text.splitlines() if l.strip().startswith("//")]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = pathlib.Path(sys.argv[1])
    copies = root / "tests/unit/header_examples/header_examples.cpp"
    found = blocks(copies.read_text())
    if not found:
        sys.exit(f"check_copies: no examples found in {copies}")
    bad = 0
    for header, body in found:
        path = root / header
        if not path.is_file():
            print(f"{copies.name}: names {header}, which does not exist")
            bad += 1
            continue
        comments = comment_lines(path.read_text())
        # The example's lines, in order, as consecutive comment lines.
        n = len(body)
        if not any(comments[k:k + n] == body for k in range(len(comments) - n + 1)):
            print(f"{header}: its comment does not hold this example from {copies.name} "
                  f"(change both together):\n    " + "\n    ".join(body))
            bad += 1
    # And the other way: a header that says its example is compiled there
    # must have a copy there.
    named = {header for header, _ in found}
    for path in sorted(list(root.glob("lib/**/*.hpp")) + list(root.glob("drivers/**/*.hpp"))):
        relative = path.relative_to(root).as_posix()
        if "header_examples.cpp" in path.read_text() and relative not in named:
            print(f"{relative}: says its example is compiled in {copies.name}, which has no copy of it")
            bad += 1
    print(f"check_copies: {len(found)} examples, {bad} stale")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
