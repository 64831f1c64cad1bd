"""The semantic response cache (--semantic-cache T with --embed-model and
--cache-mb): a paraphrase of a cached chat question gets its answer
(X-Ryot-Cache: hit-semantic, same content, streamed or not), a near miss
("capital of France" vs "of Germany") does not, nor does the same question
in another conversation (system prompt) or with other parameters;
non-deterministic requests bypass; an entry whose answer left L1 goes with
it; the tier="semantic" metrics; the flag's checks.  Without the embedding
model the tests skip, or fail when CI=true."""
import json
import os
import re
import subprocess
import time

import httpx
import pytest

from conftest import RYOT, sse_events, start_server

MODELS = os.environ.get("RYOT_MODEL_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "ryot", "models")
EMBED_GGUF = os.path.join(MODELS, "all-MiniLM-L6-v2.f32.gguf")
THRESHOLD = "0.95"


def need_embed_model():
    if not os.path.exists(EMBED_GGUF):
        msg = f"{EMBED_GGUF} is missing (scripts/fetch-models.sh minilm)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="module")
def sem():
    need_embed_model()
    s = start_server("--ctx", "512", "--threads", "2", "--cache-mb", "16", "--embed-model", EMBED_GGUF,
                     "--semantic-cache", THRESHOLD)
    yield s
    s.stop_and_check()


def chat(s, content, system=None, stream=False, **kw):
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    body = {"messages": msgs, "max_tokens": 12, "temperature": 0, **kw}
    if not stream:
        r = httpx.post(s.url("/v1/chat/completions"), json=body, timeout=120)
        assert r.status_code == 200, r.text
        return r.headers["X-Ryot-Cache"], r.json()["choices"][0]["message"]["content"]
    with httpx.stream("POST", s.url("/v1/chat/completions"), json={**body, "stream": True}, timeout=120) as r:
        assert r.status_code == 200
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                       for e in sse_events(r) if e != "[DONE]")
        return r.headers["X-Ryot-Cache"], text


def sem_counts(s):
    m = httpx.get(s.url("/metrics")).text
    got = {}
    for res in ("hit", "miss"):
        g = re.search(r'ryot_cache_requests_total\{tier="semantic",result="%s"\} (\d+)' % res, m)
        assert g, m
        got[res] = int(g.group(1))
    g = re.search(r"^ryot_cache_semantic_entries (\d+)$", m, re.M)
    assert g
    got["entries"] = int(g.group(1))
    return got


def test_paraphrase_hits_with_the_same_answer(sem):
    st, a = chat(sem, "What is the capital of France?", max_tokens=13)
    assert st == "miss"
    m0 = sem_counts(sem)
    st, b = chat(sem, "What's the capital of France?", max_tokens=13)
    assert st == "hit-semantic"
    assert b == a
    m1 = sem_counts(sem)
    assert m1["hit"] == m0["hit"] + 1
    # streamed: the same answer in SSE
    st, c = chat(sem, "what's the capital of France?", max_tokens=13, stream=True)
    assert st == "hit-semantic"
    assert c == a
    # the exact question again is an L1 hit (checked first)
    assert chat(sem, "What is the capital of France?", max_tokens=13)[0] == "hit-l1"


def test_near_miss_misses(sem):
    chat(sem, "What is the capital of France?", max_tokens=14)
    m0 = sem_counts(sem)
    st, _ = chat(sem, "What is the capital of Germany?", max_tokens=14)
    assert st == "miss"
    assert sem_counts(sem)["miss"] == m0["miss"] + 1
    st, _ = chat(sem, "How do I make a cup of coffee?", max_tokens=14)
    assert st == "miss"


def test_other_context_never_hits(sem):
    q = "Name three colors."
    chat(sem, q, system="You are a helpful assistant.", max_tokens=15)
    # the very same final message under another system prompt, or none
    assert chat(sem, q, system="You are a pirate.", max_tokens=15)[0] == "miss"
    assert chat(sem, "List three colors.", system="You are a poet.", max_tokens=15)[0] == "miss"
    # other parameters (max_tokens, stop) are other contexts too
    assert chat(sem, "List three colors.", system="You are a helpful assistant.", max_tokens=16)[0] == "miss"
    assert chat(sem, "List three colors.", system="You are a helpful assistant.", max_tokens=15,
                stop=["\n"])[0] == "miss"
    # while the same context does hit
    assert chat(sem, "Name three colors!", system="You are a helpful assistant.", max_tokens=15)[0] == "hit-semantic"


def test_nondeterministic_bypasses(sem):
    chat(sem, "How tall is Mount Everest?", max_tokens=12, temperature=0.9, seed=1)
    m0 = sem_counts(sem)
    for _ in range(2):
        assert chat(sem, "How tall is Mount Everest?", max_tokens=12, temperature=0.9)[0] == "miss"
    m1 = sem_counts(sem)
    assert (m1["hit"], m1["miss"]) == (m0["hit"], m0["miss"])  # not even looked up
    # a seed is deterministic: the semantic tier applies
    assert chat(sem, "How tall is Mount Everest??", max_tokens=12, temperature=0.9, seed=1)[0] == "hit-semantic"
    assert chat(sem, "How tall is Mount Everest??", max_tokens=12, temperature=0.9, seed=2)[0] == "miss"


def test_no_cache_header_skips(sem):
    chat(sem, "Who wrote Romeo and Juliet?", max_tokens=12)
    r = httpx.post(sem.url("/v1/chat/completions"), headers={"Cache-Control": "no-cache"}, timeout=120,
                   json={"messages": [{"role": "user", "content": "Who wrote Romeo and Juliet??"}],
                         "max_tokens": 12, "temperature": 0})
    assert r.headers["X-Ryot-Cache"] == "miss"


def test_entry_goes_with_l1():
    need_embed_model()
    s = start_server("--ctx", "512", "--threads", "2", "--cache-mb", "16", "--cache-ttl", "1", "--semantic-entries", "2048",
                     "--embed-model", EMBED_GGUF, "--semantic-cache", THRESHOLD)
    try:
        chat(s, "What is the speed of light?")
        assert sem_counts(s)["entries"] == 1
        time.sleep(1.5)  # the answer expires in L1
        assert chat(s, "What's the speed of light?")[0] == "miss"
        m = sem_counts(s)
        # the stale entry went, the new question's came in; the lookup counted as a miss
        assert m["entries"] == 1
        assert m["hit"] == 0
    finally:
        s.stop_and_check()


@pytest.mark.parametrize("args,msg", [
    (["--semantic-cache", "0.9", "--cache-mb", "16"], "--embed-model"),
    (["--semantic-cache", "0.9", "--embed-model", EMBED_GGUF], "--cache-mb"),
    (["--semantic-cache", "1.5", "--cache-mb", "16", "--embed-model", EMBED_GGUF], "(0, 1]"),
    (["--semantic-cache", "0", "--cache-mb", "16", "--embed-model", EMBED_GGUF], "(0, 1]"),
    (["--semantic-cache", "x", "--cache-mb", "16", "--embed-model", EMBED_GGUF], "(0, 1]"),
    (["--semantic-entries", "0"], "1..65536"),
    (["--semantic-entries", "65537"], "1..65536"),
])
def test_flag_checks(args, msg):
    p = subprocess.run([RYOT, "serve", "--port", "0", *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert msg in p.stderr
