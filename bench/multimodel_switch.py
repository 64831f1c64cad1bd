#!/usr/bin/env python3
"""Model switch cost of a multi-model `ryot serve`: first-token latency of
requests that alternate between two resident models (A, B, A, B, ...)
against requests to one model repeatedly (A, A, ...; then B, B, ...).

Starts `ryot serve -m A -m B` (default: the two default models), loads both
(one warm-up request each), then for each mode sends N streamed chat
requests one at a time (max_tokens 1, greedy, a distinct prompt each so no
prefix-cache or response-cache hit) and takes the time from sending to the
first content chunk.  The switch cost is the alternating median minus the
repeated median, per model.

    bench/multimodel_switch.py [--ryot build/ryot] [-n 40] [--threads N] [A.gguf B.gguf]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

MODELS = os.environ.get("RYOT_MODEL_DIR") or os.path.expanduser("~/.cache/ryot/models")
DEFAULT = [os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf"), os.path.join(MODELS, "gemma-3-270m-q4_k_m.gguf")]


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def ttft(client, model, i):
    body = {"model": model, "max_tokens": 1, "temperature": 0, "stream": True,
            "messages": [{"role": "user", "content": f"Request {i}: name a colour."}]}
    t0 = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data: ") and '"content":"' in line and '"content":""' not in line:
                return time.perf_counter() - t0
            if line == "data: [DONE]":
                return time.perf_counter() - t0
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ryot", default="build/ryot")
    ap.add_argument("-n", type=int, default=40, help="requests per model and mode")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("models", nargs="*", default=DEFAULT)
    a = ap.parse_args()
    if len(a.models) != 2:
        sys.exit("two model files, please")
    ids = [os.path.basename(m)[:-5] for m in a.models]
    log = tempfile.NamedTemporaryFile(prefix="ryot-switch-", suffix=".log", delete=False)
    proc = subprocess.Popen([a.ryot, "serve", "--port", "0", "--quiet", "--threads", str(a.threads), "--ctx", "1024",
                             "-m", a.models[0], "-m", a.models[1]], stdout=log, stderr=subprocess.STDOUT)
    try:
        url = None
        for _ in range(600):
            m = re.search(r"listening on (http://[0-9.:]+)", open(log.name).read())
            if m:
                url = m.group(1)
                try:
                    if httpx.get(url + "/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            if proc.poll() is not None:
                sys.exit(open(log.name).read())
            time.sleep(0.1)
        with httpx.Client(base_url=url, timeout=120) as c:
            for mid in ids:  # load both, warm their caches and threads
                for i in range(3):
                    ttft(c, mid, -1 - i)
            res = {}
            i = 0
            for mid in ids:
                res[("repeat", mid)] = []
                for _ in range(a.n):
                    res[("repeat", mid)].append(ttft(c, mid, i))
                    i += 1
            res[("alternate", ids[0])], res[("alternate", ids[1])] = [], []
            for _ in range(a.n):
                for mid in ids:
                    res[("alternate", mid)].append(ttft(c, mid, i))
                    i += 1
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        print(f"# {cpu}, {os.cpu_count()} CPUs, --threads {a.threads}, n={a.n} per model and mode")
        print(f"{'model':40} {'mode':10} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
        for mid in ids:
            for mode in ("repeat", "alternate"):
                xs = [x * 1000 for x in res[(mode, mid)]]
                print(f"{mid:40} {mode:10} {pct(xs, 50):8.1f} {pct(xs, 99):8.1f} {statistics.mean(xs):8.1f}")
        for mid in ids:
            rep = [x * 1000 for x in res[("repeat", mid)]]
            alt = [x * 1000 for x in res[("alternate", mid)]]
            print(f"switch cost {mid}: p50 {pct(alt, 50) - pct(rep, 50):+.1f} ms, "
                  f"p99 {pct(alt, 99) - pct(rep, 99):+.1f} ms")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        os.unlink(log.name)


if __name__ == "__main__":
    main()
