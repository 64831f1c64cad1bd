"""Chat and text completions through the official openai SDK: plain and
streamed, usage, finish reasons, stop strings, seeds, n > 1, logprobs."""

import math
import os
import subprocess

import pytest

from conftest import RYOT, REPO, chat_stream_text

QUESTION = [{"role": "user", "content": "What is 2+2?"}]  # greedy: a short answer, then EOS
STORY = [{"role": "user", "content": "Write a long story about a dragon who learns to cook."}]


def test_chat_basic(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=QUESTION, max_tokens=24, temperature=0)
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert r.model == model_id
    assert len(r.choices) == 1
    c = r.choices[0]
    assert c.index == 0
    assert c.message.role == "assistant"
    assert isinstance(c.message.content, str) and c.message.content
    assert c.finish_reason in ("stop", "length")
    assert "4" in c.message.content
    u = r.usage
    assert u.prompt_tokens > 0 and u.completion_tokens > 0
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.completion_tokens <= 24
    assert u.prompt_tokens_details.cached_tokens >= 0


def test_chat_without_model_field(http):
    r = http.post("/v1/chat/completions", json={"messages": QUESTION, "max_tokens": 4, "temperature": 0})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]


def test_chat_stream_equals_plain_greedy(client, model_id):
    plain = client.chat.completions.create(model=model_id, messages=STORY, max_tokens=20, temperature=0)
    stream = client.chat.completions.create(model=model_id, messages=STORY, max_tokens=20, temperature=0,
                                            stream=True)
    texts, finish, chunks = chat_stream_text(stream)
    assert texts[0] == plain.choices[0].message.content
    assert finish == {0: plain.choices[0].finish_reason}
    # OpenAI's stream shape: role first, content deltas, finish with an empty delta last
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert len({ch.id for ch in chunks}) == 1
    assert chunks[-1].choices[0].finish_reason is not None
    assert not chunks[-1].choices[0].delta.content
    assert all(ch.usage is None for ch in chunks)  # no include_usage: no usage anywhere


