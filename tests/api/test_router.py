"""`ryot route` against real processes: three `ryot serve` backends on free
ports (a tiny generated model with the default model's tokenizer and chat
template), a real redis-server for discovery, and the router.

Pass-through (chat, completions, streams, errors, merged /v1/models), no
backend (OpenAI-shaped 502/503), a client disconnect cancelling upstream,
kill -9 of a backend under load (every request answered or failed, none
hangs; new requests avoid it within 1 s; a restart rejoins), prefix affinity
seen in the backends' own prefix-cache counters, and Redis registration."""

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time

import httpx
import openai
import pytest

from conftest import RYOT, REPO, Server, model_path, parse_metrics, metric_sum
from redis_server import RedisServer, free_port

LISTEN_RE = re.compile(r"listening on http://([0-9.]+):([0-9]+)")
CTX = 4096


@pytest.fixture(scope="module")
def tiny_model():
    d = tempfile.mkdtemp(prefix="ryot-router-")
    path = os.path.join(d, "tiny-chat.gguf")
    subprocess.run([RYOT, "gen", "-o", path, "--preset", "tiny-llama", "--ctx", str(CTX), "--vocab-from",
                    model_path(), "--name", "tiny-chat"], check=True, capture_output=True)
    yield path
    os.unlink(path)
    os.rmdir(d)


def backend(model, port=None, *extra):
    args = ["-m", model, "--threads", "1", "--ctx", str(CTX), "--quiet", "--no-webui"]
    if port:
        args += ["--port", str(port)]
    return Server(*args, *extra)


