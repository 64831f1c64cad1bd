"""The small endpoints: /v1/models, /health, /tokenize, /detokenize,
/metrics."""

import os
import re
import subprocess

import httpx
import openai
import pytest

from conftest import REPO, RYOT, model_path, parse_metrics

TEXTS = ["Hello world", "Grüße aus Köln! 日本語のテキスト 🙂🚀", "  spaces\tand\nnewlines\n\n",
         "<|im_start|>user\nhi<|im_end|>", "x", "1234567890 + 0.5 = ?"]


def test_models_retrieve(client):
    mid = client.models.list().data[0].id
    m = client.models.retrieve(mid)
    assert m.id == mid and m.object == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_models(client, server):
    models = client.models.list()
    ids = [x.id for x in models.data]
    # the model id is the file name without .gguf (no --alias given)
    assert ids == [os.path.basename(model_path())[:-len(".gguf")]], ids
    assert models.data[0].object == "model"
    assert models.data[0].owned_by
    raw = httpx.get(server.url("/v1/models"), timeout=30).json()
    assert raw["object"] == "list"
    assert isinstance(raw["data"][0]["created"], int)


def test_health(server):
    r = httpx.get(server.url("/health"), timeout=30)
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert httpx.head(server.url("/health"), timeout=30).status_code == 200


def test_tokenize_detokenize_round_trip(http):
    for text in TEXTS:
        r = http.post("/tokenize", json={"content": text})
        assert r.status_code == 200, r.text
        toks = r.json()["tokens"]
        assert toks and all(isinstance(t, int) and t >= 0 for t in toks)
        r = http.post("/detokenize", json={"tokens": toks})
        assert r.status_code == 200, r.text
        assert r.json()["content"] == text


def test_tokenize_pieces(http):
    for text in TEXTS:
        plain = http.post("/tokenize", json={"content": text}).json()["tokens"]
        r = http.post("/tokenize", json={"content": text, "with_pieces": True})
        assert r.status_code == 200
        items = r.json()["tokens"]
        assert [x["id"] for x in items] == plain
        raw = b"".join(x["piece"].encode("utf-8") if isinstance(x["piece"], str) else bytes(x["piece"])
                       for x in items)
        assert raw == text.encode("utf-8")


def test_tokenize_special_flags(http):
    text = "<|im_start|>user"
    parsed = http.post("/tokenize", json={"content": text}).json()["tokens"]
    literal = http.post("/tokenize", json={"content": text, "parse_special": False}).json()["tokens"]
    assert len(parsed) < len(literal)  # <|im_start|> is one special token
    assert http.post("/detokenize", json={"tokens": literal}).json()["content"] == text
    assert http.post("/tokenize", json={"content": ""}).json()["tokens"] == []
    assert http.post("/detokenize", json={"tokens": []}).json()["content"] == ""


def test_tokenize_matches_cli(http):
    """/tokenize gives the ids `ryot tokenize` prints."""
    text = "The quick brown fox jumps over the lazy dog. Ünïcödé!"
    out = subprocess.run([RYOT, "tokenize"], input=text.encode(), cwd=REPO, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cli = [int(x) for x in out.stdout.split()]
    assert http.post("/tokenize", json={"content": text}).json()["tokens"] == cli


def test_metrics_prometheus_text(server, http):
    # some traffic first, so that histograms have observations
    http.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 2})
    r = httpx.get(server.url("/metrics"), timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert text.endswith("\n")
    samples = parse_metrics(text)  # asserts every sample line's syntax
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            assert len(parts) == 4 and parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert parts[2] not in types, f"TYPE twice for {parts[2]}"
            types[parts[2]] = parts[3]
        elif line.startswith("# HELP "):
            assert re.match(r"^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* \S", line), line
        elif line.startswith("#"):
            raise AssertionError(f"unexpected comment line {line!r}")
    for name, _ in samples:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or (base in types and types[base] == "histogram"), f"{name} has no TYPE"
    for name, kind in types.items():
        if kind == "counter":
            assert name.endswith("_total"), name
        if kind == "histogram":
            buckets = [(lab, v) for (n, lab), v in samples.items() if n == name + "_bucket"]
            assert any('le="+Inf"' in lab for lab, _ in buckets), name
            inf = [v for lab, v in buckets if 'le="+Inf"' in lab][0]
            assert inf == samples[(name + "_count", "")]
            ordered = sorted(buckets, key=lambda b: float(re.search(r'le="([^"]+)"', b[0]).group(1)
                                                         .replace("+Inf", "inf")))
            vals = [v for _, v in ordered]
            assert vals == sorted(vals), f"{name} buckets are not cumulative"
    for needed in ("ryot_requests_running", "ryot_requests_waiting", "ryot_kv_blocks_used",
                   "ryot_prefix_cache_hits_total", "ryot_time_to_first_token_seconds"):
        assert needed in types, needed
    assert samples[("ryot_generation_tokens_total", "")] >= 2
    assert all(v >= 0 for v in samples.values())
