"""The L1 response cache (--cache-mb): deterministic requests hit, others
bypass; a hit has the same shape, text and usage, streamed or not; the
Cache-Control request header; X-Ryot-Cache on every generation response;
TTL expiry; a different request (any field that changes the output) misses."""

import json
import time
import zlib

import httpx
import pytest

from conftest import sse_events, start_server

MSG = [{"role": "user", "content": "Name three colors."}]


@pytest.fixture(scope="module")
def cached():
    s = start_server("--ctx", "512", "--threads", "2", "--cache-mb", "16", "--cache-ttl", "3")
    yield s
    s.stop_and_check()


def post(s, path, body, headers=None):
    r = httpx.post(s.url(path), json=body, headers=headers or {}, timeout=120)
    assert r.status_code == 200, r.text
    return r


def chat(s, headers=None, **kw):
    body = {"messages": MSG, "max_tokens": 16, "temperature": 0, **kw}
    return post(s, "/v1/chat/completions", body, headers)


def test_hit_same_answer(cached):
    a = chat(cached, max_tokens=17)
    b = chat(cached, max_tokens=17)
    assert a.headers["X-Ryot-Cache"] == "miss"
    assert b.headers["X-Ryot-Cache"] == "hit-l1"
    ja, jb = a.json(), b.json()
    assert ja["choices"] == jb["choices"]
    assert ja["usage"] == jb["usage"]
    assert ja["id"] != jb["id"]  # a fresh response object
    assert set(ja) == set(jb)


def test_hit_is_fast_and_skips_the_engine(cached):
    chat(cached, max_tokens=18)
    m0 = httpx.get(cached.url("/metrics")).text
    t0 = time.perf_counter()
    r = chat(cached, max_tokens=18)
    dt = time.perf_counter() - t0
    m1 = httpx.get(cached.url("/metrics")).text
    assert r.headers["X-Ryot-Cache"] == "hit-l1"
    gen_line = [l for l in m0.splitlines() if l.startswith("ryot_generation_tokens_total")]
    assert gen_line == [l for l in m1.splitlines() if l.startswith("ryot_generation_tokens_total")]
    assert dt < 0.5, dt  # generous: a miss of 18 tokens takes longer on any machine


def test_stream_hit_matches(cached):
    plain = chat(cached, max_tokens=19).json()
    for _ in range(2):  # the first stream may hit the plain answer's entry: same key
        with httpx.stream("POST", cached.url("/v1/chat/completions"), timeout=120,
                          json={"messages": MSG, "max_tokens": 19, "temperature": 0, "stream": True,
                                "stream_options": {"include_usage": True}}) as r:
            assert r.status_code == 200
            assert r.headers["X-Ryot-Cache"] == "hit-l1"
            assert r.headers["content-type"].startswith("text/event-stream")
            events = list(sse_events(r))
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert text == plain["choices"][0]["message"]["content"]
        fin = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
        assert fin == [plain["choices"][0]["finish_reason"]]
        assert chunks[-1]["usage"] == plain["usage"]


def test_stream_miss_is_stored(cached):
    body = {"messages": MSG, "max_tokens": 21, "temperature": 0, "stream": True}
    with httpx.stream("POST", cached.url("/v1/chat/completions"), json=body, timeout=120) as r:
        assert r.headers["X-Ryot-Cache"] == "miss"
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                       for e in sse_events(r) if e != "[DONE]")
    b = chat(cached, max_tokens=21)
    assert b.headers["X-Ryot-Cache"] == "hit-l1"
    assert b.json()["choices"][0]["message"]["content"] == text


def test_nondeterministic_bypasses(cached):
    for _ in range(2):
        r = chat(cached, temperature=1.0)
        assert r.headers["X-Ryot-Cache"] == "miss"
    # a seed makes it deterministic: cached
    chat(cached, temperature=1.0, seed=5)
    assert chat(cached, temperature=1.0, seed=5).headers["X-Ryot-Cache"] == "hit-l1"
    assert chat(cached, temperature=1.0, seed=6).headers["X-Ryot-Cache"] == "miss"
    # logprobs are not stored
    chat(cached, logprobs=True)
    assert chat(cached, logprobs=True).headers["X-Ryot-Cache"] == "miss"


