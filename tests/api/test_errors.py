"""Every error status ryot serve answers, each with an OpenAI-shaped body
{"error": {"message", "type", "param", "code"}}, and the openai SDK's
matching exception class."""

import json
import time

import httpx
import openai
import pytest

from conftest import Threads, assert_openai_error, start_server

MSG = [{"role": "user", "content": "Hi"}]
LONG = [{"role": "user", "content": "Write a very long essay about the history of bread."}]


def chat(http, body):
    return http.post("/v1/chat/completions", json=body)


# ---------------------------------------------------------------- 400

def test_400_malformed_json(http):
    for raw in (b"{bad", b"", b"{\"messages\": [", b"\xff\xfe", b"null"):
        r = http.post("/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"})
        e = assert_openai_error(r, 400)
        assert e["type"] == "invalid_request_error"


def test_400_not_an_object(http):
    r = http.post("/v1/completions", content=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert_openai_error(r, 400)


@pytest.mark.parametrize("field,value,param", [
    ("temperature", "hot", "temperature"),
    ("temperature", 3, "temperature"),
    ("temperature", -0.5, "temperature"),
    ("top_p", 1.5, "top_p"),
    ("max_tokens", "5", "max_tokens"),
    ("max_tokens", 0, "max_tokens"),
    ("max_tokens", 2.5, "max_tokens"),
    ("n", 0, "n"),
    ("n", 100, "n"),
    ("stream", "yes", "stream"),
    ("stop", 5, "stop"),
    ("stop", ["a", "b", "c", "d", "e"], "stop"),
    ("seed", "x", "seed"),
    ("priority", "urgent", "priority"),
    ("top_logprobs", 3, "top_logprobs"),           # without logprobs: true
    ("stream_options", {"include_usage": True}, "stream_options"),  # without stream: true
    ("logit_bias", {"abc": 1}, "logit_bias[abc]"),
    ("presence_penalty", 3, "presence_penalty"),
])
def test_400_bad_field(http, field, value, param):
    e = assert_openai_error(chat(http, {"messages": MSG, field: value}), 400, param=param)
    assert e["type"] == "invalid_request_error"


@pytest.mark.parametrize("messages,param", [
    ([], "messages"),
    ("hello", "messages"),
    ([{"role": "wizard", "content": "x"}], "messages[0].role"),
    ([{"role": "user"}], "messages[0].content"),
    ([{"role": "user", "content": 5}], "messages[0].content"),
    ([{"role": "user", "content": "ok"}, 7], "messages[1]"),
])
def test_400_bad_messages(http, messages, param):
    assert_openai_error(chat(http, {"messages": messages}), 400, param=param)


def test_400_missing_messages_and_prompt(http):
    assert_openai_error(chat(http, {"model": "x"}), 400, param="messages")
    assert_openai_error(http.post("/v1/completions", json={"max_tokens": 3}), 400, param="prompt")


def test_400_sdk_exceptions(client, model_id):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model=model_id, messages=MSG, temperature=3)
    assert ei.value.status_code == 400
    assert ei.value.response.json()["error"]["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model=model_id, messages=MSG, max_tokens=0)
    assert ei.value.response.json()["error"]["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model_id, messages=[])
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=model_id, prompt="x", temperature=2.5)


def test_400_beyond_context(client, model_id, http):
    # the session server's context is 2048 tokens
    with pytest.raises(openai.BadRequestError) as ei:
        client.completions.create(model=model_id, prompt="Hello", max_tokens=2048)
    assert ei.value.response.json()["error"]["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model=model_id, messages=MSG, max_tokens=2040)
    assert ei.value.response.json()["error"]["param"] == "max_tokens"
    # a prompt longer than the context on its own
    long_prompt = "apple banana cherry " * 1000
    assert_openai_error(http.post("/v1/completions", json={"prompt": long_prompt, "max_tokens": 1}), 400,
                        param="prompt")
    assert_openai_error(chat(http, {"messages": [{"role": "user", "content": long_prompt}]}), 400,
                        param="messages")
    # just inside the context is fine
    r = client.completions.create(model=model_id, prompt="Hello", max_tokens=1)
    n_prompt = r.usage.prompt_tokens
    with http.stream("POST", "/v1/completions",
                     json={"prompt": "Hello", "max_tokens": 2048 - n_prompt, "stream": True}) as r:
        assert r.status_code == 200  # accepted (closed unread: the server cancels it)


def test_400_logit_bias_outside_vocab(http):
    assert_openai_error(chat(http, {"messages": MSG, "logit_bias": {"99999999": 5}}), 400, param="logit_bias")


def test_400_unsupported_features(http):
    assert_openai_error(chat(http, {"messages": MSG, "tools": [{"type": "function", "function": {"name": "f"}}],
                                    "tool_choice": {"type": "function", "function": {"name": "g"}}}),
                        400, param="tool_choice")


def test_400_helper_endpoints(http):
    assert_openai_error(http.post("/tokenize", json={}), 400)
    assert_openai_error(http.post("/tokenize", json={"content": 5}), 400, param="content")
    assert_openai_error(http.post("/detokenize", json={"tokens": [1, -2]}), 400)
    assert_openai_error(http.post("/detokenize", json={"tokens": [10 ** 8]}), 400, param="tokens")
    assert_openai_error(http.post("/apply-template", json={"messages": []}), 400, param="messages")


# ---------------------------------------------------------------- 404 / 405

def test_404_unknown_route(http):
    for method, path in (("GET", "/v1/nope"), ("POST", "/v1/embeddings"), ("GET", "/index.htm"), ("GET", "/v1/models/x/y")):
        e = assert_openai_error(http.request(method, path), 404)
        assert e["type"] == "invalid_request_error"


def test_404_unknown_model(client, http):
    with pytest.raises(openai.NotFoundError) as ei:
        client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=2)
    assert ei.value.status_code == 404
    e = ei.value.response.json()["error"]
    assert e["code"] == "model_not_found" and e["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="no-such-model", prompt="x", max_tokens=2)
    assert_openai_error(chat(http, {"model": "other", "messages": MSG}), 404, param="model", code="model_not_found")


@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/v1/chat/completions", "POST"),
    ("GET", "/v1/completions", "POST"),
    ("PUT", "/v1/chat/completions", "POST"),
    ("DELETE", "/v1/models", "GET"),
    ("POST", "/health", "GET"),
    ("GET", "/tokenize", "POST"),
])
def test_405(http, method, path, allow):
    r = http.request(method, path)
    assert_openai_error(r, 405)
    assert allow in r.headers.get("allow", "")


