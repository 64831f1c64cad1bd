"""SIGTERM: running streams finish (or are cut after --shutdown-timeout),
new requests are refused, and the process exits 0."""

import signal
import time

import httpx
import openai
import pytest

from conftest import assert_openai_error, start_server

LONG = [{"role": "user", "content": "Write a very long essay about the history of bread."}]


def first_content(stream):
    for ch in stream:
        if ch.choices and ch.choices[0].delta.content:
            return ch.choices[0].delta.content
    raise AssertionError("the stream ended before any content")


def test_sigterm_lets_running_stream_finish():
    s = start_server("--ctx", "512", "--threads", "2", "--shutdown-timeout", "60")
    try:
        client = s.client()
        mid = client.models.list().data[0].id
        # a connection opened before the signal stays open while the server drains
        keep = httpx.Client(base_url=s.base_url, timeout=30)
        assert keep.get("/health").status_code == 200
        stream = client.chat.completions.create(model=mid, messages=LONG, max_tokens=40, stream=True,
                                                stream_options={"include_usage": True},
                                                extra_body={"ignore_eos": True})
        text = first_content(stream)
        s.signal(signal.SIGTERM)
        time.sleep(0.3)
        # new work is refused while draining: 503 on an open connection, or no connection at all
        try:
            r = keep.post("/v1/chat/completions", json={"messages": LONG, "max_tokens": 2})
            assert_openai_error(r, 503, code="service_unavailable")
        except httpx.TransportError:
            pass
        finish, usage = None, None
        for ch in stream:
            for c in ch.choices:
                text += c.delta.content or ""
                finish = c.finish_reason or finish
            usage = ch.usage or usage
        assert finish == "length"
        assert usage is not None and usage.completion_tokens == 40
        assert text
        keep.close()
        assert s.proc.wait(timeout=60) == 0
    finally:
        log = s.stop_and_check()
    assert "stopped" in log


def test_sigterm_cuts_stream_after_timeout():
    s = start_server("--ctx", "2048", "--threads", "2", "--shutdown-timeout", "1")
    try:
        client = s.client()
        mid = client.models.list().data[0].id
        stream = client.chat.completions.create(model=mid, messages=LONG, max_tokens=1900, stream=True,
                                                stream_options={"include_usage": True},
                                                extra_body={"ignore_eos": True})
        first_content(stream)
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        finish = None
        # cut: the stream ends with an error event (the SDK raises it) or just ends, never with "length"
        try:
            for ch in stream:
                for c in ch.choices:
                    finish = c.finish_reason or finish
        except (openai.APIError, httpx.TransportError):
            pass
        elapsed = time.monotonic() - t0
        assert finish is None, f"the stream finished ({finish}) instead of being cut"
        assert elapsed < 20, f"the stream was cut only after {elapsed:.1f} s (--shutdown-timeout 1)"
        assert s.proc.wait(timeout=30) == 0
    finally:
        log = s.stop_and_check()
    assert "cut at shutdown" in log


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_idle_server_exits_zero(sig):
    s = start_server("--ctx", "256", "--threads", "1")
    s.signal(sig)
    try:
        assert s.proc.wait(timeout=30) == 0
    finally:
        s.stop_and_check()
