#!/usr/bin/env python3
"""Markdown table of ryot serve against llama-server from `ryot bench serve`
result files (bench/serve_vs_llamaserver.sh writes DIR/{llama-server,ryot}-cN.json).

    python3 bench/serve_table.py bench/results/serve-2026-11-22
    python3 bench/serve_table.py --merge DIR   # also writes DIR/{ryot,llama-server}-sweep.json
                                               # (every point as one file, for `ryot bench plot`)
"""
import glob
import json
import os
import re
import sys


def load(path):
    with open(path) as f:
        d = json.load(f)
    return d, d["runs"][0]["metrics"]


def main(d):
    conc = sorted({int(re.search(r"-c(\d+)\.json$", p).group(1)) for p in glob.glob(os.path.join(d, "ryot-c*.json"))})
    print("| streams | llama-server out tok/s | ryot out tok/s | ratio | llama-server TTFT p50 / p99 (ms) "
          "| ryot TTFT p50 / p99 (ms) | ryot RSS (MiB, VmHWM) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for c in conc:
        _, l = load(os.path.join(d, f"llama-server-c{c}.json"))
        _, r = load(os.path.join(d, f"ryot-c{c}.json"))
        rss = ""
        rp = os.path.join(d, f"ryot-c{c}.rss")
        if os.path.exists(rp):
            m = re.search(r"VmHWM:\s+(\d+)", open(rp).read())
            rss = f"{int(m.group(1)) / 1024:.0f}" if m else ""
        print(f"| {c} | {l['output_throughput']:.1f} | {r['output_throughput']:.1f} | "
              f"{r['output_throughput'] / l['output_throughput']:.2f}x | "
              f"{l['ttft_ms']['median']:.0f} / {l['ttft_ms']['p99']:.0f} | {r['ttft_ms']['median']:.0f} / {r['ttft_ms']['p99']:.0f} | {rss} |")
    d0, _ = load(os.path.join(d, f"ryot-c{conc[0]}.json"))
    s = d0.get("settings", {})
    print(f"\nmachine: {d0['machine'].get('cpu_model', '')}, {d0['machine'].get('cores', '')} cores; commit {d0.get('git_commit', '')[:10]}; "
          f"workload: {s.get('workload', '')}, input {s.get('input_len', '')} words, output {s.get('output_len', '')} tokens (ignore_eos)")


def merge(d):
    for s in ("llama-server", "ryot"):
        files = sorted(glob.glob(os.path.join(d, f"{s}-c*.json")),
                       key=lambda p: int(re.search(r"-c(\d+)\.json$", p).group(1)))
        if not files:
            continue
        with open(files[0]) as f:
            base = json.load(f)
        base["runs"] = []
        for p in files:
            with open(p) as f:
                base["runs"].append(json.load(f)["runs"][0])
        base["label"] = f"{s} sweep"
        with open(os.path.join(d, f"{s}-sweep.json"), "w") as f:
            json.dump(base, f)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--merge":
        merge(args[1])
        args = args[1:]
    main(args[0] if args else "bench/results/serve-2026-11-22")
