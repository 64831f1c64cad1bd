"""Speculative decoding by prompt lookup (--spec-draft N): greedy answers
are the same text as the default server's (spec draft 0), streamed or not,
for copying and non-copying prompts; /metrics counts drafted and accepted
tokens; logprobs requests are not drafted."""

import pytest

from conftest import metric_sum, start_server

COPY = ("Repeat the following text exactly: The committee met on Tuesday to review the budget. "
        "The members agreed to repair the roof of the town hall and to hire two more teachers.")
PROMPTS = [COPY, "Name three colors.", "Write a haiku about the sea."]


@pytest.fixture(scope="module")
def spec():
    s = start_server("--ctx", "1024", "--threads", "2", "--spec-draft", "4")
    yield s
    s.stop_and_check()


def answer(client, model, text, stream=False, **kw):
    msgs = [{"role": "user", "content": text}]
    if not stream:
        r = client.chat.completions.create(model=model, messages=msgs, max_tokens=48, temperature=0, **kw)
        return r.choices[0].message.content, r.usage.completion_tokens
    out = []
    for ev in client.chat.completions.create(model=model, messages=msgs, max_tokens=48, temperature=0, stream=True, **kw):
        if ev.choices and ev.choices[0].delta.content:
            out.append(ev.choices[0].delta.content)
    return "".join(out), None


def spec_counters(s):
    m = s.metrics()
    return metric_sum(m, "ryot_spec_drafted_tokens_total"), metric_sum(m, "ryot_spec_accepted_tokens_total")


def test_greedy_same_text(spec, client, model_id):
    sc = spec.client()
    sid = sc.models.list().data[0].id
    d0, a0 = spec_counters(spec)
    for p in PROMPTS:
        want = answer(client, model_id, p)
        assert answer(sc, sid, p) == want
        assert answer(sc, sid, p, stream=True)[0] == want[0]
    d1, a1 = spec_counters(spec)
    assert "town hall" in answer(client, model_id, COPY)[0]  # the model copies
    assert a1 > a0
    assert d1 - d0 >= a1 - a0


def test_logprobs_not_drafted(spec):
    sc = spec.client()
    sid = sc.models.list().data[0].id
    d0, _ = spec_counters(spec)
    r = sc.chat.completions.create(model=sid, messages=[{"role": "user", "content": COPY}], max_tokens=24,
                                   temperature=0, logprobs=True)
    assert len(r.choices[0].logprobs.content) == r.usage.completion_tokens
    assert spec_counters(spec)[0] == d0