def test_echo_bypasses(cached):
    body = {"prompt": "Once upon a time", "max_tokens": 4, "temperature": 0, "echo": True}
    a = post(cached, "/v1/completions", body)
    b = post(cached, "/v1/completions", body)
    assert b.headers["X-Ryot-Cache"] == "miss"
    assert a.json()["choices"][0]["text"] == b.json()["choices"][0]["text"]
    assert b.json()["choices"][0]["text"].startswith("Once upon a time")


def test_constrained_hit_keeps_the_constraint(cached):
    rf = {"type": "json_schema", "json_schema": {"schema": {"type": "object", "properties": {"a": {"type": "integer"}},
                                                            "required": ["a"]}}}
    a = chat(cached, max_tokens=24, response_format=rf)
    b = chat(cached, max_tokens=24, response_format=rf)
    assert b.headers["X-Ryot-Cache"] == "hit-l1"
    assert a.json()["choices"][0]["message"]["content"] == b.json()["choices"][0]["message"]["content"]
    # another schema is another key
    rf2 = {"type": "json_schema", "json_schema": {"schema": {"type": "object", "properties": {"b": {"type": "integer"}},
                                                             "required": ["b"]}}}
    assert chat(cached, max_tokens=24, response_format=rf2).headers["X-Ryot-Cache"] == "miss"


@pytest.mark.parametrize("change", [{"max_tokens": 15}, {"stop": ["e"]}, {"n": 2}, {"top_k": 3},
                                    {"messages": [{"role": "user", "content": "Name three animals."}]},
                                    {"response_format": {"type": "json_object"}},
                                    {"grammar": 'root ::= "yes" | "no"'}])
def test_any_change_misses(cached, change):
    # a base request of this case's own (the seed is part of the key), stored
    # now: one shared by all cases could expire (--cache-ttl 3) between them
    seed = 1 + zlib.crc32(repr(change).encode()) % 1000000
    base = {"max_tokens": 14, "seed": seed}
    assert chat(cached, **base).headers["X-Ryot-Cache"] == "miss"
    assert chat(cached, **base).headers["X-Ryot-Cache"] == "hit-l1"
    assert chat(cached, **{**base, **change}).headers["X-Ryot-Cache"] == "miss"


def test_cache_control(cached):
    chat(cached, max_tokens=22, headers={"Cache-Control": "no-store"})
    assert chat(cached, max_tokens=22).headers["X-Ryot-Cache"] == "miss"  # was not stored; now it is
    assert chat(cached, max_tokens=22, headers={"Cache-Control": "no-cache"}).headers["X-Ryot-Cache"] == "miss"
    assert chat(cached, max_tokens=22).headers["X-Ryot-Cache"] == "hit-l1"


def test_ttl(cached):
    chat(cached, max_tokens=23)
    assert chat(cached, max_tokens=23).headers["X-Ryot-Cache"] == "hit-l1"
    time.sleep(3.2)
    assert chat(cached, max_tokens=23).headers["X-Ryot-Cache"] == "miss"


def test_completions_and_n(cached):
    body = {"prompt": ["Once upon a time", "The sky is"], "max_tokens": 8, "temperature": 0, "n": 2}
    a = post(cached, "/v1/completions", body)
    b = post(cached, "/v1/completions", body)
    assert (a.headers["X-Ryot-Cache"], b.headers["X-Ryot-Cache"]) == ("miss", "hit-l1")
    assert a.json()["choices"] == b.json()["choices"] and len(b.json()["choices"]) == 4
    assert a.json()["usage"] == b.json()["usage"]
    assert b.json()["object"] == "text_completion"


def test_off_by_default(http):
    r = http.post("/v1/chat/completions", json={"messages": MSG, "max_tokens": 4, "temperature": 0})
    r = http.post("/v1/chat/completions", json={"messages": MSG, "max_tokens": 4, "temperature": 0})
    assert r.headers["X-Ryot-Cache"] == "miss"


