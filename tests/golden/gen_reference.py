#!/usr/bin/env python3
"""Generate golden reference outputs with llama.cpp (through llama-cpp-python).

Run once, by hand, when prompts or models change; the JSON files it writes are
committed and CI compares ryot against them without needing llama.cpp:

    bash bench/setup-reference-venv.sh      # once: ~/.cache/ryot/venv-ref
    ~/.cache/ryot/venv-ref/bin/python tests/golden/gen_reference.py

(setup-reference-venv.sh builds llama-cpp-python 0.3.36 from source with the
explicit ISA flags of bench/llama_cpp_flags.sh: GGML_NATIVE and AMX off,
which a native build on an AMX Xeon would turn on and crash in.)

For each model and prompt it records llama.cpp's prompt token ids and its
greedy continuation of N_GEN tokens with EOS ignored (an end-of-generation
token is fed back like any other, so every prompt has N_GEN steps; 14 prompts
x 32 steps = 448 steps per model), and at every step (step s predicts token s
of the continuation, from the prompt and tokens 0..s-1) the margin between
the top two logits and llama.cpp's top-10 tokens with their log-probabilities
(log-softmax over the whole vocabulary, in double).  tests/unit/test_golden.c
feeds this continuation to ryot (teacher forcing) and scores ryot's
prediction at every step against these.  It also records llama.cpp's
perplexity over tests/golden/ppl.txt, computed the way `ryot perplexity`
computes it (non-overlapping windows of PPL_CTX tokens, BOS first when the
vocab adds one, second half of each window scored).
"""
import json
import math
import os
import sys

import numpy as np
from llama_cpp import Llama, llama_cpp

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.environ.get("RYOT_MODEL_DIR", os.path.expanduser("~/.cache/ryot/models"))
MODELS = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
}
N_GEN = 32
TOP_K = 10
PPL_CTX = 512

# Fourteen varied prompts: plain continuation, chat-formatted, code, lists,
# numbers, other languages, and a longer context.
PROMPTS = [
    ("plain", "The capital of France is"),
    ("plain", "Once upon a time, in a small village by the sea,"),
    ("plain", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
    ("plain", "1, 2, 3, 4, 5, 6,"),
    ("plain", "Photosynthesis is the process by which"),
    ("plain", "La tour Eiffel est"),
    ("plain", "Here is a list of three fruits:\n1."),
    ("plain", "{\"name\": \"Alice\", \"age\":"),
    ("chat", "What is the capital of France?"),
    ("chat", "Write a haiku about the ocean."),
    ("chat", "Explain in one sentence what a CPU cache is."),
    ("chat", "List three primary colors."),
    ("plain", "Der schnellste Weg von Berlin nach Hamburg ist"),
    ("plain", "The history of computing began long before modern electronic computers. "
              "Early mechanical calculators, such as those designed by Pascal and Leibniz, "
              "could add and multiply numbers. In the nineteenth century, Charles Babbage "
              "designed the Analytical Engine, which"),
]


def chat_wrap(model_key, text):
    if model_key == "gemma3":
        return "<start_of_turn>user\n" + text + "<end_of_turn>\n<start_of_turn>model\n"
    return "<|im_start|>user\n" + text + "<|im_end|>\n<|im_start|>assistant\n"


def last_logits(llm):
    return np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)


def log_softmax(logits):
    m = logits.max()
    return logits - (m + math.log(np.exp(logits - m).sum()))


def greedy(llm, prompt_ids):
    """N_GEN greedy tokens, EOS ignored, with the top-2 margin and the top-10
    (token, log-probability) at every step.  Ties go to the lowest id, as in
    ryot's argmax."""
    llm.reset()
    llm.eval(prompt_ids)
    out, margins, tops = [], [], []
    for s in range(N_GEN):
        logits = last_logits(llm)
        order = np.argsort(-logits, kind="stable")
        tok = int(order[0])
        margins.append(float(logits[order[0]] - logits[order[1]]))
        lp = log_softmax(logits)
        tops.append([[int(i), round(float(lp[i]), 6)] for i in order[:TOP_K]])
        out.append(tok)
        if s + 1 < N_GEN:
            llm.eval([tok])
    return out, margins, tops


def perplexity(llm, ids, add_bos, bos):
    n_ctx = PPL_CTX
    nll, count = 0.0, 0
    n_windows = len(ids) // n_ctx
    for w in range(n_windows):
        win = list(ids[w * n_ctx:(w + 1) * n_ctx])
        if add_bos:
            win[0] = bos
        llm.reset()
        llm.eval(win)
        for i in range(n_ctx // 2, n_ctx - 1):
            row = np.array(llm.scores[i], dtype=np.float64)
            m = row.max()
            lse = m + math.log(np.exp(row - m).sum())
            nll += lse - row[win[i + 1]]
            count += 1
    return math.exp(nll / count), n_windows, count


def main():
    ppl_text = open(os.path.join(HERE, "ppl.txt"), encoding="utf-8").read()
    for key, fname in MODELS.items():
        path = os.path.join(MODEL_DIR, fname)
        llm = Llama(model_path=path, n_ctx=1024, n_batch=512, n_threads=2, logits_all=True,
                    verbose=False, seed=0)
        add_bos = llama_cpp.llama_vocab_get_add_bos(llm._model.vocab)
        cases = []
        for kind, text in PROMPTS:
            full = chat_wrap(key, text) if kind == "chat" else text
            ids = llm.tokenize(full.encode(), add_bos=add_bos, special=(kind == "chat"))
            gen, margins, tops = greedy(llm, ids)
            cases.append({"kind": kind, "text": text, "prompt": full, "special": kind == "chat",
                          "prompt_ids": ids, "greedy": gen, "top2_margin": margins,
                          "top10_logprob": tops})
            print(key, kind, repr(text[:40]), "->", repr(llm.detokenize(gen).decode(errors="replace")[:60]),
                  file=sys.stderr)
        ppl_ids = llm.tokenize(ppl_text.encode(), add_bos=False, special=False)
        ppl, nw, nc = perplexity(llm, ppl_ids, add_bos, llm.token_bos())
        print(key, "ppl", ppl, nw, nc, file=sys.stderr)
        ref = {"model": fname, "generator": "llama-cpp-python " + getattr(__import__("llama_cpp"), "__version__", "?"),
               "n_gen": N_GEN, "ignore_eos": True, "top_k": TOP_K, "add_bos": bool(add_bos), "cases": cases,
               "perplexity": {"file": "ppl.txt", "ctx": PPL_CTX, "windows": nw, "scored": nc, "ppl": ppl}}
        with open(os.path.join(HERE, key + ".json"), "w") as f:
            json.dump(ref, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
