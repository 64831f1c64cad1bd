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


PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 24}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
WEATHER_TOOL = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather forecast for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                   "required": ["city"], "additionalProperties": False}}}]


def test_grammar_not_drafted(spec, client, model_id):
    """Grammar-constrained requests (response_format, forced tool calls) are
    not drafted, and answer what the default server answers."""
    sc = spec.client()
    sid = sc.models.list().data[0].id
    msgs = [{"role": "user", "content": "Repeat as JSON: name Ada Lovelace, age 36. Name Ada Lovelace, age 36."}]
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}}
    d0, _ = spec_counters(spec)
    got = sc.chat.completions.create(model=sid, messages=msgs, max_tokens=40, temperature=0, response_format=fmt)
    want = client.chat.completions.create(model=model_id, messages=msgs, max_tokens=40, temperature=0,
                                          response_format=fmt)
    assert got.choices[0].message.content == want.choices[0].message.content
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    got = sc.chat.completions.create(model=sid, messages=ask, max_tokens=40, temperature=0, tools=WEATHER_TOOL,
                                     tool_choice="required")
    want = client.chat.completions.create(model=model_id, messages=ask, max_tokens=40, temperature=0,
                                          tools=WEATHER_TOOL, tool_choice="required")
    assert got.choices[0].message.tool_calls[0].function.arguments == \
        want.choices[0].message.tool_calls[0].function.arguments
    assert spec_counters(spec)[0] == d0


def test_tools_auto_same_answer(spec, client, model_id):
    """tool_choice auto decodes freely (drafted like any text): the same
    content and calls as the default server."""
    sc = spec.client()
    sid = sc.models.list().data[0].id
    ask = [{"role": "user", "content": "What is the weather in Paris? Paris, the city of Paris."}]
    got = sc.chat.completions.create(model=sid, messages=ask, max_tokens=60, temperature=0, tools=WEATHER_TOOL)
    want = client.chat.completions.create(model=model_id, messages=ask, max_tokens=60, temperature=0,
                                          tools=WEATHER_TOOL)
    g, w = got.choices[0], want.choices[0]
    assert g.message.content == w.message.content
    assert g.finish_reason == w.finish_reason
    assert [c.function.model_dump() for c in g.message.tool_calls or []] == \
        [c.function.model_dump() for c in w.message.tool_calls or []]