def test_metrics(cached):
    from conftest import metric_sum, parse_metrics
    m0 = parse_metrics(httpx.get(cached.url("/metrics")).text)
    chat(cached, max_tokens=24)
    chat(cached, max_tokens=24)
    m1 = parse_metrics(httpx.get(cached.url("/metrics")).text)
    hits = lambda m: sum(v for (n, labels), v in m.items() if n == "ryot_cache_requests_total" and 'result="hit"' in labels)
    assert hits(m1) - hits(m0) == 1
    assert metric_sum(m1, "ryot_cache_entries") >= 1
    assert 0 < metric_sum(m1, "ryot_cache_bytes") <= metric_sum(m1, "ryot_cache_capacity_bytes") == 16 << 20


def _stream_text(s, body, stop_after=None, running=None, may_close=None):
    """Streams body; returns (X-Ryot-Cache, text).  stop_after: close the
    connection after that many content chunks (first setting the event
    `running` and waiting for `may_close`)."""
    got, n = [], 0
    with httpx.stream("POST", s.url("/v1/chat/completions"), json={**body, "stream": True}, timeout=120) as r:
        state = r.headers["X-Ryot-Cache"]
        for e in sse_events(r):
            if e == "[DONE]":
                break
            c = json.loads(e)
            if c["choices"] and c["choices"][0]["delta"].get("content"):
                got.append(c["choices"][0]["delta"]["content"])
                n += 1
                if stop_after and n >= stop_after:
                    if running:
                        running.set()
                        may_close.wait(30)
                    break
    return state, "".join(got)


def test_coalescing(cached):
    import threading
    body = {"messages": [{"role": "user", "content": "Count from one to fifty."}], "max_tokens": 96,
            "temperature": 0, "ignore_eos": True}
    m0 = cached.metrics()
    out = [None] * 6
    barrier = threading.Barrier(len(out))

    def one(k):
        barrier.wait()
        out[k] = _stream_text(cached, body) if k % 2 else (
            lambda r: (r.headers["X-Ryot-Cache"], r.json()["choices"][0]["message"]["content"]))(
            post(cached, "/v1/chat/completions", body))

    ts = [threading.Thread(target=one, args=(k,)) for k in range(len(out))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    states = sorted(st for st, _ in out)
    assert states.count("miss") == 1, states
    assert states.count("coalesced") >= 3, states  # the rest arrive while it runs (or hit once it ended)
    assert set(states) <= {"miss", "coalesced", "hit-l1"}
    assert len({t for _, t in out}) == 1  # every reader got the same text
    m1 = cached.metrics()
    assert m1[("ryot_generation_tokens_total", "")] - m0[("ryot_generation_tokens_total", "")] == 96
    assert m1[("ryot_cache_coalesced_total", "")] - m0[("ryot_cache_coalesced_total", "")] == states.count("coalesced")


def test_leader_cancel_keeps_followers(cached):
    import threading
    body = {"messages": [{"role": "user", "content": "Count from fifty to one."}], "max_tokens": 300,
            "temperature": 0, "ignore_eos": True}
    res = {}
    running, may_close = threading.Event(), threading.Event()
    leader = threading.Thread(target=lambda: res.setdefault(
        "leader", _stream_text(cached, body, stop_after=2, running=running, may_close=may_close)))
    leader.start()
    assert running.wait(60)  # the leader is generating
    follower = threading.Thread(target=lambda: res.setdefault("follower", _stream_text(cached, body)))
    follower.start()
    time.sleep(0.3)  # the follower has joined (the job runs for seconds)
    may_close.set()  # the leader disconnects
    leader.join()
    follower.join()
    state, text = res["follower"]
    assert res["leader"][0] == "miss"
    assert state == "coalesced"
    # it ran to the end after the leader left, with the text a fresh generation gives
    fresh = chat(cached, max_tokens=300, messages=body["messages"], ignore_eos=True,
                 headers={"Cache-Control": "no-cache"}).json()["choices"][0]["message"]["content"]
    assert text == fresh and len(text) > 200
