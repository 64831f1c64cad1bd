"""The serving core seen from outside: cancellation frees the sequence and
its KV blocks, batching does not change greedy outputs, a shared prompt
prefix is reused (cached tokens, hits, time to first token), and priority
tiers order admission."""

import threading
import time
import uuid

import httpx
import openai
import pytest

from conftest import Threads, metric_sum, start_server

LONG = [{"role": "user", "content": "Write a very long essay about the history of bread."}]
KV_BLOCK = 64  # the server's default --kv-block-size


def wait_idle(server, timeout=10.0):
    """Polls /metrics until nothing runs or waits and no KV block is held; returns the metrics."""
    end = time.monotonic() + timeout
    while True:
        m = server.metrics()
        busy = (metric_sum(m, "ryot_requests_running"), metric_sum(m, "ryot_requests_waiting"),
                metric_sum(m, "ryot_kv_blocks_used"))
        if busy == (0, 0, 0):
            return m
        if time.monotonic() > end:
            raise AssertionError(f"still busy after {timeout} s: running, waiting, kv used = {busy}")
        time.sleep(0.05)


def stream_all(client, req, topics, timeout=300):
    """Streams the completion req(t) for every topic at once; topic -> text
    (or the exception its thread raised)."""

    def streamed(t):
        with client.completions.create(stream=True, **req(t)) as st:
            return "".join(x.text for ch in st for x in ch.choices)

    th = Threads()
    for t in topics:
        th.start(t, streamed, t)
    return th.join(timeout=timeout)


def ended(m, reason):
    return m[("ryot_request_success_total", f'{{finished_reason="{reason}"}}')]


# ---------------------------------------------------------------- cancellation

def test_cancel_stream_frees_kv(server, client, model_id):
    before = wait_idle(server)
    stream = client.chat.completions.create(model=model_id, messages=LONG, max_tokens=500, stream=True,
                                            extra_body={"ignore_eos": True})
    n = 0
    for ch in stream:
        if ch.choices and ch.choices[0].delta.content:
            n += 1
            if n == 3:
                break
    m = server.metrics()
    assert metric_sum(m, "ryot_requests_running") == 1
    assert metric_sum(m, "ryot_kv_blocks_used") >= 1
    stream.close()
    t0 = time.monotonic()
    after = wait_idle(server, timeout=5.0)
    assert time.monotonic() - t0 < 5.0
    assert ended(after, "cancelled") == ended(before, "cancelled") + 1
    generated = after[("ryot_generation_tokens_total", "")] - before[("ryot_generation_tokens_total", "")]
    assert generated < 500, "the cancelled stream kept generating"


def test_cancel_blocking_request_on_disconnect(server, model_id):
    before = wait_idle(server)
    impatient = server.client(timeout=1.5)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model=model_id, messages=LONG, max_tokens=1500,
                                          extra_body={"ignore_eos": True})
    after = wait_idle(server, timeout=5.0)
    assert ended(after, "cancelled") == ended(before, "cancelled") + 1


def test_cancel_one_of_many_keeps_others(server, client, model_id):
    """Closing one stream does not disturb another one running beside it."""
    kw = dict(model=model_id, messages=[{"role": "user", "content": "Count from one to twenty in words."}],
              max_tokens=16, temperature=0, extra_body={"ignore_eos": True})
    alone = client.chat.completions.create(**kw).choices[0].message.content
    victim = client.chat.completions.create(model=model_id, messages=LONG, max_tokens=500, stream=True,
                                            extra_body={"ignore_eos": True})
    next(iter(victim))
    th = Threads()
    th.start("kept", lambda: client.chat.completions.create(**kw).choices[0].message.content)
    time.sleep(0.3)
    victim.close()
    assert th.join()["kept"] == alone
    wait_idle(server, timeout=5.0)


# ---------------------------------------------------------------- batch invariance

TOPICS = ["cats", "the ocean", "mountains", "coffee", "trains", "the moon", "libraries", "bicycles", "rain",
          "chess", "volcanoes", "bread", "music", "gardens", "bridges", "winter", "owls", "deserts", "clocks",
          "rivers", "robots", "honey", "lighthouses", "maps", "snow", "tea", "forests", "kites", "islands",
          "glass", "thunder", "paper"]


