"""Tool calling on /v1/chat/completions through the official openai SDK:
forced calls (a named function, "required") whose arguments follow the
function's parameters schema (validated with jsonschema), tool_choice
"none", a conversation with a tool result, streaming a forced call, and the
400s of bad tools."""

import json

import jsonschema
import openai
import pytest

from conftest import assert_openai_error

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 20},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
TIME = {
    "type": "object",
    "properties": {"zone": {"type": "string", "maxLength": 12}},
    "required": ["zone"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather forecast for a city", "parameters": WEATHER},
    },
    {"type": "function", "function": {"name": "get_time", "description": "Current time", "parameters": TIME}},
]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}
MODEL = None  # the server's model id: absent "model" is allowed, the SDK wants one
ASK = [{"role": "user", "content": "What is the weather in Paris for the next 3 days?"}]


def chat(client, **kw):
    kw.setdefault("max_tokens", 80)
    kw.setdefault("temperature", 0)
    return client.chat.completions.create(model=MODEL, messages=kw.pop("messages", ASK), **kw)


@pytest.fixture(autouse=True)
def _model(model_id):
    global MODEL
    MODEL = model_id


def check_call(call, name=None):
    assert call.type == "function"
    assert call.id.startswith("call_") and len(call.id) > len("call_")
    if name:
        assert call.function.name == name
    assert call.function.name in SCHEMAS
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, SCHEMAS[call.function.name])
    return args


def test_named_call_follows_schema(client):
    r = chat(client, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls"
    assert ch.message.tool_calls and len(ch.message.tool_calls) == 1
    check_call(ch.message.tool_calls[0], "get_weather")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_named_call_sampled(client, seed):
    r = chat(client, tools=TOOLS, temperature=1.0, seed=seed,
             tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert r.choices[0].finish_reason == "tool_calls"
    check_call(r.choices[0].message.tool_calls[0], "get_time")


def test_required_makes_a_call(client):
    r = chat(client, tools=TOOLS, tool_choice="required", parallel_tool_calls=False)
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls"
    assert len(ch.message.tool_calls) == 1
    check_call(ch.message.tool_calls[0])


def test_required_parallel_calls_all_valid(client):
    r = chat(client, tools=TOOLS, tool_choice="required", max_tokens=120)
    calls = r.choices[0].message.tool_calls
    assert calls
    for c in calls:
        check_call(c)
    assert len({c.id for c in calls}) == len(calls)


def test_tool_choice_none_gives_text(client):
    r = chat(client, tools=TOOLS, tool_choice="none", max_tokens=20)
    ch = r.choices[0]
    assert not ch.message.tool_calls
    assert ch.finish_reason in ("stop", "length")
    assert isinstance(ch.message.content, str)


def test_tool_result_conversation(client):
    messages = ASK + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius", "days": 3}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc123", "content": '{"forecast": "sunny, 24 C"}'},
    ]
    r = chat(client, messages=messages, tools=TOOLS, tool_choice="none", max_tokens=24)
    ch = r.choices[0]
    assert not ch.message.tool_calls
    assert ch.message.content


def test_template_renders_tools_and_results(http):
    body = {
        "messages": ASK
        + [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": '{"zone": "CET"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "12:00"},
        ],
        "tools": TOOLS,
    }
    r = http.post("/apply-template", json=body)
    assert r.status_code == 200
    prompt = r.json()["prompt"]
    assert "get_weather" in prompt and "Weather forecast for a city" in prompt
    assert "12:00" in prompt and '"zone"' in prompt


def test_stream_forced_call_assembles(client):
    kw = dict(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    whole = chat(client, **kw).choices[0].message.tool_calls[0]
    calls, finish = {}, None
    for chunk in chat(client, stream=True, **kw):
        for ch in chunk.choices:
            for tc in ch.delta.tool_calls or []:
                c = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                if tc.id:
                    c["id"] = tc.id
                if tc.function and tc.function.name:
                    c["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    c["arguments"] += tc.function.arguments
            if ch.finish_reason:
                finish = ch.finish_reason
    assert finish == "tool_calls"
    assert list(calls) == [0]
    c = calls[0]
    assert c["id"].startswith("call_")
    assert c["name"] == "get_weather"
    assert json.loads(c["arguments"]) == json.loads(whole.function.arguments)
    jsonschema.validate(json.loads(c["arguments"]), WEATHER)


def test_tools_change_the_cache_key(client):
    a = chat(client, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_time"}})
    b = chat(client, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert a.choices[0].message.tool_calls[0].function.name == "get_time"
    assert b.choices[0].message.tool_calls[0].function.name == "get_weather"


BAD = [
    ({"tools": {"type": "function"}}, "tools"),
    ({"tools": [{"type": "function", "function": {"description": "x"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0]"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": [1]}}]}, "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
     "tools[0].function.parameters"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": TOOLS, "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ({"tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}}, "tool_choice"),
]


@pytest.mark.parametrize("extra,param", BAD)
def test_bad_tools_400(http, extra, param):
    r = http.post("/v1/chat/completions", json={"messages": ASK, "max_tokens": 4, **extra})
    assert_openai_error(r, 400, param=param)


def test_bad_tool_messages_400(http):
    msgs = ASK + [{"role": "tool", "tool_call_id": ["call_1"], "content": "12:00"}]
    r = http.post("/v1/chat/completions", json={"messages": msgs, "max_tokens": 4})
    assert_openai_error(r, 400, param="messages[1].tool_call_id")
    msgs = ASK + [{"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {"name": "f"}}]}]
    r = http.post("/v1/chat/completions", json={"messages": msgs, "max_tokens": 4})
    assert_openai_error(r, 400, param="messages[1].tool_calls[0].id")


def test_sdk_raises_bad_request(client):
    with pytest.raises(openai.BadRequestError):
        chat(client, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "missing"}})