def test_chat_stream_include_usage(client, model_id):
    stream = client.chat.completions.create(model=model_id, messages=STORY, max_tokens=8, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    texts, finish, chunks = chat_stream_text(stream)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == 8
    assert last.usage.total_tokens == last.usage.prompt_tokens + 8
    assert all(ch.usage is None for ch in chunks[:-1])
    assert finish == {0: "length"}


def test_completion_basic_and_stream(client, model_id):
    prompt = "The three primary colors are"
    r = client.completions.create(model=model_id, prompt=prompt, max_tokens=12, temperature=0)
    assert r.object == "text_completion"
    assert r.id.startswith("cmpl-")
    assert len(r.choices) == 1 and r.choices[0].index == 0
    assert r.choices[0].text
    assert r.usage.completion_tokens <= 12
    stream = client.completions.create(model=model_id, prompt=prompt, max_tokens=12, temperature=0, stream=True,
                                       stream_options={"include_usage": True})
    text, fin, usage = "", None, None
    for ch in stream:
        for c in ch.choices:
            text += c.text
            fin = c.finish_reason or fin
        if ch.usage:
            assert ch.choices == []
            usage = ch.usage
    assert text == r.choices[0].text
    assert fin == r.choices[0].finish_reason
    assert usage.completion_tokens == r.usage.completion_tokens
    assert usage.prompt_tokens == r.usage.prompt_tokens


def test_completion_default_max_tokens_is_16(client, model_id):
    r = client.completions.create(model=model_id, prompt="Once upon a time", temperature=0,
                                  extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 16
    assert r.choices[0].finish_reason == "length"


def test_completion_prompt_array(client, model_id):
    prompts = ["One, two, three,", "Monday, Tuesday,"]
    r = client.completions.create(model=model_id, prompt=prompts, max_tokens=6, temperature=0)
    assert [c.index for c in r.choices] == [0, 1]
    for i, p in enumerate(prompts):
        solo = client.completions.create(model=model_id, prompt=p, max_tokens=6, temperature=0)
        assert r.choices[i].text == solo.choices[0].text
    assert r.usage.prompt_tokens == sum(
        client.completions.create(model=model_id, prompt=p, max_tokens=1).usage.prompt_tokens for p in prompts)


def test_finish_length(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=STORY, max_tokens=3, temperature=0)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3
    r = client.completions.create(model=model_id, prompt="1, 2, 3, 4,", max_tokens=5, temperature=0)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5


def test_finish_stop_at_eos(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=QUESTION, max_tokens=60, temperature=0)
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens < 60


def _stop_word(text):
    """A word from the middle of text (not at its start) to use as a stop string."""
    words = text.split()
    for w in words[2:]:
        if len(w) >= 3 and text.find(w) > 0:
            return w
    pytest.skip(f"no usable stop word in {text!r}")


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequence(client, model_id, stream):
    base = client.chat.completions.create(model=model_id, messages=STORY, max_tokens=30, temperature=0,
                                          extra_body={"ignore_eos": True}).choices[0].message.content
    word = _stop_word(base)
    want = base[:base.find(word)]
    kw = dict(model=model_id, messages=STORY, max_tokens=30, temperature=0, stop=[word, "\u00a7never\u00a7"],
              extra_body={"ignore_eos": True})
    if stream:
        texts, finish, _ = chat_stream_text(client.chat.completions.create(stream=True, **kw))
        text, fin = texts.get(0, ""), finish[0]
    else:
        r = client.chat.completions.create(**kw)
        text, fin = r.choices[0].message.content, r.choices[0].finish_reason
    assert word not in text
    assert text == want
    assert fin == "stop"


def test_stop_sequence_completions(client, model_id):
    prompt = "Here is a list of fruits: apple, banana,"
    base = client.completions.create(model=model_id, prompt=prompt, max_tokens=24, temperature=0,
                                     extra_body={"ignore_eos": True}).choices[0].text
    word = _stop_word(base)
    r = client.completions.create(model=model_id, prompt=prompt, max_tokens=24, temperature=0, stop=word,
                                  extra_body={"ignore_eos": True})
    assert word not in r.choices[0].text
    assert r.choices[0].text == base[:base.find(word)]
    assert r.choices[0].finish_reason == "stop"


def test_seed_determinism(client, model_id):
    def gen(seed):
        return client.chat.completions.create(model=model_id, messages=STORY, max_tokens=10, temperature=0.8,
                                              seed=seed).choices[0].message.content

    a, b = gen(1234), gen(1234)
    assert a == b
    others = {gen(s) for s in (1, 2)}
    assert len(others | {a}) > 1, "three different seeds all gave the same text"


def test_seed_determinism_stream(client, model_id):
    kw = dict(model=model_id, prompt="The weather today is", max_tokens=12, temperature=0.8, seed=77)
    plain = client.completions.create(**kw).choices[0].text
    streamed = "".join(c.text for ch in client.completions.create(stream=True, **kw) for c in ch.choices)
    assert plain == streamed


def test_n_choices(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=STORY, max_tokens=8, temperature=1.0, n=3, seed=5)
    assert sorted(c.index for c in r.choices) == [0, 1, 2]
    assert all(c.message.content for c in r.choices)
    # usage counts every choice: 8 for each cut by length, at least 1 for the others
    n_length = sum(c.finish_reason == "length" for c in r.choices)
    assert 8 * n_length + (3 - n_length) <= r.usage.completion_tokens <= 24
    assert len({c.message.content for c in r.choices}) > 1, "n=3 at temperature 1 gave three equal texts"


def test_n_choices_stream(client, model_id):
    stream = client.chat.completions.create(model=model_id, messages=STORY, max_tokens=6, temperature=1.0, n=2,
                                            stream=True, stream_options={"include_usage": True})
    texts, finish, chunks = chat_stream_text(stream)
    assert set(finish) == {0, 1}
    roles = {c.index for ch in chunks for c in ch.choices if c.delta.role == "assistant"}
    assert roles == {0, 1}
    assert chunks[-1].usage.completion_tokens <= 12


def test_n_choices_completions(client, model_id):
    r = client.completions.create(model=model_id, prompt=["A", "B"], max_tokens=3, n=2, temperature=1.0)
    assert sorted(c.index for c in r.choices) == [0, 1, 2, 3]


def _check_top_sorted(tops):
    lps = [t.logprob for t in tops]
    assert lps == sorted(lps, reverse=True), lps
    assert all(lp <= 0.0 for lp in lps)


def test_chat_logprobs(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=STORY, max_tokens=8, temperature=0, logprobs=True,
                                       top_logprobs=3)
    c = r.choices[0]
    content = c.logprobs.content
    assert len(content) == r.usage.completion_tokens == 8
    assert "".join(t.token for t in content) == c.message.content
    for t in content:
        assert t.logprob <= 0.0
        assert isinstance(t.bytes, list) and bytes(t.bytes).decode("utf-8", "replace")
        assert len(t.top_logprobs) == 3
        _check_top_sorted(t.top_logprobs)
        # greedy: the chosen token is the most likely one
        assert t.token == t.top_logprobs[0].token
        assert math.isclose(t.logprob, t.top_logprobs[0].logprob, abs_tol=1e-4)
        assert sum(math.exp(x.logprob) for x in t.top_logprobs) <= 1.0 + 1e-3


def test_chat_logprobs_sampled_stream(client, model_id):
    stream = client.chat.completions.create(model=model_id, messages=STORY, max_tokens=8, temperature=1.0, seed=3,
                                            logprobs=True, top_logprobs=2, stream=True)
    entries = []
    text = ""
    for ch in stream:
        for c in ch.choices:
            text += c.delta.content or ""
            if c.logprobs and c.logprobs.content:
                entries += c.logprobs.content
    assert len(entries) == 8
    assert "".join(t.token for t in entries) == text
    for t in entries:
        assert t.logprob <= 0.0
        assert len(t.top_logprobs) == 2
        _check_top_sorted(t.top_logprobs)
        assert t.logprob <= t.top_logprobs[0].logprob + 1e-4


def test_chat_logprobs_off(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=QUESTION, max_tokens=2)
    assert r.choices[0].logprobs is None


def test_completion_logprobs(client, model_id):
    r = client.completions.create(model=model_id, prompt="The sun rises in the", max_tokens=6, temperature=0,
                                  logprobs=3, extra_body={"ignore_eos": True})
    c = r.choices[0]
    lp = c.logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 6
    assert "".join(lp.tokens) == c.text
    assert lp.text_offset[0] == 0
    for i in range(1, 6):
        assert lp.text_offset[i] == lp.text_offset[i - 1] + len(lp.tokens[i - 1])
    for tok, x, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert x <= 0.0
        assert 1 <= len(top) <= 3
        assert max(top.values()) <= 0.0
        assert tok in top and math.isclose(top[tok], max(top.values()), abs_tol=1e-4)  # greedy


def test_greedy_matches_ryot_run(client, model_id):
    """/v1/completions at temperature 0 generates what `ryot run --temp 0` does."""
    prompt = "The capital of France is"
    env = dict(os.environ)
    model = env.get("RYOT_MODEL")
    args = [RYOT, "run", "-p", prompt, "--temp", "0", "-n", "12", "-t", "2"] + (["-m", model] if model else [])
    out = subprocess.run(args, cwd=REPO, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    r = client.completions.create(model=model_id, prompt=prompt, max_tokens=12, temperature=0)
    text = r.choices[0].text
    ran = out.stdout.decode()
    assert ran.rstrip("\n") == text.rstrip("\n") or (r.choices[0].finish_reason == "stop" and ran.startswith(text))


def test_max_completion_tokens_alias(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=STORY, max_completion_tokens=4, temperature=0)
    assert r.usage.completion_tokens == 4
    assert r.choices[0].finish_reason == "length"


def test_logit_bias_bans_token(client, model_id, http):
    kw = dict(model=model_id, prompt="The capital of France is", max_tokens=1, temperature=0)
    first = client.completions.create(**kw).choices[0].text
    ids = http.post("/tokenize", json={"content": first}).json()["tokens"]
    assert len(ids) == 1
    other = client.completions.create(logit_bias={str(ids[0]): -100}, **kw).choices[0].text
    assert other != first
    forced = client.completions.create(logit_bias={str(ids[0]): -100, "28": 100}, **kw).choices[0].text
    assert forced == http.post("/detokenize", json={"tokens": [28]}).json()["content"]


def _completion_offsets(client, model_id, prompt):
    kw = dict(model=model_id, prompt=prompt, max_tokens=16, temperature=0, logprobs=1,
              extra_body={"ignore_eos": True})
    plain = client.completions.create(**kw).choices[0]
    toks, offs, text = [], [], ""
    for ch in client.completions.create(stream=True, **kw):
        for c in ch.choices:
            text += c.text
            if c.logprobs:
                toks += c.logprobs.tokens
                offs += c.logprobs.text_offset
    assert text == plain.text
    assert toks == plain.logprobs.tokens
    return plain.text, plain.logprobs.text_offset, offs


def test_completion_logprobs_stream_offsets(client, model_id):
    text, plain, streamed = _completion_offsets(client, model_id, "Count: one, two, three,")
    assert streamed == plain
    assert plain == sorted(plain) and plain[-1] <= len(text)


def test_completion_logprobs_offsets_multibyte(client, model_id):
    text, plain, streamed = _completion_offsets(client, model_id, "Emoji time: \U0001F642 and \u65e5\u672c")
    assert all(0 <= o <= len(text) for o in plain), (plain, len(text))
    assert streamed == plain


def test_chat_default_max_tokens_cap():
    """A chat request without max_tokens stops at --default-max-tokens, and a
    default never turns into a 400: near the end of the context it stops there."""
    from conftest import start_server

    s = start_server("--ctx", "96", "--default-max-tokens", "12", "--threads", "2", "--max-running", "4")
    try:
        c = s.client()
        mid = c.models.list().data[0].id
        r = c.chat.completions.create(model=mid, messages=STORY, temperature=0, extra_body={"ignore_eos": True})
        assert r.usage.completion_tokens == 12
        assert r.choices[0].finish_reason == "length"
        # a prompt that leaves fewer than 12 positions: the context left, not an error
        long_msg = [{"role": "user", "content": "one two three four five six seven eight nine ten " * 6}]
        r = c.chat.completions.create(model=mid, messages=long_msg, temperature=0, extra_body={"ignore_eos": True})
        assert r.usage.prompt_tokens + r.usage.completion_tokens == 96
        assert r.usage.completion_tokens < 12
        assert r.choices[0].finish_reason == "length"
    finally:
        s.stop_and_check()