class Router:
    """A running `ryot route` (stderr to a temporary file)."""

    def __init__(self, *args, wait_up=True):
        self.log = tempfile.NamedTemporaryFile(prefix="ryot-route-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([RYOT, "route", "--port", "0", *args], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)
        end = time.monotonic() + 30
        self.base_url = None
        while self.base_url is None:
            m = LISTEN_RE.search(self.log_text())
            if m:
                self.base_url = f"http://{m.group(1)}:{m.group(2)}"
            elif self.proc.poll() is not None or time.monotonic() > end:
                self.proc.kill()
                raise RuntimeError(f"ryot route did not start:\n{self.log_text()}")
            else:
                time.sleep(0.02)
        while wait_up and httpx.get(self.base_url + "/health", timeout=5).status_code != 200:
            assert time.monotonic() < end, f"the router never saw a healthy backend:\n{self.log_text()}"
            time.sleep(0.05)

    def log_text(self):
        with open(self.log.name, "r", encoding="utf-8", errors="replace") as f:
            return f.read()

    def url(self, path):
        return self.base_url + path

    def client(self, timeout=60):
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key="unused", max_retries=0, timeout=timeout)

    def metrics(self):
        r = httpx.get(self.url("/metrics"), timeout=10)
        assert r.status_code == 200
        return parse_metrics(r.text)

    def admin(self):
        r = httpx.get(self.url("/admin/backends"), timeout=10)
        assert r.status_code == 200
        return r.json()

    def stop_and_check(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = -9
        text = self.log_text()
        os.unlink(self.log.name)
        assert rc == 0, f"ryot route exited with {rc}:\n{text[-3000:]}"
        return text


@pytest.fixture(scope="module")
def backends(tiny_model):
    bs = [backend(tiny_model) for _ in range(3)]
    yield bs
    for b in bs:
        if not b.stopped:
            b.stop_and_check()


def chat_body(system, text, max_tokens=8, **kw):
    return {"model": "tiny-chat", "messages": [{"role": "system", "content": system},
                                               {"role": "user", "content": text}],
            "max_tokens": max_tokens, "temperature": 0, **kw}


def assert_openai_error(r, status):
    assert r.status_code == status, r.text
    e = r.json()["error"]
    assert set(e) == {"message", "type", "param", "code"} and e["message"]
    return e


def m_backend(metrics, name, url):
    return metrics.get((name, f'{{backend="{url}"}}'), 0.0)


# ---------------------------------------------------------------- pass-through

def test_passthrough(backends):
    r = Router(*sum((["--backend", b.base_url] for b in backends), []))
    try:
        c = r.client()
        # models: merged, listed once
        ids = [m.id for m in c.models.list().data]
        assert ids == ["tiny-chat"]
        assert httpx.get(r.url("/v1/models/tiny-chat")).json()["id"] == "tiny-chat"
        assert_openai_error(httpx.get(r.url("/v1/models/nope")), 404)
        # chat, the same answer streamed and not (greedy, same weights everywhere)
        msgs = [{"role": "user", "content": "Say something."}]
        full = c.chat.completions.create(model="tiny-chat", messages=msgs, max_tokens=12, temperature=0)
        assert full.usage.completion_tokens > 0
        chunks = list(c.chat.completions.create(model="tiny-chat", messages=msgs, max_tokens=12, temperature=0,
                                                stream=True))
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert text == full.choices[0].message.content
        assert chunks[-1].choices[0].finish_reason in ("stop", "length")
        comp = c.completions.create(model="tiny-chat", prompt="Once upon", max_tokens=5, temperature=0)
        assert comp.choices[0].text is not None and comp.usage.completion_tokens > 0
        # the router's headers say where a request went
        h = httpx.post(r.url("/v1/completions"), json={"prompt": "x", "max_tokens": 2})
        assert h.status_code == 200 and h.headers["x-ryot-backend"] in [b.base_url for b in backends]
        assert h.headers["x-ryot-route"] in ("prefix", "least_loaded")
        # backend errors pass through unchanged: bad JSON, bad field, no embedding model
        assert_openai_error(httpx.post(r.url("/v1/chat/completions"), content=b"{not json",
                                       headers={"Content-Type": "application/json"}), 400)
        e = assert_openai_error(httpx.post(r.url("/v1/chat/completions"), json={"messages": "nope"}), 400)
        assert e["param"] == "messages"
        e = assert_openai_error(httpx.post(r.url("/v1/embeddings"), json={"input": "x"}), 404)
        assert e["code"] == "model_not_found"
        tok = httpx.post(r.url("/tokenize"), json={"content": "hello world"})
        assert tok.status_code == 200 and tok.json()["tokens"]
        # the router's own errors
        e = assert_openai_error(httpx.get(r.url("/v1/nothing")), 404)
        assert e["code"] == "not_found"
        assert_openai_error(httpx.get(r.url("/v1/chat/completions")), 405)
        # metrics and admin
        m = r.metrics()
        assert metric_sum(m, "ryot_router_requests_total") >= 8
        assert m[("ryot_router_backends_up", "")] == 3
        adm = r.admin()
        assert adm["policy"] == "prefix" and len(adm["backends"]) == 3
        assert all(b["state"] == "closed" and b["models"] == ["tiny-chat"] for b in adm["backends"])
    finally:
        r.stop_and_check()


def test_no_backend():
    dead = f"http://127.0.0.1:{free_port()}"
    r = Router("--backend", dead, "--probe-ms", "50", wait_up=False)
    try:
        end = time.monotonic() + 5  # a listed backend is tried until a probe or a request fails
        while httpx.get(r.url("/health")).status_code != 503:
            assert time.monotonic() < end
            time.sleep(0.05)
        assert_openai_error(httpx.get(r.url("/health")), 503)
        body = chat_body("s", "u")
        first = httpx.post(r.url("/v1/chat/completions"), json=body, timeout=10)
        assert first.status_code in (502, 503)
        assert_openai_error(first, first.status_code)
        e = assert_openai_error(httpx.post(r.url("/v1/chat/completions"), json=body, timeout=10), 503)
        assert e["code"] == "no_backend" and e["type"] == "server_error"
        assert_openai_error(httpx.get(r.url("/v1/models")), 503)
    finally:
        r.stop_and_check()


def test_bad_flags():
    for args in (["--backend", "localhost:1"], [], ["--policy", "random", "--backend", "http://127.0.0.1:1"],
                 ["--redis", "http://x"]):
        p = subprocess.run([RYOT, "route", "--port", "0", *args], capture_output=True, text=True, timeout=10)
        assert p.returncode != 0 and "ryot route:" in p.stderr


# ---------------------------------------------------------------- streaming

def running(server):
    return metric_sum(server.metrics(), "ryot_requests_running")


def test_stream_unbuffered_and_disconnect_cancels(backends):
    b = backends[0]
    r = Router("--backend", b.base_url)
    try:
        before = b.metrics().get(("ryot_request_success_total", '{finished_reason="cancelled"}'), 0)
        body = chat_body("You write long stories.", "Go on.", max_tokens=3000, ignore_eos=True, stream=True)
        with httpx.Client(timeout=30) as h:
            with h.stream("POST", r.url("/v1/chat/completions"), json=body) as resp:
                assert resp.status_code == 200
                assert resp.headers["content-type"].startswith("text/event-stream")
                lines = resp.iter_lines()
                got = 0
                for line in lines:
                    if line.startswith("data: "):
                        got += 1
                        if got == 3:
                            break
                # chunks arrive while the backend is still generating: not buffered
                assert running(b) >= 1
        # the client left: the backend cancels the sequence soon
        end = time.monotonic() + 10
        while time.monotonic() < end:
            m = b.metrics()
            if m.get(("ryot_request_success_total", '{finished_reason="cancelled"}'), 0) > before \
                    and metric_sum(m, "ryot_requests_running") == 0:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the backend kept generating after the client left")
        m = r.metrics()
        assert m[("ryot_router_responses_total", f'{{backend="{b.base_url}",outcome="cancelled"}}')] >= 1
    finally:
        r.stop_and_check()


# ---------------------------------------------------------------- failures

def test_kill_backend_under_load(tiny_model):
    port = free_port()
    bs = [backend(tiny_model), backend(tiny_model), backend(tiny_model, port)]
    victim = bs[2]
    r = Router(*sum((["--backend", b.base_url] for b in bs), []), "--probe-ms", "100", "--policy", "least-loaded")
    results = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(i):
        with httpx.Client(timeout=60) as h:
            n = 0
            while not stop.is_set():
                n += 1
                stream = (i + n) % 3 == 0
                body = chat_body("You are terse.", f"worker {i} request {n}", max_tokens=8, stream=stream)
                try:
                    if stream:
                        done = False
                        with h.stream("POST", r.url("/v1/chat/completions"), json=body) as resp:
                            status = resp.status_code
                            for line in resp.iter_lines():
                                done |= line == "data: [DONE]"
                        res = ("stream", status, done)
                    else:
                        resp = h.post(r.url("/v1/chat/completions"), json=body)
                        ok = resp.status_code == 200 and resp.json()["choices"][0]["message"] is not None
                        if not ok:
                            assert_openai_error(resp, resp.status_code)
                        res = ("plain", resp.status_code, ok)
                except httpx.HTTPError as e:  # a stream cut by the backend's death: an error, not a hang
                    res = ("error", type(e).__name__, False)
                with lock:
                    results.append(res)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.5)
        victim.proc.kill()  # kill -9
        t_kill = time.monotonic()
        victim.proc.wait()
        victim.stopped = True
        time.sleep(1.0)
        sent_before = m_backend(r.metrics(), "ryot_router_requests_total", victim.base_url)
        time.sleep(1.0)
        # new requests (1 s after the kill on) avoid it
        assert m_backend(r.metrics(), "ryot_router_requests_total", victim.base_url) == sent_before
        assert time.monotonic() - t_kill < 5
        # restart on the same port: it rejoins
        bs[2] = backend(tiny_model, port)
        end = time.monotonic() + 10
        while m_backend(r.metrics(), "ryot_router_requests_total", victim.base_url) == sent_before:
            assert time.monotonic() < end, "the restarted backend got no requests"
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(timeout=90)
            assert not t.is_alive(), "a client hung"
        plain = [x for x in results if x[0] == "plain"]
        streams = [x for x in results if x[0] == "stream"]
        assert len(plain) > 6 and len(streams) > 2
        # every non-streaming request got its answer: failures before any byte were retried
        assert all(x[1] == 200 and x[2] for x in plain), [x for x in plain if not x[2]]
        # streams: complete, or (cut by the kill) an error; never a 200 that ends
        # quietly without its [DONE]
        assert not [x for x in streams if x[1] == 200 and not x[2]], streams
        m = r.metrics()
        assert m[("ryot_router_breaker_opens_total", f'{{backend="{victim.base_url}"}}')] >= 1
        state = {b["url"]: b["state"] for b in r.admin()["backends"]}
        assert state[victim.base_url] == "closed"
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=90)
        r.stop_and_check()
        for b in bs:
            if not b.stopped:
                b.stop_and_check()


