"""Several models in one `ryot serve` (-m repeated, --alias, --models DIR,
--mem-gb): routing by the request's model, 404 for unknown names,
/v1/models status, lazy loading, LRU unload under a tiny budget, two models
progressing at once, streaming on a non-default model, model-labelled
metrics, refused single-model options, odd names.

The extra models are tiny random-weight ones (`ryot gen`) with the default
model's tokenizer and chat template, so chat requests work on them; their
text is noise, which is all routing needs."""

import os
import subprocess
import threading
import time

import httpx
import openai
import pytest

from conftest import (RYOT, REPO, SESSION_ARGS, assert_openai_error, chat_stream_text, metric_sum, model_path,
                      parse_metrics, start_server)

DEFAULT_ID = os.path.basename(model_path())[:-len(".gguf")]
MSG = [{"role": "user", "content": "Say hi."}]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    for name, preset, seed in (("tiny-a", "tiny-llama", 1), ("tiny-b", "tiny-qwen2", 2)):
        subprocess.run([RYOT, "gen", "-o", str(d / f"{name}.gguf"), "--preset", preset, "--seed", str(seed),
                        "--vocab-from", model_path()], check=True, cwd=REPO, capture_output=True)
    return d


def statuses(srv):
    r = httpx.get(srv.url("/v1/models"), timeout=30)
    assert r.status_code == 200
    return {m["id"]: m["status"] for m in r.json()["data"]}


@pytest.fixture(scope="module")
def msrv(tiny_dir):
    s = start_server(*SESSION_ARGS, "-m", model_path(), "-m", str(tiny_dir / "tiny-a.gguf"),
                     "-m", str(tiny_dir / "tiny-b.gguf"), "--alias", "bee")
    yield s
    s.stop_and_check()


def test_lazy_load_and_status(msrv):
    # the default model loads at start, the others on their first request
    assert statuses(msrv) == {DEFAULT_ID: "loaded", "tiny-a": "unloaded", "bee": "unloaded"}
    c = msrv.client()
    r = c.chat.completions.create(model="tiny-a", messages=MSG, max_tokens=4, temperature=0)
    assert r.model == "tiny-a"
    st = statuses(msrv)
    assert st["tiny-a"] == "loaded" and st["bee"] == "unloaded"
    m = c.models.retrieve("tiny-a")
    assert m.id == "tiny-a" and getattr(m, "status", None) == "loaded"
    assert c.models.retrieve("bee").status == "unloaded"


def test_routing_by_name(msrv):
    c = msrv.client()
    # a request without a model goes to the default (first) model, as with one -m
    r = httpx.post(msrv.url("/v1/chat/completions"), json={"messages": MSG, "max_tokens": 4, "temperature": 0},
                   timeout=120)
    assert r.status_code == 200 and r.json()["model"] == DEFAULT_ID
    for name in (DEFAULT_ID, "tiny-a", "bee"):
        r = c.completions.create(model=name, prompt="Hello", max_tokens=3, temperature=0)
        assert r.model == name
    # the models are different: the same greedy prompt gives different tokens
    texts = {n: c.completions.create(model=n, prompt="The capital of France is", max_tokens=6,
                                     temperature=0).choices[0].text for n in (DEFAULT_ID, "tiny-a", "bee")}
    assert len(set(texts.values())) == 3, texts


def test_unknown_model_404(msrv):
    c = msrv.client()
    with pytest.raises(openai.NotFoundError) as ei:
        c.chat.completions.create(model="no-such-model", messages=MSG, max_tokens=2)
    assert ei.value.status_code == 404
    r = httpx.post(msrv.url("/v1/chat/completions"), json={"model": "gpt-4", "messages": MSG}, timeout=30)
    e = assert_openai_error(r, 404, param="model", code="model_not_found")
    assert e["type"] == "invalid_request_error"
    assert "gpt-4" in e["message"]
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("no-such-model")


