#!/usr/bin/env python3
"""Turns Google Benchmark JSON into dmakit benchmark rows (docs/performance.md).

Usage: bench_rows.py SUITE GBENCH_JSON OUT_JSON --machine TEXT --command TEXT

Benchmarks are named "<metric>/<implementation>/<size>[/...]". Rows follow
../shared/DESIGN.md "Benchmark output": one row per comparison of dmakit with
a peer, ratio = value / peer_value. The human table is printed from the same
rows, so the two never disagree.
"""
import argparse
import json
import sys

# metric -> (unit, better, peers); peers empty: no peer, a single row.
MEM_METRICS = {
    "slab_pair": ("ns", "lower", ["rte_mempool", "glibc", "mimalloc"]),
    "buddy_pair": ("ns", "lower", ["rte_malloc"]),
    # kmalloc + kfree through <dmakit/linux.h> against the C++ Kmalloc under it
    "kmalloc_c_pair": ("ns", "lower", ["dmakit_cpp"]),
    "kmalloc_pair": ("ns", "lower", ["glibc"]),
}
# Leak tracking on ("dmakit_tracked") against off ("dmakit") in the same run:
# row "<metric>_leak_tracked" with peer "untracked".
LEAK_TRACKED_METRICS = ["slab_pair", "kmalloc_pair", "buddy_pair"]


def to_ns(entry):
    # CPU time of the benchmark thread: on a shared host, wall time also
    # counts the slices other processes ran in; every implementation is
    # measured the same way.
    scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}[entry.get("time_unit", "ns")]
    return entry["cpu_time"] * scale


def load(paths):
    benchmarks = []
    for path in paths.split(","):
        with open(path) as f:
            benchmarks += json.load(f)["benchmarks"]
    results = {}
    for entry in benchmarks:
        if entry.get("error_occurred"):
            continue
        # With repetitions keep the median aggregate; without, the only run.
        if entry.get("run_type") == "aggregate" and entry.get("aggregate_name") != "median":
            continue
        name = entry.get("run_name", entry["name"])
        if entry.get("run_type") == "iteration" and name in results and results[name][1]:
            continue
        results[name] = (entry, entry.get("run_type") == "aggregate")
    return {name: entry for name, (entry, _) in results.items()}


def parse(name):
    parts = name.split("/")
    threads = 1
    for p in parts[3:]:
        if p.startswith("threads:"):
            threads = int(p.split(":")[1])
    return parts[0], parts[1], parts[2], threads


def mem_rows(results):
    by_key = {}
    for name, entry in results.items():
        metric, impl, size, threads = parse(name)
        by_key[(metric, impl, size, threads)] = entry
    rows = []
    for metric, (unit, better, peers) in MEM_METRICS.items():
        sizes = sorted({k[2] for k in by_key if k[0] == metric and k[1] == "dmakit"},
                       key=size_bytes)
        for size in sizes:
            value = round(to_ns(by_key[(metric, "dmakit", size, 1)]), 2)
            for peer in peers:
                peer_entry = by_key.get((metric, peer, size, 1))
                if peer_entry is None:
                    continue
                peer_value = round(to_ns(peer_entry), 2)
                rows.append(row(metric, size, 1, unit, better, value, peer, peer_value))
    for metric in LEAK_TRACKED_METRICS:
        for (m, impl, size, threads), tracked in sorted(by_key.items()):
            untracked = by_key.get((metric, "dmakit", size, 1))
            if m != metric or impl != "dmakit_tracked" or threads != 1 or untracked is None:
                continue
            rows.append(row(metric + "_leak_tracked", size, 1, "ns", "lower",
                            round(to_ns(tracked), 2), "untracked", round(to_ns(untracked), 2)))
    one = by_key.get(("slab_scaling", "dmakit", "64B", 1))
    two = by_key.get(("slab_scaling", "dmakit", "64B", 2))
    if one and two:
        scaling = two["items_per_second"] / one["items_per_second"]
        rows.append(row("slab_scaling", "64B", 2, "x", "higher", round(scaling, 2), None, None))
    meta = by_key.get(("metadata_overhead", "dmakit", "mixed", 1))
    if meta:
        rows.append(row("metadata_overhead", "mixed", 1, "%", "lower", round(meta["percent"], 3),
                        None, None))
    frag = by_key.get(("fragmentation", "dmakit", "order9", 1))
    if frag:
        rows.append(row("fragmentation_order9_free", "order9", 1, "%", "higher",
                        round(frag["order9_free_pct"], 1), None, None))
        rows.append(row("fragmentation_largest_free_order", "order", 1, "order", "higher",
                        int(frag["largest_free_order"]), None, None))
    return rows


