#!/usr/bin/env python3
"""Semantic cache threshold: cosine similarities of paraphrase pairs (which
should hit) and near-miss pairs (same shape, different meaning: which must
not), from the embedding model the server uses for --semantic-cache, and the
hit rate / false-hit rate at a few thresholds.  The vectors come from
/v1/embeddings of a server started here, so they are the ones the cache
compares (it embeds the final user message the same way and normalizes).

Then the hit latency: one question answered (a miss), then --hits requests
for paraphrases of it that the cache answers (hit-semantic), timed
client-side over one keep-alive connection (HTTP, JSON, the embedding of the
question, the index scan and the L1 lookup), against as many exact repeats
(hit-l1) for reference.

  bench/semantic_pairs.py [--ryot build/ryot] [--embed-model FILE] [--hits 200]

The pairs are written for this benchmark (none taken from a data set)."""
import argparse
import os
import re
import subprocess
import sys
import time

import httpx
import numpy as np

PARAPHRASES = [
    ("What is the capital of France?", "What's the capital of France?"),
    ("What is the capital of France?", "Which city is the capital of France?"),
    ("How do I reverse a list in Python?", "How can I reverse a list in Python?"),
    ("How many legs does a spider have?", "How many legs do spiders have?"),
    ("What is the boiling point of water?", "At what temperature does water boil?"),
    ("Who wrote Romeo and Juliet?", "Who is the author of Romeo and Juliet?"),
    ("Name three colors.", "List three colors."),
    ("What time zone is Tokyo in?", "Which time zone is Tokyo in?"),
    ("How do I make a cup of tea?", "How do you make a cup of tea?"),
    ("What is the speed of light?", "How fast is the speed of light?"),
    ("Translate 'hello' into Spanish.", "How do you say 'hello' in Spanish?"),
    ("What does HTTP stand for?", "What is HTTP short for?"),
    ("How tall is Mount Everest?", "What is the height of Mount Everest?"),
    ("Give me a synonym for happy.", "What is a synonym for happy?"),
    ("What is the largest planet in the solar system?", "Which planet is the largest in our solar system?"),
    ("How do I sort a dictionary by value in Python?", "How can I sort a Python dict by its values?"),
    ("When did World War II end?", "In what year did World War II end?"),
    ("What is photosynthesis?", "Can you explain what photosynthesis is?"),
    ("How many days are in a leap year?", "How many days does a leap year have?"),
    ("Tell me a joke.", "Tell me a joke please."),
]

NEAR_MISSES = [
    ("What is the capital of France?", "What is the capital of Germany?"),
    ("What is the capital of France?", "What is the population of France?"),
    ("How do I reverse a list in Python?", "How do I reverse a list in JavaScript?"),
    ("How many legs does a spider have?", "How many legs does an ant have?"),
    ("What is the boiling point of water?", "What is the freezing point of water?"),
    ("Who wrote Romeo and Juliet?", "Who wrote Hamlet?"),
    ("Name three colors.", "Name three animals."),
    ("What time zone is Tokyo in?", "What time zone is London in?"),
    ("How do I make a cup of tea?", "How do I make a cup of coffee?"),
    ("What is the speed of light?", "What is the speed of sound?"),
    ("Translate 'hello' into Spanish.", "Translate 'hello' into French."),
    ("What does HTTP stand for?", "What does FTP stand for?"),
    ("How tall is Mount Everest?", "How tall is the Eiffel Tower?"),
    ("Give me a synonym for happy.", "Give me an antonym for happy."),
    ("What is the largest planet in the solar system?", "What is the smallest planet in the solar system?"),
    ("How do I sort a dictionary by value in Python?", "How do I sort a dictionary by key in Python?"),
    ("When did World War II end?", "When did World War I end?"),
    ("What is 2 + 2?", "What is 2 + 3?"),
    ("How many days are in a leap year?", "How many days are in a week?"),
    ("Is it safe to eat raw chicken?", "Is it safe to eat raw fish?"),
]

THRESHOLDS = [0.80, 0.85, 0.90, 0.92, 0.95, 0.97]