@pytest.mark.parametrize("name", ["", " ", "x" * 100000, "tiny-a\n", "tiny-a\u0000", "\u00e9\u4e2d\U0001f600",
                                  "../../etc/passwd", "tiny-a%00", "\\\"{}", "\u0001\u007f"])
def test_odd_model_names(msrv, name):
    r = httpx.post(msrv.url("/v1/completions"), json={"model": name, "prompt": "hi", "max_tokens": 1}, timeout=30)
    assert 400 <= r.status_code < 500, r.text[:300]
    assert_openai_error(r, r.status_code)
    assert len(r.content) < 4096  # the name is cut short in the message
    # raw bytes that are not UTF-8
    r = httpx.post(msrv.url("/v1/completions"), content=b'{"model":"\xff\xfe","prompt":"hi"}',
                   headers={"Content-Type": "application/json"}, timeout=30)
    assert 400 <= r.status_code < 500
    r = httpx.get(msrv.url("/v1/models/%FF%00x"), timeout=30)
    assert 400 <= r.status_code < 500
    assert msrv.proc.poll() is None


def test_wrong_model_type(msrv):
    r = httpx.post(msrv.url("/v1/completions"), json={"model": ["tiny-a"], "prompt": "hi"}, timeout=30)
    assert_openai_error(r, 400, param="model")


def test_streaming_non_default(msrv):
    c = msrv.client()
    stream = c.chat.completions.create(model="bee", messages=MSG, max_tokens=8, temperature=0, stream=True,
                                       stream_options={"include_usage": True})
    texts, finish, chunks = chat_stream_text(stream)
    assert chunks and all(ch.model == "bee" for ch in chunks)
    assert finish[0] in ("stop", "length")
    assert chunks[-1].usage.completion_tokens >= 1
    assert statuses(msrv)["bee"] == "loaded"


def test_small_endpoints_pick_model(msrv):
    a = httpx.post(msrv.url("/tokenize"), json={"content": "hello world", "model": "tiny-a"}, timeout=30)
    d = httpx.post(msrv.url("/tokenize"), json={"content": "hello world"}, timeout=30)
    assert a.status_code == 200 and d.status_code == 200
    assert a.json()["tokens"] == d.json()["tokens"]  # same vocabulary (--vocab-from)
    r = httpx.post(msrv.url("/tokenize"), json={"content": "x", "model": "nope"}, timeout=30)
    assert_openai_error(r, 404, param="model", code="model_not_found")


def test_metrics_labels(msrv):
    c = msrv.client()
    c.completions.create(model="tiny-a", prompt="hi", max_tokens=2)
    m = msrv.metrics()
    for name in (DEFAULT_ID, "tiny-a"):
        assert (f"ryot_requests_running", f'{{model="{name}",tier="normal"}}') in m
        assert m[("ryot_model_loaded", f'{{model="{name}"}}')] == 1
        assert m[("ryot_model_resident_bytes", f'{{model="{name}"}}')] > 0
    assert m[("ryot_generation_tokens_total", '{model="tiny-a"}')] >= 2
    assert ("ryot_model_loads_total", '{model="bee"}') in m
    assert metric_sum(m, "ryot_models_budget_bytes") == 0
    # every sample of a family together (the text format's rule)
    text = httpx.get(msrv.url("/metrics"), timeout=30).text
    seen, last = set(), None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        fam = line.split("{")[0].split(" ")[0]
        for suf in ("_bucket", "_sum", "_count"):
            if fam.endswith(suf) and fam[:-len(suf)] + "_bucket" in text:
                fam = fam[:-len(suf)]
        if fam != last:
            assert fam not in seen, f"family {fam} split"
            seen.add(fam)
            last = fam