# DMA suite: metric -> (peer implementation or None). The host binary
# (dma_bench) and the guest one (dma_vm_bench, map_foreign_miss) write one
# Google Benchmark file each; run-bench merges them before conversion.
DMA_METRICS = {
    "map_pool_pair": None,
    "map_strict_pair": None,
    "map_strict_vm_pair": None,
    "map_foreign_hit_pair": None,
    "map_foreign_miss": None,
    "coherent_pair": "buddy_pair",
    "coherent_zeroing": None,
    "virt2iova": "rte_mem_virt2iova",
}


def dma_rows(results):
    by_key = {}
    for name, entry in results.items():
        metric, impl, size, threads = parse(name)
        by_key[(metric, impl, size)] = entry
    rows = []
    for metric, peer in DMA_METRICS.items():
        sizes = sorted({k[2] for k in by_key if k[0] == metric and k[1] == "dmakit"},
                       key=size_bytes)
        for size in sizes:
            value = round(to_ns(by_key[(metric, "dmakit", size)]), 2)
            peer_entry = by_key.get((metric, peer, size)) if peer else None
            peer_value = round(to_ns(peer_entry), 2) if peer_entry else None
            rows.append(row(metric, size, 1, "ns", "lower", value,
                            peer if peer_entry else None, peer_value))
    return rows


def size_bytes(label):
    for suffix, mult in (("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)):
        if label.endswith(suffix) and label[: -len(suffix)].isdigit():
            return int(label[: -len(suffix)]) * mult
    return 0


def row(metric, size, threads, unit, better, value, peer, peer_value):
    # Three significant digits, so a ratio far below 1 does not round to 0.
    ratio = float(f"{value / peer_value:.3g}") if peer_value else None
    return {"metric": metric, "size": size, "threads": threads, "unit": unit, "better": better,
            "value": value, "peer": peer, "peer_value": peer_value, "ratio": ratio}


def table(rows):
    header = ["metric", "size", "threads", "value", "unit", "peer", "peer value", "ratio"]
    lines = [header]
    for r in rows:
        lines.append([r["metric"], r["size"], str(r["threads"]), str(r["value"]), r["unit"],
                      r["peer"] or "-", "-" if r["peer_value"] is None else str(r["peer_value"]),
                      "-" if r["ratio"] is None else str(r["ratio"])])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths)) + " |"
           for line in lines]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("suite")
    parser.add_argument("gbench_json", help="one file, or several separated by commas")
    parser.add_argument("out_json")
    parser.add_argument("--machine", required=True)
    parser.add_argument("--command", required=True)
    args = parser.parse_args()
    results = load(args.gbench_json)
    if args.suite == "mem":
        rows = mem_rows(results)
    elif args.suite == "dma":
        rows = dma_rows(results)
    else:
        sys.exit(f"bench_rows.py: no row mapping for suite '{args.suite}'")
    with open(args.out_json, "w") as f:
        json.dump({"suite": args.suite, "machine": args.machine, "command": args.command,
                   "rows": rows}, f, indent=2)
        f.write("\n")
    print(table(rows))


if __name__ == "__main__":
    main()