def test_batch_invariance(server, client, model_id):
    """32 concurrent greedy streams produce exactly what each produces alone
    (short prompts: the prefills of some overlap the decodes of others)."""
    assert len(TOPICS) == 32

    def req(topic):
        return dict(model=model_id, prompt=f"Here is one sentence about {topic}:", max_tokens=16, temperature=0,
                    extra_body={"ignore_eos": True})

    t0 = time.monotonic()
    solo = {t: client.completions.create(**req(t)).choices[0].text for t in TOPICS}
    t1 = time.monotonic()

    res = stream_all(client, req, TOPICS)
    print(f"batch invariance: 32 alone {t1 - t0:.1f} s, 32 together {time.monotonic() - t1:.1f} s")
    errors = {t: r for t, r in res.items() if isinstance(r, BaseException)}
    assert not errors, errors
    diff = {t: (solo[t], res[t]) for t in TOPICS if res[t] != solo[t]}
    assert not diff, f"{len(diff)} of 32 differ when batched: {diff}"
    wait_idle(server)


# ---------------------------------------------------------------- prefix reuse

def test_prefix_reuse(server, client, model_id, http):
    """A long shared system prompt is prefilled once: the second request gets
    it from the prefix cache (cached_tokens, hit counter) and its first token
    sooner."""
    nonce = uuid.uuid4().hex  # first in the prompt: nothing before this test can share a block with it
    rules = " ".join(f"Rule {i}: always answer politely, mention the number {i * 7 % 101}, and never use the "
                     f"letter combination {chr(97 + i % 26)}{chr(98 + i % 25)} twice." for i in range(24))
    system = f"Session {nonce}. You are a careful assistant. {rules}"

    def msgs(q):
        return [{"role": "system", "content": system}, {"role": "user", "content": q}]

    q1, q2 = "What is rule 3 about?", "Summarize rule 41 briefly."
    t1 = http.post("/tokenize", json={"messages": msgs(q1), "add_special": True}).json()["tokens"]
    t2 = http.post("/tokenize", json={"messages": msgs(q2), "add_special": True}).json()["tokens"]
    common = next((i for i, (a, b) in enumerate(zip(t1, t2)) if a != b), min(len(t1), len(t2)))
    assert common >= 600, f"shared prefix of only {common} tokens"
    assert len(t2) < 2048 - 8
    shared_blocks = min(common, len(t2) - 1) // KV_BLOCK * KV_BLOCK

    def run(q):
        t0 = time.monotonic()
        ttft, usage = None, None
        with client.chat.completions.create(model=model_id, messages=msgs(q), max_tokens=2, temperature=0,
                                            stream=True, stream_options={"include_usage": True}) as s:
            for ch in s:
                if ttft is None and ch.choices and (ch.choices[0].delta.content or ch.choices[0].finish_reason):
                    ttft = time.monotonic() - t0
                if ch.usage:
                    usage = ch.usage
        return ttft, usage

    wait_idle(server)
    m0 = server.metrics()
    ttft1, u1 = run(q1)
    m1 = server.metrics()
    ttft2, u2 = run(q2)
    m2 = server.metrics()
    hits = lambda m: m[("ryot_prefix_cache_hits_total", "")]  # noqa: E731
    print(f"prefix reuse: {len(t1)}/{len(t2)} prompt tokens, {common} shared, ttft {ttft1:.3f} s -> {ttft2:.3f} s, "
          f"cached {u2.prompt_tokens_details.cached_tokens}")
    assert u1.prompt_tokens == len(t1) and u2.prompt_tokens == len(t2)
    assert u1.prompt_tokens_details.cached_tokens == 0
    assert hits(m1) - hits(m0) == 0
    cached = u2.prompt_tokens_details.cached_tokens
    assert shared_blocks <= cached <= common, (cached, shared_blocks, common)
    assert hits(m2) - hits(m1) >= shared_blocks
    # ~650 prompt tokens to prefill against a few dozen: a wide margin even on a loaded machine
    assert ttft2 < ttft1, f"first token after {ttft2:.3f} s with the prefix cached, {ttft1:.3f} s without"


# ---------------------------------------------------------------- priority

@pytest.fixture(scope="module")
def four_slots():
    # ageing off (60 s per tier) so that only the tiers order admission here
    s = start_server("--max-running", "4", "--ctx", "1024", "--threads", "2", "--age-ms", "60000")
    yield s
    s.stop_and_check()