# ---------------------------------------------------------------- prefix affinity

def prefix_hits(servers):
    return sum(metric_sum(s.metrics(), "ryot_prefix_cache_hits_total") for s in servers)


def run_groups(r, tag, groups=3, per_group=4):
    """Sequential requests: groups sharing a long system prompt each; returns
    the backends each group went to."""
    where = []
    with httpx.Client(timeout=60) as h:
        for g in range(groups):
            system = f"[{tag} {g}] " + " ".join(f"rule {k}: answer briefly and politely." for k in range(60))
            seen = []
            for u in range(per_group):
                resp = h.post(r.url("/v1/chat/completions"), json=chat_body(system, f"question {u}?", max_tokens=2))
                assert resp.status_code == 200, resp.text
                seen.append(resp.headers["x-ryot-backend"])
            where.append(seen)
    return where


def test_prefix_affinity_beats_round_robin(backends):
    urls = sum((["--backend", b.base_url] for b in backends), [])
    r = Router(*urls, "--policy", "prefix")
    try:
        h0 = prefix_hits(backends)
        where = run_groups(r, "prefix")
        prefix_gain = prefix_hits(backends) - h0
        # each group stays on one backend, and the groups spread out
        assert all(len(set(w)) == 1 for w in where), where
        assert len({w[0] for w in where}) >= 2, where
        m = r.metrics()
        assert metric_sum({k: v for k, v in m.items() if 'reason="prefix"' in k[1]},
                          "ryot_router_decisions_total") >= 9
    finally:
        r.stop_and_check()
    r = Router(*urls, "--policy", "round-robin")
    try:
        h0 = prefix_hits(backends)
        where = run_groups(r, "round-robin")
        rr_gain = prefix_hits(backends) - h0
        assert all(len(set(w)) == 3 for w in where), where
    finally:
        r.stop_and_check()
    # prefix: 3 of 4 requests per group hit; round-robin over 3 backends: 1 of 4
    assert prefix_gain > 2 * rr_gain, (prefix_gain, rr_gain)


