#!/usr/bin/env python3
"""How far llama.cpp moves from its own golden reference under harmless changes.

Run by hand (needs the reference venv of bench/setup-reference-venv.sh, like
gen_reference.py; not part of CI):

    ~/.cache/ryot/venv-ref/bin/python tests/golden/sensitivity.py > tests/golden/sensitivity.txt

The references in <model>.json were made with an F16 KV cache, flash
attention off and 512-token batches.  This script runs the same llama.cpp
with settings that change only rounding and summation order (F32 KV cache,
flash attention on, small batches) and scores each variant against the
committed reference exactly as tests/unit/test_golden.c scores ryot, teacher
forced: the variant is fed the reference's prompt and greedy continuation,
and at every step s (the prediction of continuation token s) it is compared
with the reference's record for that step:

  - argmax: the variant's argmax (lowest id on ties) against the reference's
    token, counted by the reference's top-2 logit margin at that step:
    >= 1.0 ("hard", the test allows none), in [0.5, 1.0) ("soft", the test
    allows 1 per model) and below 0.5 (free);
  - top-10 error of the step: the largest |variant log-prob - reference
    log-prob| over the reference's top-10 tokens of the step, log-probs being
    log-softmax over the whole vocabulary; its mean over all steps of the
    model (448) and its p99, the nearest-rank percentile: the
    ceil(99 n / 100)-th smallest step error (for n = 448, the 5th largest).

The "reference settings" row reruns the generator's own settings and should
read 0 everywhere: it shows the reference is reproducible, so the other rows
measure the variant alone.
"""
import json
import math
import os
import sys
import time

import numpy as np
from llama_cpp import Llama

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.environ.get("RYOT_MODEL_DIR", os.path.expanduser("~/.cache/ryot/models"))
GOLDEN = ["smollm2.json", "gemma3.json"]
HARD_MARGIN = 1.0
SOFT_MARGIN = 0.5
GGML_TYPE_F32 = 0

# name -> Llama() keyword arguments on top of the reference's.
VARIANTS = [
    ("reference settings", {}),
    ("F32 KV cache", {"type_k": GGML_TYPE_F32, "type_v": GGML_TYPE_F32}),
    ("flash attention on", {"flash_attn": True}),
    ("8-token batches", {"n_batch": 8, "n_ubatch": 8}),
]


def reference_params():
    return {"n_ctx": 1024, "n_batch": 512, "n_threads": 2, "logits_all": True, "verbose": False, "seed": 0}


def last_logits(llm):
    return np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)


def log_softmax(logits):
    m = logits.max()
    return logits - (m + math.log(np.exp(logits - m).sum()))


def p99(errs):
    """Nearest-rank 99th percentile, as the C test computes it."""
    e = sorted(errs)
    return e[(99 * len(e) + 99) // 100 - 1]


def score_variant(llm, ref, details):
    hard = soft = free = 0
    errs = []
    for ci, case in enumerate(ref["cases"]):
        llm.reset()
        llm.eval(case["prompt_ids"])
        gen = case["greedy"]
        for s, want in enumerate(gen):
            logits = last_logits(llm)
            lp = log_softmax(logits)
            errs.append(max(abs(lp[t] - ref_lp) for t, ref_lp in case["top10_logprob"][s]))
            got = int(np.argmax(logits))
            if got != want:
                margin = case["top2_margin"][s]
                kind = "hard" if margin >= HARD_MARGIN else "soft" if margin >= SOFT_MARGIN else "free"
                hard += kind == "hard"
                soft += kind == "soft"
                free += kind == "free"
                if kind != "free":
                    details.append(f"    case {ci:2d} step {s:2d}: argmax {got} instead of {want}, "
                                   f"reference top-2 margin {margin:.4f} ({kind})")
            if s + 1 < len(gen):
                llm.eval([want])
    return hard, soft, free, float(np.mean(errs)), p99(errs), float(np.max(errs)), len(errs)


def main():
    print(f"llama-cpp-python {getattr(__import__('llama_cpp'), '__version__', '?')}; teacher-forced along the "
          f"reference's greedy continuation (EOS ignored); argmax misses by the reference's top-2 margin "
          f"(>= {HARD_MARGIN} / [{SOFT_MARGIN}, {HARD_MARGIN}) / below); top-10 error: per step the largest "
          f"|log-prob difference| over the reference's top-10 tokens, mean and nearest-rank p99 over the steps")
    for name in GOLDEN:
        with open(os.path.join(HERE, name), encoding="utf-8") as f:
            ref = json.load(f)
        path = os.path.join(MODEL_DIR, ref["model"])
        n_steps = sum(len(c["greedy"]) for c in ref["cases"])
        print(f"\n{name} ({ref['model']}, reference: {ref['generator']}, {len(ref['cases'])} prompts, "
              f"{n_steps} steps)")
        print(f"  {'variant':<20} {'miss >=1':>8} {'miss [.5,1)':>11} {'miss <.5':>8} {'top10 mean':>10} "
              f"{'p99':>7} {'max':>7}")
        for vname, kw in VARIANTS:
            params = reference_params()
            params.update(kw)
            t0 = time.time()
            llm = Llama(model_path=path, **params)
            details = []
            hard, soft, free, mean, q99, mx, n = score_variant(llm, ref, details)
            del llm
            print(f"  {vname:<20} {hard:>8} {soft:>11} {free:>8} {mean:>10.4f} {q99:>7.4f} {mx:>7.4f}")
            for line in details:
                print(line)
            print(f"  ({vname}: {n} steps, {time.time() - t0:.0f} s)", file=sys.stderr)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