def test_priority_critical_first(four_slots):
    """With every slot busy and 8 background requests waiting, a critical
    request gets its first token before a background request sent at the
    same moment (same prompt and length, so shortest-job-first cannot
    order them)."""
    s = four_slots
    client = s.client()
    mid = client.models.list().data[0].id
    body = dict(model=mid, prompt="Once upon a time, in a quiet village,", max_tokens=20, temperature=0)
    stop = threading.Event()

    def background():
        with client.completions.create(stream=True, **body, extra_body={
                "ignore_eos": True, "priority": "background"}) as st:
            for _ in st:
                if stop.is_set():
                    break

    bg = Threads()
    for i in range(12):
        bg.start(i, background)
    end = time.monotonic() + 60
    while True:
        m = s.metrics()
        running = m[("ryot_requests_running", '{tier="background"}')]
        waiting = m[("ryot_requests_waiting", '{tier="background"}')]
        if running == 4 and waiting == 8:
            break
        assert time.monotonic() < end, f"never 4 running + 8 waiting (running {running}, waiting {waiting})"
        time.sleep(0.01)

    def probe(tier, t0):
        with client.completions.create(stream=True, **body, extra_body={"ignore_eos": True, "priority": tier}) as st:
            for ch in st:
                if ch.choices and ch.choices[0].text:
                    return time.monotonic() - t0
        raise AssertionError(f"the {tier} probe produced no text")

    probes = Threads()
    t0 = time.monotonic()
    probes.start("critical", probe, "critical", t0)
    probes.start("background", probe, "background", t0)
    res = probes.join(timeout=180)
    stop.set()
    bg.join(timeout=120)
    crit, back = res["critical"], res["background"]
    assert not isinstance(crit, BaseException), crit
    assert not isinstance(back, BaseException), back
    print(f"priority: first token after {crit:.2f} s (critical), {back:.2f} s (background)")
    # critical waits for one slot; background for the 8 queued before it (two more rounds)
    assert crit < back, f"critical first token after {crit:.2f} s, background after {back:.2f} s"
    assert crit < 0.75 * back, f"critical {crit:.2f} s is not clearly ahead of background {back:.2f} s"
    m = s.metrics()
    assert m[("ryot_tier_target_met_total", '{tier="critical"}')] + \
        m[("ryot_tier_target_missed_total", '{tier="critical"}')] == 1
    wait_idle(s, timeout=30)


def test_priority_field_validation(four_slots):
    c = four_slots.client()
    mid = c.models.list().data[0].id
    for p in ("critical", "high", "low", 4, "3"):
        r = c.completions.create(model=mid, prompt="Hi", max_tokens=1, extra_body={"priority": p})
        assert r.choices
    r = httpx.post(four_slots.url("/v1/chat/completions"), timeout=30,
                   json={"messages": [{"role": "user", "content": "Hi"}], "priority": 5})
    assert r.status_code == 400


def test_cancel_while_queued(server):
    """Requests that give up while waiting for a slot leave the queue."""
    s = start_server("--max-running", "1", "--ctx", "1024", "--threads", "2")
    try:
        long = {"prompt": "Once upon a time", "max_tokens": 1000, "ignore_eos": True, "stream": True}
        with httpx.stream("POST", s.url("/v1/completions"), json=long, timeout=60) as r:
            lines = r.iter_lines()
            next(lines)
            for stream in (True, False):
                with pytest.raises(httpx.TimeoutException):
                    httpx.post(s.url("/v1/completions"), json={"prompt": "Hi", "max_tokens": 5, "stream": stream},
                               timeout=0.5)
            end = time.monotonic() + 5
            while metric_sum(s.metrics(), "ryot_requests_waiting") != 0:
                assert time.monotonic() < end, "the abandoned requests stayed in the queue"
                time.sleep(0.05)
            assert metric_sum(s.metrics(), "ryot_requests_running") == 1
            del lines
        m = wait_idle(s, timeout=5.0)
        assert ended(m, "cancelled") == 3
    finally:
        s.stop_and_check()


def test_preemption_keeps_outputs(server):
    """With too few KV blocks for everyone, sequences are preempted and
    recomputed, and each greedy text is still what it is alone."""
    # 8 blocks of 16 positions; each sequence needs 3 (5 prompt + 40 generated positions), four need 12
    s = start_server("--kv-blocks", "8", "--kv-block-size", "16", "--ctx", "128", "--threads", "2",
                     "--max-running", "8")
    try:
        c = s.client()
        mid = c.models.list().data[0].id
        topics = ["cats", "the sea", "space", "trains"]

        def req(t):
            return dict(model=mid, prompt=f"A story about {t}:", max_tokens=40, temperature=0,
                        extra_body={"ignore_eos": True})

        solo = {t: c.completions.create(**req(t)).choices[0].text for t in topics}

        res = stream_all(c, req, topics)
        m = wait_idle(s, timeout=10)
        assert m[("ryot_preemptions_total", "")] >= 1, "the test did not cause a preemption"
        diff = {t: (solo[t], res[t]) for t in topics if res[t] != solo[t]}
        assert not diff, diff
    finally:
        s.stop_and_check()
