#!/usr/bin/env python3
"""ryot bench vs llama.cpp on the same GGUF file, measured in the same run.

llama.cpp is driven through llama-cpp-python (PyPI, built from source by
bench/setup-reference-venv.sh with the ISA flags of bench/llama_cpp_flags.sh:
AVX2/FMA/F16C, AVX-512 where the CPU has it, never AMX), timed like llama-bench: pp = one batch of P prompt tokens from an
empty context, tg = N tokens evaluated one at a time from an empty context;
one warm-up, then mean and sd over R runs.  ryot is run as `ryot bench --json`
with the same P, N, R and threads.  The two alternate per thread count so that
machine noise hits both alike.

    ~/.cache/ryot/venv-ref/bin/python bench/compare_llamacpp.py -m MODEL.gguf [-t 1,2] [-p 512] [-n 128] [-r 5]
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

from llama_cpp import Llama


def llamacpp_bench(model, threads, p, n, r):
    llm = Llama(model_path=model, n_ctx=max(p, n) + 8, n_batch=p, n_ubatch=p, n_threads=threads,
                n_threads_batch=threads, verbose=False, logits_all=False)
    n_vocab = llm.n_vocab()
    rng = random.Random(42)
    prompt = [rng.randrange(n_vocab) for _ in range(p)]
    pp, tg = [], []
    for it in range(r + 1):
        llm.reset()
        llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
        t0 = time.perf_counter()
        llm.eval(prompt)
        t1 = time.perf_counter()
        llm.reset()
        llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
        tok = prompt[0]
        t2 = time.perf_counter()
        for _ in range(n):
            llm.eval([tok])
        t3 = time.perf_counter()
        if it == 0:
            continue  # warm-up
        pp.append(p / (t1 - t0))
        tg.append(n / (t3 - t2))
    del llm
    return pp, tg


def ryot_bench(ryot, model, threads, p, n, r):
    out = subprocess.run([ryot, "bench", "-m", model, "-t", str(threads), "-p", str(p), "-n", str(n),
                          "-r", str(r), "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def ms(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-t", "--threads", default="1,2")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=5)
    ap.add_argument("--ryot", default=os.path.join(os.path.dirname(__file__), "..", "build", "ryot"))
    a = ap.parse_args()
    print(f"model: {os.path.basename(a.model)}  p={a.p} n={a.n} r={a.r}")
    print(f"{'threads':>7} {'test':>6} {'llama.cpp t/s':>16} {'ryot t/s':>16} {'ratio':>6}")
    for t in [int(x) for x in a.threads.split(",")]:
        lpp, ltg = llamacpp_bench(a.model, t, a.p, a.n, a.r)
        rj = ryot_bench(a.ryot, a.model, t, a.p, a.n, a.r)
        res = {x["test"]: x for x in rj["results"]}
        for name, lx in ((f"pp{a.p}", lpp), (f"tg{a.n}", ltg)):
            lm, ls = ms(lx)
            rm, rs = res[name]["mean"], res[name]["sd"]
            print(f"{t:>7} {name:>6} {lm:>9.1f} ± {ls:<5.1f} {rm:>9.1f} ± {rs:<5.1f} {rm / lm:>6.2f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
