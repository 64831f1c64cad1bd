"""Structured output: response_format json_object / json_schema and the raw
"grammar" extension, on chat and text completions, through the official
openai SDK.  Outputs are validated with the jsonschema package, greedy and
sampled (temperature 1, several seeds), streamed, and with n > 1."""

import json
import re

import jsonschema
import openai
import pytest

from conftest import assert_openai_error, chat_stream_text

# Object with required and optional properties, an array with min/maxItems
# of enum values, integer bounds, string format and pattern, anyOf,
# $ref/$defs and nesting.
NESTED = {
    "type": "object",
    "$defs": {
        "address": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 20},
                "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
            },
            "required": ["city", "zip"],
            "additionalProperties": False,
        }
    },
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "email": {"type": "string", "format": "email"},
        "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "minItems": 1, "maxItems": 3},
        "id": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "format": "uuid"}]},
        "home": {"$ref": "#/$defs/address"},
        "active": {"type": "boolean"},
    },
    "required": ["name", "age", "tags", "home"],
    "additionalProperties": False,
}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PERSON = [{"role": "user", "content": "Describe a person as JSON: name, age, tags, home address."}]
PROMPTS = [
    [{"role": "user", "content": "Give me a JSON object describing a cat."}],
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a poem about the sea."}],
]


def schema_format(name):
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": NESTED}}


def check_nested(text):
    v = json.loads(text)
    jsonschema.validate(v, NESTED)  # formats are annotations to jsonschema: checked below
    if "email" in v:
        assert EMAIL.match(v["email"]), v
    if isinstance(v.get("id"), str):
        assert UUID.match(v["id"]), v
    return v


@pytest.mark.parametrize("messages", PROMPTS)
@pytest.mark.parametrize("seed", [None, 1, 2])
def test_json_object(client, model_id, messages, seed):
    kw = {"temperature": 0} if seed is None else {"temperature": 1.0, "seed": seed}
    r = client.chat.completions.create(model=model_id, messages=messages, max_tokens=200,
                                       response_format={"type": "json_object"}, **kw)
    c = r.choices[0]
    if c.finish_reason == "stop":
        assert isinstance(json.loads(c.message.content), dict), c.message.content
    else:  # cut by max_tokens: a prefix of an object
        assert c.finish_reason == "length" and c.message.content.startswith("{")


@pytest.mark.parametrize("seed", [None, 3, 4, 5])
def test_json_schema_nested(client, model_id, seed):
    kw = {"temperature": 0} if seed is None else {"temperature": 1.0, "seed": seed}
    r = client.chat.completions.create(model=model_id, messages=PERSON, max_tokens=400,
                                       response_format=schema_format("person"), **kw)
    c = r.choices[0]
    assert c.finish_reason == "stop", c.message.content
    check_nested(c.message.content)


def test_json_schema_n_choices(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=PERSON, max_tokens=400, n=3, temperature=1.0,
                                       seed=11, response_format=schema_format("person"))
    assert len(r.choices) == 3
    for c in r.choices:
        assert c.finish_reason == "stop", c.message.content
        check_nested(c.message.content)


def test_json_schema_stream(client, model_id):
    stream = client.chat.completions.create(model=model_id, messages=PERSON, max_tokens=400, temperature=1.0,
                                            seed=21, stream=True, response_format=schema_format("person"))
    texts, finish, chunks = chat_stream_text(stream)
    assert finish[0] == "stop"
    assert len(chunks) > 3
    check_nested(texts[0])


def test_logprobs_are_constrained(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=PROMPTS[1], max_tokens=200, temperature=0,
                                       logprobs=True, top_logprobs=5, response_format={"type": "json_object"})
    first = r.choices[0].logprobs.content[0]
    # the first token of an object: "{" possibly with whitespace
    assert first.token.lstrip(" \t\n").startswith("{")
    finite = [alt for alt in first.top_logprobs if alt.logprob > -9999.0]  # -9999: a banned token
    assert finite
    for alt in finite:  # whitespace or "{" first: nothing else is in the language
        assert alt.token.strip(" \t\n") == "" or alt.token.lstrip(" \t\n").startswith("{"), alt


def test_raw_grammar(client, model_id):
    for seed in (1, 2, 3):
        r = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Is fire hot?"}],
                                           max_tokens=10, temperature=1.0, seed=seed,
                                           extra_body={"grammar": 'root ::= ("yes" | "no")'})
        assert r.choices[0].message.content in ("yes", "no")
        assert r.choices[0].finish_reason == "stop"


def test_ignore_eos_keeps_grammar(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=PROMPTS[0], max_tokens=60, temperature=0,
                                       extra_body={"grammar": 'root ::= [a-c]{1,5} "."', "ignore_eos": True})
    assert re.fullmatch(r"[a-c]{1,5}\.", r.choices[0].message.content)
    assert r.choices[0].finish_reason == "stop"


def test_completions(client, model_id):
    r = client.completions.create(model=model_id, prompt="A person, as JSON:", max_tokens=400, n=2,
                                  temperature=1.0, seed=5, extra_body={"response_format": schema_format("p")})
    assert len(r.choices) == 2
    for c in r.choices:
        assert c.finish_reason == "stop", c.text
        check_nested(c.text)
    r = client.completions.create(model=model_id, prompt="Answer yes or no: is ice cold?", max_tokens=8,
                                  temperature=0, extra_body={"grammar": 'root ::= "yes" | "no"'})
    assert r.choices[0].text in ("yes", "no")


def test_invalid_schema(http):
    bad = {"type": "object", "properties": {"age": {"type": "integer", "minimum": "x"}}}
    body = {"messages": PERSON, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": bad}}}
    e = assert_openai_error(http.post("/v1/chat/completions", json=body), 400, param="response_format")
    assert e["type"] == "invalid_request_error"
    assert "schema.properties.age.minimum" in e["message"]
    body = {"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"schema": {"not": {}}}}}
    e = assert_openai_error(http.post("/v1/completions", json=body), 400, param="response_format")
    assert "schema.not" in e["message"]
    body = {"messages": PERSON, "response_format": {"type": "yaml"}}
    assert_openai_error(http.post("/v1/chat/completions", json=body), 400, param="response_format")


def test_invalid_grammar(http):
    e = assert_openai_error(http.post("/v1/chat/completions", json={"messages": PERSON, "grammar": 'root ::= "a" )'}),
                            400, param="grammar")
    assert "line 1:14" in e["message"]
    e = assert_openai_error(http.post("/v1/completions", json={"prompt": "x", "grammar": "root ::= root"}),
                            400, param="grammar")
    assert "left-recursive" in e["message"]
    both = {"messages": PERSON, "grammar": 'root ::= "a"', "response_format": {"type": "json_object"}}
    assert_openai_error(http.post("/v1/chat/completions", json=both), 400, param="grammar")


def test_sdk_raises_bad_request(client, model_id):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model_id, messages=PERSON, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strin"}}})