# ---------------------------------------------------------------- Redis discovery

def test_redis_discovery(tiny_model):
    redis = RedisServer()
    bs = []
    r = None
    try:
        reg = ["--register", redis.url, "--register-ttl-ms", "900"]
        bs = [backend(tiny_model, None, *reg), backend(tiny_model, None, *reg)]
        r = Router("--redis", redis.url, "--probe-ms", "100")
        end = time.monotonic() + 10
        while httpx.get(r.url("/health")).json().get("backends_up") != 2:
            assert time.monotonic() < end, r.log_text()
            time.sleep(0.1)
        assert sorted(b["url"] for b in r.admin()["backends"]) == sorted(b.base_url for b in bs)
        c = r.client()
        assert c.completions.create(model="tiny-chat", prompt="hi", max_tokens=2).usage.completion_tokens > 0
        # a clean stop deletes the key; kill -9 lets it expire (TTL 0.9 s)
        gone_clean, gone_dead = bs
        gone_clean.stop_and_check()
        gone_dead.proc.kill()
        gone_dead.proc.wait()
        gone_dead.stopped = True
        end = time.monotonic() + 5
        while any(b["active"] for b in r.admin()["backends"]):
            assert time.monotonic() < end, r.admin()
            time.sleep(0.1)
        assert_openai_error(httpx.post(r.url("/v1/completions"), json={"prompt": "x", "max_tokens": 2}), 503)
        # scale out: a new backend needs nothing but its registration
        bs.append(backend(tiny_model, None, *reg))
        end = time.monotonic() + 10
        while True:
            resp = httpx.post(r.url("/v1/completions"), json={"prompt": "x", "max_tokens": 2})
            if resp.status_code == 200:
                assert resp.headers["x-ryot-backend"] == bs[-1].base_url
                break
            assert time.monotonic() < end, r.log_text()
            time.sleep(0.1)
        assert "registered" in r.log_text()
    finally:
        if r:
            r.stop_and_check()
        for b in bs:
            if not b.stopped:
                b.stop_and_check()
        redis.stop()


