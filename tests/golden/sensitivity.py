#!/usr/bin/env python3
"""How far llama.cpp moves from its own golden reference under harmless changes.

Run by hand (needs the reference venv of bench/setup-reference-venv.sh, like
gen_reference.py; not part of CI):

    ~/.cache/ryot/venv-ref/bin/python tests/golden/sensitivity.py > tests/golden/sensitivity.txt

The references in <model>.json were made with an F16 KV cache, flash
attention off and 512-token batches.  This script runs the same llama.cpp
with settings that change only rounding and summation order (F32 KV cache,
flash attention on, small batches) and scores each variant against the
committed reference exactly as tests/unit/test_golden.c scores ryot:

  - greedy: the first MIN_MATCH generated tokens must equal the reference,
    except where the reference's top-2 margin at the first differing step is
    below TIE_MARGIN (the 0.02 rule); prompts breaking that rule are counted;
  - top-10: for each prompt, the largest |logit difference| over the
    reference's top-10 ids at the last prompt position ("worst"), averaged
    over the prompts ("mean of worst", the test's LOGIT_MEAN_TOL figure) and
    its maximum; also the mean |difference| over the ten ids ("mean abs").

The "reference settings" row reruns the generator's own settings and should
read 0 everywhere: it shows the reference is reproducible, so the other rows
measure the variant alone.
"""
import json
import os
import sys
import time

import numpy as np
from llama_cpp import Llama, llama_cpp

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.environ.get("RYOT_MODEL_DIR", os.path.expanduser("~/.cache/ryot/models"))
GOLDEN = ["smollm2.json", "gemma3.json"]
MIN_MATCH = 32
TIE_MARGIN = 0.02
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


def run_case(llm, case):
    """Greedy continuation (up to MIN_MATCH tokens, EOG included) and the
    last-prompt-position logits."""
    llm.reset()
    llm.eval(case["prompt_ids"])
    first = logits = last_logits(llm)
    n = min(MIN_MATCH, len(case["greedy"]))
    out = []
    for s in range(n):
        tok = int(np.argmax(logits))
        out.append(tok)
        if s + 1 == n or llama_cpp.llama_token_is_eog(llm._model.vocab, tok):
            break
        llm.eval([tok])
        logits = last_logits(llm)
    return out, first


def score_variant(llm, ref, details):
    fails, ties, worst, mean_abs = 0, 0, [], []
    for i, case in enumerate(ref["cases"]):
        gen, first = run_case(llm, case)
        want = case["greedy"][:MIN_MATCH]
        k = next((j for j in range(min(len(gen), len(want))) if gen[j] != want[j]), None)
        if k is None and len(gen) != len(want):
            k = min(len(gen), len(want))
        if k is not None:
            margin = case["top2_margin"][k]
            bad = margin >= TIE_MARGIN
            fails += bad
            ties += not bad
            details.append(f"    case {i:2d}: differs at step {k:2d}, reference top-2 margin {margin:.4f}"
                           + ("  FAIL" if bad else "  (near-tie)"))
        diffs = np.array([abs(first[tid] - val) for tid, val in case["top_logits"]])
        worst.append(diffs.max())
        mean_abs.append(diffs.mean())
    return fails, ties, float(np.mean(worst)), float(np.max(worst)), float(np.mean(mean_abs))


def main():
    print(f"llama-cpp-python {getattr(__import__('llama_cpp'), '__version__', '?')}; "
          f"rule: first {MIN_MATCH} greedy tokens equal unless the reference's top-2 margin < {TIE_MARGIN}")
    for name in GOLDEN:
        with open(os.path.join(HERE, name), encoding="utf-8") as f:
            ref = json.load(f)
        path = os.path.join(MODEL_DIR, ref["model"])
        n_cases = len(ref["cases"])
        print(f"\n{name} ({ref['model']}, reference: {ref['generator']}, {n_cases} prompts)")
        print(f"  {'variant':<20} {'fail 0.02 rule':>14} {'near-ties':>9} {'top10 mean of worst':>19} "
              f"{'max worst':>9} {'mean abs':>8}")
        for vname, kw in VARIANTS:
            params = reference_params()
            params.update(kw)
            t0 = time.time()
            llm = Llama(model_path=path, **params)
            details = []
            fails, ties, mworst, xworst, mabs = score_variant(llm, ref, details)
            del llm
            print(f"  {vname:<20} {f'{fails}/{n_cases}':>14} {ties:>9} {mworst:>19.4f} {xworst:>9.4f} {mabs:>8.4f}")
            for line in details:
                print(line)
            print(f"  ({vname}: {time.time() - t0:.0f} s)", file=sys.stderr)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
