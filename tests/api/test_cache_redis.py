"""The L2 response cache in a real redis-server (--redis): answers survive a
server restart (a second instance hits L2, then L1), records are zstd
records under ryot:cache:<key>, a corrupt record is a miss, and Redis
killed or restarted mid-test never fails or stalls a request."""

import time

import httpx
import pytest

from conftest import start_server
from redis_server import RedisServer

MSG = [{"role": "user", "content": "Name three colors."}]


@pytest.fixture()
def redis():
    r = RedisServer()
    yield r
    r.stop()


def chat(s, max_tokens=12, **kw):
    r = httpx.post(s.url("/v1/chat/completions"), timeout=120,
                   json={"messages": MSG, "max_tokens": max_tokens, "temperature": 0, **kw})
    assert r.status_code == 200, r.text
    return r


def serve(redis_url, *extra):
    return start_server("--ctx", "256", "--threads", "2", "--cache-mb", "8", "--redis", redis_url, *extra)


def test_shared_across_restart(redis):
    s = serve(redis.url)
    try:
        a = chat(s)
        assert a.headers["X-Ryot-Cache"] == "miss"
        keys = redis.command("KEYS", "ryot:cache:*")
        assert len(keys) == 1 and len(keys[0]) == len("ryot:cache:") + 64
        rec = redis.command("GET", keys[0])
        assert rec[:4] == b"RYC1" and rec[36 + 4:36 + 8] == b"\x28\xb5\x2f\xfd"  # a zstd frame follows the header
        assert 0 < redis.command("TTL", keys[0]) <= 3600
    finally:
        s.stop_and_check()
    s = serve(redis.url)  # a new process: empty L1
    try:
        b = chat(s)
        assert b.headers["X-Ryot-Cache"] == "hit-l2"
        assert b.json()["choices"] == a.json()["choices"] and b.json()["usage"] == a.json()["usage"]
        assert chat(s).headers["X-Ryot-Cache"] == "hit-l1"  # the L2 hit filled L1
        m = s.metrics()
        assert m[("ryot_cache_l2_requests_total", '{result="hit"}')] == 1
        assert m[("ryot_cache_redis_up", "")] == 1
    finally:
        s.stop_and_check()


def test_corrupt_record_is_a_miss(redis):
    s = serve(redis.url)
    try:
        a = chat(s, max_tokens=13)
        (key,) = redis.command("KEYS", "ryot:cache:*")
        good = redis.command("GET", key)
    finally:
        s.stop_and_check()
    bad = [b"junk", b"RYC2" + good[4:], good[:4] + bytes(32) + good[36:], good[:-3], good[:40] + b"\0" * (len(good) - 40)]
    for rec in bad:
        redis.command("SET", key, rec)
        s = serve(redis.url)
        try:
            r = chat(s, max_tokens=13)
            assert r.headers["X-Ryot-Cache"] == "miss"
            assert r.json()["choices"] == a.json()["choices"]
            assert s.metrics()[("ryot_cache_redis_corrupt_total", "")] == 1
        finally:
            s.stop_and_check()


def test_redis_down_and_back(redis):
    s = serve(redis.url)
    try:
        chat(s, max_tokens=14)
        port = redis.port
        redis.stop()
        # Redis gone: requests still answered, promptly (bounded timeouts, backoff)
        for k in range(3):
            t0 = time.monotonic()
            r = chat(s, max_tokens=15 + k)
            assert r.headers["X-Ryot-Cache"] == "miss"
            assert time.monotonic() - t0 < 10
        assert chat(s, max_tokens=14).headers["X-Ryot-Cache"] == "hit-l1"  # L1 still serves
        m = s.metrics()
        assert m[("ryot_cache_redis_errors_total", "")] >= 1
        assert m[("ryot_cache_redis_up", "")] == 0
        back = RedisServer(port)  # an empty Redis on the same port
        try:
            deadline = time.monotonic() + 15
            for k in range(1000):  # reconnect after the backoff; the store goes to the new Redis
                # a new body each time: a repeated one would be an L1 hit, never stored again
                chat(s, max_tokens=30 + k % 30, stop=[f"never{k}"])
                if back.command("KEYS", "ryot:cache:*"):
                    break
                assert time.monotonic() < deadline, "never reconnected"
                time.sleep(0.3)
            m = s.metrics()
            assert m[("ryot_cache_redis_up", "")] == 1
            assert m[("ryot_cache_redis_reconnects_total", "")] >= 1
        finally:
            back.stop()
    finally:
        s.stop_and_check()


def test_redis_only_without_l1(redis):
    s = start_server("--ctx", "256", "--threads", "2", "--redis", redis.url)
    try:
        assert chat(s, max_tokens=11).headers["X-Ryot-Cache"] == "miss"
        assert chat(s, max_tokens=11).headers["X-Ryot-Cache"] == "hit-l2"
    finally:
        s.stop_and_check()


def test_bad_redis_url():
    import subprocess

    from conftest import RYOT
    p = subprocess.run([RYOT, "serve", "--redis", "http://x", "--port", "0"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "redis://" in p.stderr
