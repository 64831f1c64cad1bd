"""The persistent context store (`ryot serve --store DIR`), black box.

A restarted server answers a stored prefix with the blocks from the store
(usage.prompt_tokens_details.cached_tokens > 0) and the same greedy text; a
tampered record or a wrong key is a counted miss and the answer is still
right; sessions save, list and restore across a restart; kill -9 during a
write storm leaves a store that `ryot store verify` finds clean; a missing
key or a read-only directory stops the server at startup with a clear error.
"""

import os
import random
import signal
import subprocess
import tempfile
import time

import json
import threading

import httpx
import pytest

from conftest import RYOT, REPO, Server, metric_sum, model_path

ARGS = ["--ctx", "2048", "--threads", "2", "--max-running", "8", "--quiet"]
# lossless records (F16 as computed): a stored prefix then gives bit-identical
# greedy output; the default 6-bit K / 4-bit V codec changes logits slightly (its cost is
# measured as perplexity in docs/PERFORMANCE.md), so tests comparing text use this
EXACT = ["--store-bits", "16,16"]
BS = 64  # the default --kv-block-size

# about 700 tokens: ten full blocks for SmolLM2's tokenizer
SYSTEM = " ".join(f"Rule {i}: the archive keeps record {i * 7} under shelf {i % 13}." for i in range(60))


