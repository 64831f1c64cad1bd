"""Sampling defaults from the model file: a request that leaves temperature,
top_p, top_k or min_p out gets the GGUF's general.sampling.* value where the
file has one (else OpenAI's), and a request's own value always wins."""

import os
import subprocess

import pytest

from conftest import RYOT, model_path, start_server
from gguf_meta import read_metadata, write_with_metadata

MSGS = [{"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Write a short poem about the sea."}]


@pytest.fixture(scope="module")
def greedy_model(tmp_path_factory):
    """The default model, recommending greedy decoding (temp 0, top_k 1)."""
    src = model_path()
    assert not any(k.startswith("general.sampling.") for k in read_metadata(src))
    dst = str(tmp_path_factory.mktemp("gguf") / "greedy.gguf")
    write_with_metadata(src, dst, {"general.sampling.temp": 0.0, "general.sampling.top_k": 1})
    meta = read_metadata(dst)
    assert meta["general.sampling.temp"] == 0.0 and meta["general.sampling.top_k"] == 1
    return dst


def _chat(c, mid, **kw):
    r = c.chat.completions.create(model=mid, messages=MSGS, max_tokens=24, **kw)
    return r.choices[0].message.content


def test_model_recommended_sampling_applies(greedy_model):
    s = start_server("-m", greedy_model, "--ctx", "256", "--threads", "2")
    try:
        c = s.client()
        mid = c.models.list().data[0].id
        greedy = _chat(c, mid, temperature=0)
        # no temperature: the file's 0, so every answer is the greedy one
        assert [_chat(c, mid) for _ in range(3)] == [greedy] * 3
        # the request's own value wins over the file's: temperature 1.5 with
        # top_k and top_p opened up samples, and different seeds differ
        hot = {_chat(c, mid, temperature=1.5, top_p=1.0, seed=k, extra_body={"top_k": 0}) for k in range(4)}
        assert len(hot) > 1, hot
    finally:
        s.stop_and_check()


def test_without_recommendation_openai_defaults(client, model_id):
    """The default model has no general.sampling keys: temperature 1, so
    unseeded answers vary (the control for the test above)."""
    answers = {_chat(client, model_id) for _ in range(4)}
    assert len(answers) > 1, answers


def test_ryot_run_uses_the_recommendation(greedy_model):
    def run(*extra):
        p = subprocess.run([RYOT, "run", "-m", greedy_model, "--chat", "-n", "16", "-t", "2", "-c", "256",
                            "-p", MSGS[1]["content"], *extra], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        return p.stdout
    greedy = run("--temp", "0")
    assert run() == greedy and run() == greedy
    assert len({run("--temp", "1.5", "--top-k", "0", "--seed", str(k)) for k in range(3)}) > 1