# ---------------------------------------------------------------- 401

@pytest.fixture(scope="module")
def keyed():
    s = start_server("--api-key", "sekrit-123", "--ctx", "512", "--threads", "2")
    yield s
    s.stop_and_check()


def test_401_missing_and_wrong_key(keyed):
    body = {"messages": MSG, "max_tokens": 2}
    r = httpx.post(keyed.url("/v1/chat/completions"), json=body, timeout=30)
    e = assert_openai_error(r, 401, code="invalid_api_key")
    assert e["type"] == "invalid_request_error"
    assert "bearer" in r.headers.get("www-authenticate", "").lower()
    for auth in ("Bearer wrong", "Bearer sekrit-1234", "Bearer sekrit-12", "Basic sekrit-123", "sekrit-123",
                 "Bearer", "Bearer  sekrit-123x"):
        r = httpx.post(keyed.url("/v1/chat/completions"), json=body, headers={"Authorization": auth}, timeout=30)
        assert_openai_error(r, 401, code="invalid_api_key")
    for path in ("/v1/models", "/tokenize"):
        r = httpx.request("GET" if path == "/v1/models" else "POST", keyed.url(path), json={"content": "x"},
                          timeout=30)
        assert_openai_error(r, 401)
    with pytest.raises(openai.AuthenticationError) as ei:
        keyed.client(api_key="wrong").chat.completions.create(model="x", messages=MSG, max_tokens=2)
    assert ei.value.status_code == 401


def test_401_right_key_works(keyed):
    c = keyed.client(api_key="sekrit-123")
    models = c.models.list()
    mid = models.data[0].id
    r = c.chat.completions.create(model=mid, messages=MSG, max_tokens=2)
    assert r.choices[0].message.content is not None
    # health and metrics stay open (probes, scrapers)
    assert httpx.get(keyed.url("/health"), timeout=30).status_code == 200
    assert httpx.get(keyed.url("/metrics"), timeout=30).status_code == 200


def test_401_key_from_environment():
    s = start_server("--ctx", "256", "--threads", "1", env={"RYOT_API_KEY": "env-key"})
    try:
        r = httpx.get(s.url("/v1/models"), timeout=30)
        assert_openai_error(r, 401)
        r = httpx.get(s.url("/v1/models"), headers={"Authorization": "Bearer env-key"}, timeout=30)
        assert r.status_code == 200
    finally:
        s.stop_and_check()


# ---------------------------------------------------------------- 413

@pytest.fixture(scope="module")
def small_body():
    s = start_server("--max-body", "2048", "--ctx", "512", "--threads", "2")
    yield s
    s.stop_and_check()


def test_413_body_too_large(small_body):
    big = {"messages": [{"role": "user", "content": "x" * 5000}], "max_tokens": 1}
    r = httpx.post(small_body.url("/v1/chat/completions"), json=big, timeout=30)
    assert_openai_error(r, 413)
    with pytest.raises(openai.APIStatusError) as ei:
        small_body.client().chat.completions.create(model="x", messages=big["messages"], max_tokens=1)
    assert ei.value.status_code == 413


