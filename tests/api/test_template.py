"""The chat template: POST /apply-template renders exactly (byte for byte)
what Python's jinja2 renders from the model's tokenizer.chat_template, set
up as Hugging Face transformers does (sandboxed, trim_blocks, lstrip_blocks,
loop controls, raise_exception, tojson), and chat requests tokenize that
text."""

import json

import jinja2
import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from conftest import model_path
from gguf_meta import read_metadata


@pytest.fixture(scope="module")
def meta():
    return read_metadata(model_path())


@pytest.fixture(scope="module")
def render(meta):
    src = meta.get("tokenizer.chat_template")
    if not src:
        pytest.skip("the model has no tokenizer.chat_template")
    tokens = meta["tokenizer.ggml.tokens"]

    def special(key):
        i = meta.get(key)
        return tokens[i] if i is not None and 0 <= i < len(tokens) else ""

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    template = env.from_string(src)
    bos, eos = special("tokenizer.ggml.bos_token_id"), special("tokenizer.ggml.eos_token_id")

    def fn(messages, add_generation_prompt=True):
        return template.render(messages=messages, add_generation_prompt=add_generation_prompt, bos_token=bos,
                               eos_token=eos)

    return fn


def m(role, content):
    return {"role": role, "content": content}


CONVERSATIONS = {
    "user": [m("user", "Hello!")],
    "system_user": [m("system", "You are terse."), m("user", "Name a color.")],
    "multi_turn": [m("system", "Be kind."), m("user", "Hi"), m("assistant", "Hello! How can I help?"),
                   m("user", "Tell me a joke."), m("assistant", "Why did the chicken cross the road?"),
                   m("user", "Why?")],
    "assistant_first": [m("assistant", "I start."), m("user", "Fine.")],
    "unicode": [m("user", "Grüße, 日本語, emoji 🙂🚀, Ω≈ç√ and \u00a0nbsp")],
    "whitespace": [m("user", "  leading and trailing  \n\nnew\tlines\r\n  "), m("assistant", "\n"),
                   m("user", "")],
    "template_syntax": [m("user", "{{ messages }} {% if true %}x{% endif %} {# c #} <|im_end|> <|im_start|>")],
    "json_and_quotes": [m("user", "{\"a\": [1, 2], 'b': \"\\\\\"}")],
    "tool": [m("user", "What is the weather?"), m("assistant", "Let me check."), m("tool", "22 degrees"),
             m("user", "Thanks")],
    "long": [m("user" if i % 2 == 0 else "assistant", f"turn {i}: " + "word " * (i % 7)) for i in range(24)],
}


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
@pytest.mark.parametrize("add_gen", [True, False])
def test_apply_template_matches_jinja2(http, render, name, add_gen):
    msgs = CONVERSATIONS[name]
    try:
        want = render(msgs, add_gen)
    except jinja2.exceptions.TemplateError as e:
        r = http.post("/apply-template", json={"messages": msgs, "add_generation_prompt": add_gen})
        assert r.status_code == 400, f"jinja2 raised {e!r}; server answered {r.status_code} {r.text[:200]}"
        return
    r = http.post("/apply-template", json={"messages": msgs, "add_generation_prompt": add_gen})
    assert r.status_code == 200, r.text
    got = r.json()["prompt"]
    assert got.encode("utf-8") == want.encode("utf-8")


def test_apply_template_default_adds_generation_prompt(http, render):
    msgs = CONVERSATIONS["user"]
    r = http.post("/apply-template", json={"messages": msgs})
    assert r.status_code == 200
    assert r.json()["prompt"] == render(msgs, True)


def test_apply_template_normalizes_requests(http, render):
    # "developer" is "system"; content parts are concatenated text
    r = http.post("/apply-template", json={"messages": [
        {"role": "developer", "content": "Rules."},
        {"role": "user", "content": [{"type": "text", "text": "Part one, "}, {"type": "text", "text": "part two."}]},
    ]})
    assert r.status_code == 200, r.text
    assert r.json()["prompt"] == render([m("system", "Rules."), m("user", "Part one, part two.")])


def test_chat_prompt_is_the_template(http, render, client, model_id):
    """A chat request's prompt tokens are the tokens of the rendered template."""
    msgs = CONVERSATIONS["multi_turn"]
    text = render(msgs, True)
    toks = http.post("/tokenize", json={"content": text, "add_special": True}).json()["tokens"]
    via_messages = http.post("/tokenize", json={"messages": msgs, "add_special": True}).json()["tokens"]
    assert via_messages == toks
    r = client.chat.completions.create(model=model_id, messages=msgs, max_tokens=1)
    assert r.usage.prompt_tokens == len(toks)
