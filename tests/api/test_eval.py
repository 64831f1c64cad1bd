"""The evaluation-harness API: token-id prompts, echo with prompt logprobs,
max_tokens 0, as lm-evaluation-harness's loglikelihood requests send them.

A small multiple-choice set is scored two ways: through /v1/completions
(the harness's request: context + continuation token ids, echo, logprobs,
max_tokens 0; the continuation's log-likelihood is the sum of its tokens'
logprobs) and through `ryot perplexity --score-file` (the engine directly,
no server).  Both must give the same log-likelihoods (LL_TOL nats), the
same greedy flags and so the same answer to every question.
"""
import json
import math
import subprocess

import pytest

from conftest import RYOT, model_path

# the server batches these requests with each other; the engine's rows are
# batch-invariant, so only the JSON's float printing separates the two
LL_TOL = 1e-3

QUESTIONS = [
    ("The capital of France is", [" Paris", " Berlin", " Madrid", " Rome"]),
    ("Water freezes at a temperature of zero degrees", [" Celsius", " Fahrenheit", " Kelvin"]),
    ("The largest planet in the solar system is", [" Jupiter", " Mars", " Venus"]),
    ("Question: What color is the sky on a clear day?\nAnswer:", [" blue", " green", " red", " yellow"]),
    ("One, two, three, four,", [" five", " seven", " ten"]),
]


def tokenize(http, text):
    r = http.post("/tokenize", json={"content": text, "add_special": True})
    assert r.status_code == 200, r.text
    return r.json()["tokens"]


def harness_loglikelihood(http, model_id, ctx_ids, cont_ids):
    """The continuation's log-likelihood and greediness as the harness reads
    them from an echo + logprobs + max_tokens 0 answer."""
    r = http.post("/v1/completions", json={"model": model_id, "prompt": ctx_ids + cont_ids, "echo": True,
                                           "logprobs": 1, "max_tokens": 0, "temperature": 0})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    lp = choice["logprobs"]
    n = len(ctx_ids) + len(cont_ids)
    assert len(lp["token_logprobs"]) == n  # the prompt's tokens, nothing generated
    assert lp["token_logprobs"][0] is None
    assert all(isinstance(x, float) for x in lp["token_logprobs"][1:])
    assert choice["finish_reason"] == "length"
    assert r.json()["usage"]["completion_tokens"] == 0
    tail = range(len(ctx_ids), n)
    ll = sum(lp["token_logprobs"][i] for i in tail)
    # greedy: each continuation token is the most likely one (top_logprobs' best)
    greedy = all(lp["token_logprobs"][i] >= max(lp["top_logprobs"][i].values()) - 1e-6 for i in tail)
    return ll, greedy


def test_prompt_logprobs_first_null_and_text_echoed(http, model_id):
    ids = tokenize(http, "The capital of France is Paris")
    r = http.post("/v1/completions", json={"model": model_id, "prompt": ids, "echo": True, "logprobs": 0,
                                           "max_tokens": 0})
    assert r.status_code == 200, r.text
    c = r.json()["choices"][0]
    assert c["text"] == "The capital of France is Paris"
    assert c["logprobs"]["token_logprobs"][0] is None
    assert len(c["logprobs"]["tokens"]) == len(ids)
    assert all(x <= 0.0 for x in c["logprobs"]["token_logprobs"][1:])


def test_token_id_prompt_equals_text_prompt(http, model_id):
    text = "Once upon a time"
    body = {"model": model_id, "max_tokens": 8, "temperature": 0}
    a = http.post("/v1/completions", json={**body, "prompt": text}).json()
    b = http.post("/v1/completions", json={**body, "prompt": tokenize(http, text)}).json()
    assert a["choices"][0]["text"] == b["choices"][0]["text"]
    assert a["usage"]["prompt_tokens"] == b["usage"]["prompt_tokens"]


def test_list_of_token_lists(http, model_id):
    p = [tokenize(http, "Hello"), tokenize(http, "The sky is")]
    r = http.post("/v1/completions", json={"model": model_id, "prompt": p, "max_tokens": 3, "temperature": 0})
    assert r.status_code == 200, r.text
    assert [c["index"] for c in r.json()["choices"]] == [0, 1]


@pytest.mark.parametrize("prompt", [[-1], [10 ** 9], [1, "a"], [[]], [1.5]])
def test_bad_token_ids_are_400(http, model_id, prompt):
    r = http.post("/v1/completions", json={"model": model_id, "prompt": prompt, "max_tokens": 1})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"].startswith("prompt")


def test_multiple_choice_matches_ryot_perplexity(http, model_id, tmp_path):
    pairs = [(ctx, cont) for ctx, conts in QUESTIONS for cont in conts]
    score_file = tmp_path / "pairs.jsonl"
    score_file.write_text("".join(json.dumps({"context": c, "continuation": k}) + "\n" for c, k in pairs))
    out = subprocess.run([RYOT, "perplexity", "-m", model_path(), "--score-file", str(score_file), "-t", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    engine = {}
    for line in out.stdout.splitlines():
        idx, ll, ntok, greedy = line.split("\t")
        engine[int(idx)] = (float(ll), int(ntok), greedy == "1")
    assert len(engine) == len(pairs)

    at = 0
    for ctx, conts in QUESTIONS:
        ctx_ids = tokenize(http, ctx)
        server_ll, engine_ll = [], []
        for cont in conts:
            whole = tokenize(http, ctx + cont)
            assert whole[:len(ctx_ids)] == ctx_ids  # the harness's split holds for these texts
            cont_ids = whole[len(ctx_ids):]
            ll, greedy = harness_loglikelihood(http, model_id, ctx_ids, cont_ids)
            e_ll, e_n, e_greedy = engine[at]
            assert e_n == len(cont_ids)
            assert math.isfinite(ll) and ll < 0
            assert abs(ll - e_ll) <= LL_TOL, (ctx, cont, ll, e_ll)
            assert greedy == e_greedy, (ctx, cont)
            server_ll.append(ll)
            engine_ll.append(e_ll)
            at += 1
        assert server_ll.index(max(server_ll)) == engine_ll.index(max(engine_ll)), ctx