def start(ryot, model, embed):
    p = subprocess.Popen([ryot, "serve", "-m", model, "--embed-model", embed, "--port", "0", "--threads", "2",
                          "--ctx", "512", "--quiet", "--cache-mb", "16", "--semantic-cache", "0.95"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    url = None
    for line in p.stderr:
        m = re.search(r"listening on (http://[0-9.:]+)", line)
        if m:
            url = m.group(1)
        if "embedding model" in line or time.time() > deadline:
            break
    if not url:
        p.kill()
        sys.exit("server did not start")
    for _ in range(600):
        try:
            if httpx.get(url + "/health").json().get("status") == "ok":
                break
        except Exception:
            pass
        time.sleep(0.1)
    return p, url


def hit_latency(url, n):
    """ms per request, client-side, by X-Ryot-Cache state."""
    asks = ["What's the capital of France?", "what's the capital of France?",
            "what is the capital of France?", "What is the capital of France ?"]
    out = {"hit-semantic": [], "hit-l1": []}
    with httpx.Client(base_url=url, timeout=120) as c:
        def ask(q):
            body = {"messages": [{"role": "user", "content": q}], "max_tokens": 32, "temperature": 0}
            t0 = time.perf_counter()
            r = c.post("/v1/chat/completions", json=body)
            dt = (time.perf_counter() - t0) * 1e3
            r.raise_for_status()
            return r.headers["X-Ryot-Cache"], dt
        assert ask("What is the capital of France?")[0] == "miss"
        for i in range(n):
            st, dt = ask(asks[i % len(asks)])
            out.setdefault(st, []).append(dt)
            st, dt = ask("What is the capital of France?")
            out.setdefault(st, []).append(dt)
    return out


def main():
    home = os.path.expanduser("~/.cache/ryot/models")
    ap = argparse.ArgumentParser()
    ap.add_argument("--ryot", default=os.environ.get("RYOT", "build/ryot"))
    ap.add_argument("--model", default=os.path.join(home, "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--embed-model", default=os.path.join(home, "all-MiniLM-L6-v2.f32.gguf"))
    ap.add_argument("--hits", type=int, default=200)
    a = ap.parse_args()
    p, url = start(a.ryot, a.model, a.embed_model)
    try:
        eid = os.path.basename(a.embed_model)[:-5]

        def cosines(pairs):
            texts = [t for pr in pairs for t in pr]
            r = httpx.post(url + "/v1/embeddings", json={"model": eid, "input": texts}, timeout=120)
            r.raise_for_status()
            v = np.array([d["embedding"] for d in r.json()["data"]], dtype=np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            return np.sum(v[0::2] * v[1::2], axis=1)

        cp, cn = cosines(PARAPHRASES), cosines(NEAR_MISSES)
        lat = hit_latency(url, a.hits)
    finally:
        p.terminate()
        p.wait()
    print(f"embedding model: {os.path.basename(a.embed_model)}")
    print(f"{len(PARAPHRASES)} paraphrase pairs: cosine min {cp.min():.3f} median {np.median(cp):.3f} max {cp.max():.3f}")
    print(f"{len(NEAR_MISSES)} near-miss pairs:  cosine min {cn.min():.3f} median {np.median(cn):.3f} max {cn.max():.3f}")
    print("threshold  paraphrase hit rate  near-miss false-hit rate")
    for t in THRESHOLDS:
        print(f"  {t:.2f}     {np.mean(cp >= t) * 100:5.1f}% ({int(np.sum(cp >= t))}/{len(cp)})"
              f"          {np.mean(cn >= t) * 100:5.1f}% ({int(np.sum(cn >= t))}/{len(cn)})")
    for st in ("hit-semantic", "hit-l1"):
        v = np.array(lat.get(st) or [float("nan")])
        print(f"{st}: {len(lat.get(st) or [])} requests, client-side ms p50 {np.percentile(v, 50):.2f} "
              f"p99 {np.percentile(v, 99):.2f} max {v.max():.2f}")
    other = {k: len(v) for k, v in lat.items() if k not in ("hit-semantic", "hit-l1")}
    if other:
        print(f"other states during the latency run: {other}")
    print("near misses, most similar first:")
    for i in np.argsort(-cn)[:5]:
        print(f"  {cn[i]:.3f}  {NEAR_MISSES[i][0]!r} vs {NEAR_MISSES[i][1]!r}")
    print("paraphrases, least similar first:")
    for i in np.argsort(cp)[:5]:
        print(f"  {cp[i]:.3f}  {PARAPHRASES[i][0]!r} vs {PARAPHRASES[i][1]!r}")


if __name__ == "__main__":
    main()