def test_413_chunked_body_too_large(small_body):
    def gen():
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}], "max_tokens": 1}'

    r = httpx.post(small_body.url("/v1/chat/completions"), content=gen(),
                   headers={"Content-Type": "application/json"}, timeout=30)
    assert_openai_error(r, 413)


def test_413_limit_is_exact(small_body):
    # a body of exactly the limit (2048 bytes) is accepted, one byte more is not
    def body(n):
        head, tail = b'{"content": "', b'"}'
        return head + b"a" * (n - len(head) - len(tail)) + tail

    r = httpx.post(small_body.url("/tokenize"), content=body(2048), timeout=30)
    assert r.status_code == 200, r.text[:200]
    r = httpx.post(small_body.url("/tokenize"), content=body(2049), timeout=30)
    assert_openai_error(r, 413)
    # the server still works afterwards
    assert httpx.get(small_body.url("/health"), timeout=30).status_code == 200


# ---------------------------------------------------------------- 429

@pytest.fixture(scope="module")
def tiny_queue():
    s = start_server("--max-queue", "1", "--max-running", "1", "--ctx", "1024", "--threads", "2")
    yield s
    s.stop_and_check()


def test_429_queue_full(tiny_queue):
    mid = _model(tiny_queue)
    long_body = {"messages": LONG, "max_tokens": 400, "ignore_eos": True, "stream": True}
    short = {"messages": MSG, "max_tokens": 2}
    # one connected client per request, made before the burst so that all five arrive together
    clients = [httpx.Client(base_url=tiny_queue.base_url, timeout=120) for _ in range(5)]
    for c in clients:
        assert c.get("/health").status_code == 200
    th = Threads()
    try:
        with httpx.stream("POST", tiny_queue.url("/v1/chat/completions"), json=long_body, timeout=120) as running:
            assert running.status_code == 200
            # wait for its first token: it holds the only running slot, the queue is empty
            # (the line iterator is kept: closing it early would close the connection)
            lines = running.iter_lines()
            for line in lines:
                if line.startswith("data: ") and '"content":"' in line and '"content":""' not in line:
                    break
            for i, c in enumerate(clients):
                th.start(i, c.post, "/v1/chat/completions", json=short)
            # one request waits in the queue, the other four are refused at once
            end = time.monotonic() + 60
            while len(th.results) < 4 and time.monotonic() < end:
                time.sleep(0.02)
            assert len(th.results) == 4, th.results
            with pytest.raises(openai.RateLimitError) as ei:
                tiny_queue.client().chat.completions.create(model=mid, messages=MSG, max_tokens=2)
            assert ei.value.status_code == 429
            del lines
        # the long stream is closed here: the server cancels it and the queued request runs
        res = th.join()
    finally:
        for c in clients:
            c.close()
    statuses = sorted(r.status_code for r in res.values())
    assert statuses == [200, 429, 429, 429, 429], statuses
    for r in res.values():
        if r.status_code == 429:
            assert_openai_error(r, 429, code="rate_limit_exceeded")
            assert r.headers.get("retry-after", "").isdigit(), r.headers
    # with the queue drained, requests are accepted again
    r = httpx.post(tiny_queue.url("/v1/chat/completions"), json=short, timeout=60)
    assert r.status_code == 200, r.text
    # a request that can never fit the queue is a client error, not a retry
    r = httpx.post(tiny_queue.url("/v1/chat/completions"), json={**short, "n": 2}, timeout=60)
    assert_openai_error(r, 400, param="n")


def _model(server):
    return httpx.get(server.url("/v1/models"), timeout=30).json()["data"][0]["id"]


# ---------------------------------------------------------------- 408 (the request's own "timeout")

def test_408_request_timeout(client, model_id, http):
    body = {"prompt": "Once upon a time", "max_tokens": 1500, "ignore_eos": True, "timeout": 0.3}
    t0 = time.monotonic()
    e = assert_openai_error(http.post("/v1/completions", json=body), 408, code="timeout")
    assert e["type"] == "timeout"
    assert time.monotonic() - t0 < 20
    # streamed: an error event, then [DONE]
    with http.stream("POST", "/v1/completions", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    err = json.loads(events[-2])
    assert err["error"]["code"] == "timeout"
    # no empty chunk (no text, no finish_reason) announces the failure before the error event
    for ev in events[:-2]:
        c = json.loads(ev)["choices"][0]
        assert c["text"] or c["finish_reason"], ev
    with pytest.raises(openai.APIError):
        for _ in client.completions.create(model=model_id, prompt="Once upon a time", max_tokens=1500, stream=True,
                                           extra_body={"ignore_eos": True, "timeout": 0.3}):
            pass
