#!/usr/bin/env python3
"""Counts test cases across GoogleTest JSON reports and prints one line
'N passed, N failed' (plus ', N skipped' when any were skipped).

Usage: count-results.py [--list-failures] [--skips-fail] [--tally] DIR|testlog.json...

Each DIR holds *.json files: GoogleTest reports (GTEST_OUTPUT=json:DIR/) and,
for the vm suite, per-program records {"name", "exit_status"} written by
tests/vm/run-suite. A program that exited non-zero without a failing case in
its report (a crash, a script test) counts as one failure of its own, and a
script test that passed counts as one pass; one that exited 77 skipped. A
meson testlog.json adds, when the reports show no failure, each meson test
that failed all the same.

With --skips-fail every skipped case counts as a failure and is named on
stderr: the vm suite runs in the bench guest, where every device is bound,
so a skip there means the bench is broken, not that a test does not apply.

With --tally it prints 'PASSED FAILED SKIPPED' as three numbers instead.
"""
import json
import pathlib
import sys


# Exit status of a test program that skipped (the automake/meson convention).
SKIP_STATUS = 77


def count_gtest(report, tally, failures, skips):
    for suite in report.get("testsuites", []):
        for case in suite.get("testsuite", []):
            name = f"{suite.get('name')}.{case.get('name')}"
            if case.get("failures"):
                tally["failed"] += 1
                failures.append(name)
            elif case.get("result") == "SKIPPED" or case.get("status") == "NOTRUN":
                tally["skipped"] += 1
                skips.append(name)  # GoogleTest 1.12's JSON has no skip message
            else:
                tally["passed"] += 1


def main(argv):
    list_failures = "--list-failures" in argv
    skips_fail = "--skips-fail" in argv
    paths = [pathlib.Path(a) for a in argv if not a.startswith("--")]
    tally = {"passed": 0, "failed": 0, "skipped": 0}
    failures = []
    skips = []
    directories = [p for p in paths if p.is_dir()]
    # GoogleTest reports first, over every folder: the vm suite keeps them
    # apart from run-suite's per-program records (gtest/ and scripts/), and
    # a program with a report must not count again as a pass of its own.
    gtest_failed = {}
    for directory in directories:
        for path in sorted(directory.rglob("*.json")):
            if path.name == "testlog.json":
                continue  # meson's log, one JSON object per line: read below
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as error:
                tally["failed"] += 1
                failures.append(f"{path}: unreadable report ({error})")
                continue
            if "testsuites" in data:
                before = tally["failed"]
                count_gtest(data, tally, failures, skips)
                gtest_failed[path.stem] = tally["failed"] > before
    for directory in directories:
        for path in sorted(directory.rglob("*.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # counted above
            if "exit_status" not in data:
                continue
            name = data["name"]
            if name in gtest_failed:
                # Its cases are counted; a crash after them still fails it.
                if data["exit_status"] != 0 and not gtest_failed[name]:
                    tally["failed"] += 1
                    failures.append(f"{name}: exited {data['exit_status']}")
            elif data["exit_status"] == 0:
                tally["passed"] += 1
            elif data["exit_status"] == SKIP_STATUS:
                tally["skipped"] += 1
                skips.append(f"{name} (exited {SKIP_STATUS})")
            else:
                tally["failed"] += 1
                failures.append(f"{name}: exited {data['exit_status']}")
    # A failed meson test with no failing case to show (a crash before the
    # report was written, a guest that did not boot) is a failure of its own;
    # so is a skipped meson test where skips fail.
    failed_in_reports = tally["failed"] or (skips_fail and tally["skipped"])
    for testlog in (p for p in paths if p.is_file()):
        for line in testlog.read_text().splitlines():
            entry = json.loads(line)
            allowed = ("OK", "EXPECTEDFAIL") if skips_fail else ("OK", "SKIP", "EXPECTEDFAIL")
            if entry["result"] in allowed or failed_in_reports:
                continue
            tally["failed"] += 1
            failures.append(f"{entry['name']}: {entry['result']} (exit {entry.get('returncode')})")
    if skips_fail and skips:
        print(f"{len(skips)} case(s) skipped where no skip is allowed (each counts as a failure):",
              file=sys.stderr)
        for name in skips:
            print(f"  SKIPPED: {name}", file=sys.stderr)
        tally["failed"] += tally["skipped"]
        tally["skipped"] = 0
        failures.extend(f"{name} (skipped)" for name in skips)
    if list_failures:
        for name in failures:
            print(f"FAILED: {name}", file=sys.stderr)
    if "--tally" in argv:
        print(tally["passed"], tally["failed"], tally["skipped"])
        return 0
    line = f"{tally['passed']} passed, {tally['failed']} failed"
    if tally["skipped"]:
        line += f", {tally['skipped']} skipped"
    print(line)
    return 1 if tally["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