def test_concurrent_models_both_progress(msrv):
    """A flood on one model does not stop the other: both finish, and the
    second model's requests end before the flood does."""
    c = msrv.client()
    ends = {}
    errors = []

    def run(model, key, n_tokens):
        try:
            c.completions.create(model=model, prompt="Once upon a time", max_tokens=n_tokens, temperature=0.7,
                                 extra_body={"ignore_eos": True})
            ends[key] = time.monotonic()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t0 = time.monotonic()
    flood = [threading.Thread(target=run, args=(DEFAULT_ID, f"d{i}", 120)) for i in range(6)]
    for t in flood:
        t.start()
    time.sleep(0.3)
    other = [threading.Thread(target=run, args=("tiny-a", f"a{i}", 20)) for i in range(3)]
    for t in other:
        t.start()
    for t in flood + other:
        t.join(timeout=300)
    assert not errors, errors
    assert len(ends) == 9
    last_a = max(v for k, v in ends.items() if k.startswith("a"))
    last_d = max(v for k, v in ends.items() if k.startswith("d"))
    assert last_a < last_d, (last_a - t0, last_d - t0)


def test_single_model_options_refused(tiny_dir):
    for extra in (["--draft-model", str(tiny_dir / "tiny-a.gguf")], ["--store", str(tiny_dir / "st"),
                                                                       "--store-plaintext"]):
        p = subprocess.run([RYOT, "serve", "--port", "0", "-m", model_path(), "-m", str(tiny_dir / "tiny-a.gguf"),
                            *extra], capture_output=True, text=True, timeout=60)
        assert p.returncode == 2
        assert "one model" in p.stderr
    # two models of one name
    p = subprocess.run([RYOT, "serve", "--port", "0", "-m", str(tiny_dir / "tiny-a.gguf"),
                        "-m", str(tiny_dir / "tiny-a.gguf")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "tiny-a" in p.stderr
    p = subprocess.run([RYOT, "serve", "--port", "0", "--models", str(tiny_dir / "nope")], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2


def test_models_dir_and_lru_unload(tiny_dir):
    """--models DIR serves each file by its stem; under a budget smaller than
    two models, loading one unloads the idle least recently used one."""
    s = start_server("--threads", "2", "--ctx", "256", "--kv-blocks", "8", "--models", str(tiny_dir),
                     "--mem-gb", "0.001")
    try:
        st = statuses(s)
        assert st == {"tiny-a": "loaded", "tiny-b": "unloaded"}, st  # sorted by name: tiny-a is the default
        c = s.client()
        c.completions.create(model="tiny-b", prompt="hi", max_tokens=2)
        assert statuses(s) == {"tiny-a": "unloaded", "tiny-b": "loaded"}
        r = c.completions.create(model="tiny-a", prompt="hi", max_tokens=2)
        assert r.model == "tiny-a"
        assert statuses(s) == {"tiny-a": "loaded", "tiny-b": "unloaded"}
        m = s.metrics()
        assert m[("ryot_model_unloads_total", '{model="tiny-a"}')] == 1
        assert m[("ryot_model_loads_total", '{model="tiny-a"}')] == 2
        assert m[("ryot_model_unloads_total", '{model="tiny-b"}')] == 1
        # streaming keeps its model loaded until the stream ends
        with c.completions.create(model="tiny-b", prompt="hi", max_tokens=4, stream=True) as stream:
            assert statuses(s)["tiny-b"] in ("loaded",)
            text = "".join(ch.choices[0].text for ch in stream if ch.choices)
        assert isinstance(text, str)
    finally:
        log = s.stop_and_check()
    assert "unloaded model 'tiny-a'" in log


def test_failed_load_is_an_error_not_a_crash(tiny_dir, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    s = start_server("--threads", "2", "--ctx", "256", "--kv-blocks", "8", "-m", str(tiny_dir / "tiny-a.gguf"),
                     "-m", str(bad))
    try:
        for _ in range(2):
            r = httpx.post(s.url("/v1/completions"), json={"model": "broken", "prompt": "hi", "max_tokens": 1},
                           timeout=30)
            e = assert_openai_error(r, 500, param="model", code="model_load_failed")
            assert "broken" in e["message"]
        assert statuses(s)["broken"] == "failed"
        r = httpx.post(s.url("/v1/completions"), json={"model": "tiny-a", "prompt": "hi", "max_tokens": 1},
                       timeout=30)
        assert r.status_code == 200
    finally:
        s.stop_and_check()