def store_cmd(*args, check=None):
    r = subprocess.run([RYOT, "store", *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    if check is not None:
        assert r.returncode == check, f"ryot store {args}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random-weight 2-layer llama with SmolLM2's tokenizer and template:
    prefill is quick, so restarts and kill loops stay short."""
    out = str(tmp_path_factory.mktemp("store-model") / "tiny.gguf")
    subprocess.run([RYOT, "gen", "-o", out, "--preset", "tiny-llama", "--ctx", "2048", "--vocab-from",
                    model_path()], cwd=REPO,
                   check=True, capture_output=True, timeout=120)
    return ["-m", out]


@pytest.fixture
def keyed_store():
    """(store dir, key file, second key file) in a fresh temporary directory."""
    with tempfile.TemporaryDirectory(prefix="ryot-store-") as d:
        k1, k2 = os.path.join(d, "k1"), os.path.join(d, "k2")
        store_cmd("keygen", k1, check=0)
        store_cmd("keygen", k2, check=0)
        assert os.path.getsize(k1) == 32 and os.stat(k1).st_mode & 0o077 == 0
        yield os.path.join(d, "kv"), k1, k2


def ask(srv, prompt, max_tokens=8):
    r = httpx.post(srv.url("/v1/completions"), timeout=300,
                   json={"model": srv_model(srv), "prompt": prompt, "max_tokens": max_tokens, "temperature": 0})
    assert r.status_code == 200, r.text
    b = r.json()
    return b["choices"][0]["text"], b["usage"]["prompt_tokens_details"]["cached_tokens"], b["usage"]["prompt_tokens"]


def srv_model(srv):
    if not hasattr(srv, "_model"):
        srv._model = httpx.get(srv.url("/v1/models"), timeout=30).json()["data"][0]["id"]
    return srv._model


def tamper_all_records(store_dir):
    """Flips one ciphertext byte of every sealed record in the LMDB file.

    Records are stored whole (LMDB overflow pages hold a value contiguously),
    each starting with the seal magic "RYS1" and the mode byte 1; the byte
    flipped lies 64 bytes into the ciphertext, well inside the record."""
    path = os.path.join(store_dir, "data.mdb")
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        at, n = 0, 0
        while True:
            at = data.find(b"RYS1\x01", at)
            if at < 0:
                break
            data[at + 16 + 24 + 64] ^= 0x01
            n += 1
            at += 4
        f.seek(0)
        f.write(data)
    return n


def test_restart_keeps_warm_prefix(keyed_store):
    """The default model: a restarted server loads the stored prefix."""
    d, k1, _ = keyed_store
    prompt = SYSTEM[:1400] + "\nQuestion: which shelf holds record 21?\nAnswer:"
    s = Server("--store", d, "--store-key-file", k1, *EXACT, *ARGS)
    try:
        text0, cached0, n_prompt = ask(s, prompt)
        assert cached0 == 0 and n_prompt > 4 * BS
        assert metric_sum(s.metrics(), "ryot_store_hits_total") == 0
    finally:
        s.stop_and_check()  # SIGTERM: the writer commits what is queued
    st = store_cmd("verify", d, "--store-key-file", k1, check=0)
    assert "failed 0" in st.stdout and not st.stdout.startswith("records 0 ")
    # encrypted: no plaintext KV magic in the file
    with open(os.path.join(d, "data.mdb"), "rb") as f:
        raw = f.read()
    assert b"RKV1" not in raw and b"RKV2" not in raw and b"RYS1\x01" in raw

    # a restart: the prefix comes from the store, the answer is the same
    s = Server("--store", d, "--store-key-file", k1, *EXACT, *ARGS)
    try:
        text1, cached1, _ = ask(s, prompt)
        assert cached1 == (n_prompt - 1) // BS * BS
        assert text1 == text0
        m = s.metrics()
        assert metric_sum(m, "ryot_store_hits_total") == cached1 // BS
        assert metric_sum(m, "ryot_store_prompt_tokens_total") == cached1
        assert metric_sum(m, "ryot_store_auth_failures_total") == 0
    finally:
        s.stop_and_check()


def test_wrong_key_and_tampering_are_counted_misses(keyed_store, tiny):
    d, k1, k2 = keyed_store
    prompt = SYSTEM + "\nQuestion: which shelf holds record 21?\nAnswer:"
    s = Server("--store", d, "--store-key-file", k1, *tiny, *ARGS)
    try:
        text0, _, _ = ask(s, prompt)
    finally:
        s.stop_and_check()
    s = Server("--store", d, "--store-key-file", k1, *tiny, *ARGS)
    try:
        _, cached, _ = ask(s, prompt)
        assert cached > 0  # the store serves it with the right key
    finally:
        s.stop_and_check()

    # the wrong key: counted failures, nothing loaded, the same answer
    s = Server("--store", d, "--store-key-file", k2, *tiny, *ARGS)
    try:
        text2, cached2, _ = ask(s, prompt)
        assert cached2 == 0 and text2 == text0
        m = s.metrics()
        assert metric_sum(m, "ryot_store_auth_failures_total") >= 1
        assert metric_sum(m, "ryot_store_hits_total") == 0
    finally:
        s.stop_and_check()
    assert store_cmd("verify", d, "--store-key-file", k2).returncode == 1

    # tampered records: detected, never loaded, counted; verify fails, gc cleans
    assert tamper_all_records(d) > 0
    s = Server("--store", d, "--store-key-file", k1, *tiny, *ARGS)
    try:
        text3, cached3, _ = ask(s, prompt)
        assert cached3 == 0 and text3 == text0
        m = s.metrics()
        assert metric_sum(m, "ryot_store_auth_failures_total") >= 1
        assert metric_sum(m, "ryot_store_hits_total") == 0
    finally:
        s.stop_and_check()
    r = store_cmd("verify", d, "--store-key-file", k1)
    assert r.returncode == 1 and "fail" in r.stderr
    store_cmd("gc", d, "--store-key-file", k1, check=0)
    assert "failed 0" in store_cmd("verify", d, "--store-key-file", k1, check=0).stdout


def test_rekey_keeps_records(keyed_store, tiny):
    d, k1, k2 = keyed_store
    prompt = SYSTEM + "\nQuestion: what is rule 3?\nAnswer:"
    s = Server("--store", d, "--store-key-file", k1, *tiny, *ARGS)
    try:
        text0, _, _ = ask(s, prompt)
    finally:
        s.stop_and_check()
    r = store_cmd("rekey", d, k1, k2, check=0)
    assert "resealed" in r.stdout and not r.stdout.startswith("resealed 0 ")
    assert store_cmd("rekey", d, k1, k2, check=0).stdout.startswith("resealed 0 ")  # nothing left: idempotent
    assert store_cmd("verify", d, "--store-key-file", k1).returncode == 1
    store_cmd("verify", d, "--store-key-file", k2, check=0)
    s = Server("--store", d, "--store-key-file", k2, *tiny, *ARGS)
    try:
        text1, cached1, _ = ask(s, prompt)
        assert cached1 > 0 and text1  # 8-bit records: close, not bit-identical
    finally:
        s.stop_and_check()


def test_sessions_save_list_restore(keyed_store, tiny):
    d, k1, _ = keyed_store
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Which shelf holds record 70?"}]
    s = Server("--store", d, "--store-key-file", k1, *tiny, *EXACT, *ARGS)
    try:
        r = httpx.post(s.url("/v1/sessions/conv-42/save"), json={"messages": msgs}, timeout=300)
        assert r.status_code == 200, r.text
        saved = r.json()
        assert saved["id"] == "conv-42" and saved["object"] == "session"
        assert saved["n_tokens"] > 8 * BS and saved["n_blocks"] == saved["n_tokens"] // BS and saved["bytes"] > 0
        lst = httpx.get(s.url("/v1/sessions"), timeout=30).json()
        assert lst["object"] == "list"
        assert [(x["id"], x["n_tokens"]) for x in lst["data"]] == [("conv-42", saved["n_tokens"])]
        # bad ids and unknown sessions: OpenAI-shaped errors
        r = httpx.post(s.url("/v1/sessions/bad%20id/save"), json={"messages": msgs}, timeout=30)
        assert r.status_code == 400 and set(r.json()["error"]) >= {"message", "type", "param", "code"}
        r = httpx.post(s.url("/v1/sessions/nope/restore"), timeout=30)
        assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found"
        r = httpx.post(s.url("/v1/sessions/x/save"), content=b"{not json", timeout=30)
        assert r.status_code == 400
        ref = s.client().chat.completions.create(model=srv_model(s), messages=msgs, max_tokens=8, temperature=0)
    finally:
        s.stop_and_check()

    s = Server("--store", d, "--store-key-file", k1, *tiny, *EXACT, *ARGS)
    try:
        lst = httpx.get(s.url("/v1/sessions"), timeout=30).json()
        assert [x["id"] for x in lst["data"]] == ["conv-42"]
        r = httpx.post(s.url("/v1/sessions/conv-42/restore"), timeout=300)
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["n_tokens"] == saved["n_tokens"]
        assert got["cached_tokens"] >= (saved["n_tokens"] - 1) // BS * BS
        # the conversation continues warm from RAM, with the same answer
        c = s.client().chat.completions.create(model=srv_model(s), messages=msgs, max_tokens=8, temperature=0)
        assert c.usage.prompt_tokens_details.cached_tokens >= BS
        assert c.choices[0].message.content == ref.choices[0].message.content
    finally:
        s.stop_and_check()


def test_sessions_without_store(server):
    r = httpx.get(server.url("/v1/sessions"), timeout=30)
    assert r.status_code == 404 and "--store" in r.json()["error"]["message"]


def test_kill9_during_write_storm_leaves_no_corrupt_record(keyed_store, tiny):
    d, k1, _ = keyed_store
    rng = random.Random(16)
    committed = 0
    for round_ in range(4):
        s = Server("--store", d, "--store-key-file", k1, *tiny, *ARGS)
        stop = threading.Event()

        def storm(w):
            # distinct prompts, one after another: every answer queues new blocks
            i = 0
            with httpx.Client(timeout=60) as c:
                while not stop.is_set():
                    p = f"Round {round_} writer {w} request {i}. " + SYSTEM[: 800 + 97 * (i % 9)]
                    try:
                        c.post(s.url("/v1/completions"),
                               json={"model": srv_model(s), "prompt": p, "max_tokens": 2, "temperature": 0})
                    except httpx.HTTPError:
                        return  # the server is gone
                    i += 1

        srv_model(s)
        ws = [threading.Thread(target=storm, args=(w,)) for w in range(3)]
        for t in ws:
            t.start()
        # kill at a random point once writes are flowing
        end = time.monotonic() + 60
        while metric_sum(s.metrics(), "ryot_store_writes_total") == 0 and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.8))
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
        s.stopped = True
        stop.set()
        for t in ws:
            t.join()
        os.unlink(s.log.name)
        r = store_cmd("verify", d, "--store-key-file", k1)
        assert r.returncode == 0, f"round {round_}: {r.stdout}\n{r.stderr}"
        assert "failed 0" in r.stdout and "lru entries missing 0" in r.stdout
        n = int(r.stdout.split()[1])
        assert n >= committed  # nothing committed earlier was lost
        committed = n
    assert committed > 0


def test_startup_errors(tmp_path):
    # no key and no --store-plaintext: refuses to start, says why
    r = subprocess.run([RYOT, "serve", "--port", "0", "--store", str(tmp_path / "kv"), *ARGS], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "--store-plaintext" in r.stderr
    # a key file of the wrong size
    bad = tmp_path / "short.key"
    bad.write_bytes(b"x" * 16)
    r = subprocess.run([RYOT, "serve", "--port", "0", "--store", str(tmp_path / "kv"), "--store-key-file", str(bad),
                        *ARGS], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "32 bytes" in r.stderr
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            r = subprocess.run([RYOT, "serve", "--port", "0", "--store", str(ro), "--store-plaintext", *ARGS],
                               cwd=REPO, capture_output=True, text=True, timeout=120)
            assert r.returncode == 1 and "read-only" in r.stderr
        finally:
            ro.chmod(0o700)