# ---------------------------------------------------------------- canary

def test_canary_split_sticky_and_rollback(tiny_model):
    """Baseline: two tiny-model backends.  Canary group: the default (much
    larger) model under the same name, so its first bytes come far later;
    the split rolls back to 0% on the p99 first-byte margin."""
    base = [backend(tiny_model), backend(tiny_model)]
    slow = Server("-m", model_path(), "--alias", "tiny-chat", "--threads", "1", "--ctx", "1024", "--quiet",
                  "--no-webui")
    urls = sum((["--backend", b.base_url] for b in base), []) + ["--backend", f"canary={slow.base_url}"]
    # a window too long to close here: assignment only
    r = Router(*urls, "--canary", "tiny-chat=canary:50", "--canary-window", "3600", "--policy", "least-loaded")
    r2 = None
    try:
        adm = r.admin()
        assert adm["splits"][0]["percent"] == 50 and adm["splits"][0]["group"] == "canary"
        arms = {}
        with httpx.Client(timeout=60) as h:
            for rep in range(2):
                for u in range(16):
                    body = chat_body("Be brief.", "Hi", max_tokens=6, user=f"user-{u}")
                    resp = h.post(r.url("/v1/chat/completions"), json=body)
                    assert resp.status_code == 200, resp.text
                    arm, where = resp.headers["x-ryot-arm"], resp.headers["x-ryot-backend"]
                    assert (where == slow.base_url) == (arm == "canary"), (arm, where)
                    assert arms.setdefault(u, arm) == arm  # sticky
            n_canary = sum(a == "canary" for a in arms.values())
            assert 2 <= n_canary <= 14, arms
            # the header works as the key too
            a1 = h.post(r.url("/v1/completions"), json={"model": "tiny-chat", "prompt": "x", "max_tokens": 2},
                        headers={"X-Ryot-User": "user-3"}).headers["x-ryot-arm"]
            assert a1 == arms[3]
            assert r.admin()["splits"][0]["percent"] == 50
        r.stop_and_check()
        # a short window: the canary is much slower to its first byte, rolled back within a window or two
        r = r2 = Router(*urls, "--canary", "tiny-chat=canary:50", "--canary-window", "6", "--canary-min-requests",
                        "3", "--canary-ttft-margin", "1.0", "--policy", "least-loaded")
        with httpx.Client(timeout=60) as h:
            # 12 tokens: the first (whole) body byte takes ~10x longer on the canary; each
            # round sends both arms enough requests (the users' arms are known from above)
            base_users = [u for u, a in arms.items() if a == "baseline"][:6]
            canary_users = [u for u, a in arms.items() if a == "canary"][:3]
            end = time.monotonic() + 40
            while r.metrics()[("ryot_router_canary_percent", '{model="tiny-chat",group="canary"}')] != 0:
                assert time.monotonic() < end, json.dumps(r.admin()["splits"])
                for u in base_users + canary_users:
                    h.post(r.url("/v1/chat/completions"), json=chat_body("Be brief.", "Hi", max_tokens=12,
                                                                          user=f"user-{u}", ignore_eos=True))
            split = r.admin()["splits"][0]
            assert split["rolled_back"] and "p99" in split["reason"], split
            assert split["arms"]["canary"]["requests"] > 0 and split["arms"]["baseline"]["requests"] > 0
            # from now on every user is on the baseline
            for u in range(16):
                resp = h.post(r.url("/v1/chat/completions"), json=chat_body("Be brief.", "Hi", max_tokens=2,
                                                                            user=f"user-{u}"))
                assert resp.headers["x-ryot-arm"] == "baseline" and resp.headers["x-ryot-backend"] != slow.base_url
        m = r.metrics()
        assert m[("ryot_router_canary_rollbacks_total", "")] == 1
        assert "rolled back to 0%" in r.log_text()
    finally:
        if r.proc.poll() is None:
            r.stop_and_check()
        for b in base + [slow]:
            b.stop_and_check()


def test_canary_bad_spec():
    p = subprocess.run([RYOT, "route", "--backend", "http://127.0.0.1:1", "--canary", "m=g:150"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "PERCENT" in p.stderr
