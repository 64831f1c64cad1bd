"""POST /v1/embeddings through the official SDK (client.embeddings.create) and
raw HTTP: input shapes, encoding formats, dimensions, usage, errors.  The
server is started with --embed-model (all-MiniLM-L6-v2.f32.gguf from
scripts/fetch-models.sh minilm); without it the tests skip, or fail when
CI=true."""
import base64
import os
import struct
import subprocess

import httpx
import numpy as np
import openai
import pytest

from conftest import RYOT, SESSION_ARGS, start_server

MODELS = os.environ.get("RYOT_MODEL_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "ryot", "models")
EMBED_GGUF = os.path.join(MODELS, "all-MiniLM-L6-v2.f32.gguf")
EMBED_ID = "all-MiniLM-L6-v2.f32"
DIM = 384


@pytest.fixture(scope="module")
def esrv():
    if not os.path.exists(EMBED_GGUF):
        msg = f"{EMBED_GGUF} is missing (scripts/fetch-models.sh minilm)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    s = start_server(*SESSION_ARGS, "--embed-model", EMBED_GGUF)
    yield s
    s.stop_and_check()


@pytest.fixture(scope="module")
def ec(esrv):
    return esrv.client()


def cli_embed(texts):
    """Vectors from `ryot embed` (the same encoder without the server)."""
    p = subprocess.run([RYOT, "embed", "-m", EMBED_GGUF, "-t", "1"], input="\n".join(texts) + "\n",
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return np.array([[float(x) for x in line.split()] for line in p.stdout.splitlines()], dtype=np.float32)


def f32(v):
    return np.array(v, dtype=np.float32)


def cli_ids(text):
    p = subprocess.run([RYOT, "embed", "-m", EMBED_GGUF, "--ids"], input=text + "\n", capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    return [int(x) for x in p.stdout.split()]


def test_string_input_matches_cli(ec):
    r = ec.embeddings.create(model=EMBED_ID, input="The cat sits on the mat.")
    assert r.object == "list" and r.model == EMBED_ID and len(r.data) == 1
    d = r.data[0]
    assert d.object == "embedding" and d.index == 0 and len(d.embedding) == DIM
    assert np.array_equal(f32(d.embedding), cli_embed(["The cat sits on the mat."])[0])  # bit for bit
    assert r.usage.prompt_tokens == r.usage.total_tokens == len(cli_ids("The cat sits on the mat."))


def test_list_of_strings_keeps_order_and_meaning(ec):
    texts = ["A man plays the guitar.", "Stocks fell on Tuesday.", "Someone is playing a guitar."]
    r = ec.embeddings.create(model=EMBED_ID, input=texts)
    assert [d.index for d in r.data] == [0, 1, 2]
    v = np.array([d.embedding for d in r.data])
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[2] > 0.6 > v[0] @ v[1]
    assert np.array_equal(f32(v), cli_embed(texts))
    assert r.usage.prompt_tokens == sum(len(cli_ids(t)) for t in texts)


def test_token_ids_equal_text(ec):
    text = "Tokens in, vectors out."
    ids = cli_ids(text)
    by_text = ec.embeddings.create(model=EMBED_ID, input=text).data[0].embedding
    one = ec.embeddings.create(model=EMBED_ID, input=ids)
    many = ec.embeddings.create(model=EMBED_ID, input=[ids, ids[:3]])
    assert one.data[0].embedding == by_text
    assert many.data[0].embedding == by_text and len(many.data) == 2
    assert one.usage.prompt_tokens == len(ids) and many.usage.prompt_tokens == len(ids) + 3


def test_base64_is_little_endian_float32(esrv, ec):
    text = "base64 please"
    floats = ec.embeddings.create(model=EMBED_ID, input=text, encoding_format="float").data[0].embedding
    r = httpx.post(esrv.url("/v1/embeddings"), json={"model": EMBED_ID, "input": text, "encoding_format": "base64"},
                   timeout=60)
    assert r.status_code == 200
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    assert np.array_equal(f32(struct.unpack(f"<{DIM}f", raw)), f32(floats))  # JSON floats: 9 digits, exact
    # the SDK asks for base64 by default and decodes it itself
    assert np.array_equal(f32(ec.embeddings.create(model=EMBED_ID, input=text).data[0].embedding), f32(floats))


@pytest.mark.parametrize("dims", [1, 8, 100, DIM])
def test_dimensions_truncate_and_renormalize(ec, dims):
    full = np.array(ec.embeddings.create(model=EMBED_ID, input="shorter vectors").data[0].embedding)
    got = np.array(ec.embeddings.create(model=EMBED_ID, input="shorter vectors", dimensions=dims).data[0].embedding)
    assert got.shape == (dims,)
    assert abs(np.linalg.norm(got) - 1) < 1e-5
    assert np.allclose(got, full[:dims] / np.linalg.norm(full[:dims]), atol=1e-6)


def test_models_lists_the_embedding_model(esrv):
    ids = [m["id"] for m in httpx.get(esrv.url("/v1/models"), timeout=30).json()["data"]]
    assert EMBED_ID in ids and len(ids) == 2
    assert httpx.get(esrv.url(f"/v1/models/{EMBED_ID}"), timeout=30).json()["id"] == EMBED_ID


def _err(esrv, body):
    r = httpx.post(esrv.url("/v1/embeddings"), json=body, timeout=60)
    e = r.json()["error"]
    assert e["type"] == "invalid_request_error" and e["message"]
    return r.status_code, e["param"], e


@pytest.mark.parametrize("body,param", [
    ({"input": "x"}, "model"),
    ({"model": EMBED_ID}, "input"),
    ({"model": EMBED_ID, "input": ""}, "input"),
    ({"model": EMBED_ID, "input": []}, "input"),
    ({"model": EMBED_ID, "input": [[]]}, "input"),
    ({"model": EMBED_ID, "input": ["ok", ""]}, "input"),
    ({"model": EMBED_ID, "input": ["ok", [1, 2]]}, "input"),
    ({"model": EMBED_ID, "input": [101, -1, 102]}, "input"),
    ({"model": EMBED_ID, "input": [101, 30522, 102]}, "input"),
    ({"model": EMBED_ID, "input": [101, 1.5, 102]}, "input"),
    ({"model": EMBED_ID, "input": {"text": "x"}}, "input"),
    ({"model": EMBED_ID, "input": 7}, "input"),
    ({"model": EMBED_ID, "input": "word " * 600}, "input"),
    ({"model": EMBED_ID, "input": [1000] * 513}, "input"),
    ({"model": EMBED_ID, "input": "x", "encoding_format": "int8"}, "encoding_format"),
    ({"model": EMBED_ID, "input": "x", "dimensions": 0}, "dimensions"),
    ({"model": EMBED_ID, "input": "x", "dimensions": DIM + 1}, "dimensions"),
    ({"model": EMBED_ID, "input": "x", "dimensions": "8"}, "dimensions"),
])
def test_bad_requests_are_400_naming_the_field(esrv, body, param):
    status, got, _ = _err(esrv, body)
    assert status == 400 and got == param


def test_too_long_names_the_limit(esrv):
    _, _, e = _err(esrv, {"model": EMBED_ID, "input": ["fine", "word " * 600]})
    assert "input[1]" in e["message"] and "512" in e["message"]


def test_longest_input_is_accepted(ec):
    ids = [101] + [1000] * 510 + [102]
    r = ec.embeddings.create(model=EMBED_ID, input=ids)
    assert len(r.data[0].embedding) == DIM and r.usage.prompt_tokens == 512


def test_unknown_model_is_404(esrv, ec):
    status, param, e = _err(esrv, {"model": "nope", "input": "x"})
    assert status == 404 and param == "model" and e["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        ec.embeddings.create(model="SmolLM2-135M-Instruct.Q4_1", input="the chat model does not embed")


def test_not_json_is_400(esrv):
    r = httpx.post(esrv.url("/v1/embeddings"), content=b"{not json", timeout=30,
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_no_embedding_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as ei:
        client.embeddings.create(model=EMBED_ID, input="x")
    assert "embed-model" in str(ei.value)
