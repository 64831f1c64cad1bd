"""/v1/tasks and the task queue's faults, against real servers: a task's
result equals the endpoint's answer; priority and validation; callbacks to
a loopback listener, other hosts refused; a full queue answers 429 with
Retry-After; two ryot instances sharing one redis-server (Redis Streams):
kill -9 of the one running a batch mid-task (its task is claimed again and
finished once), a restart of redis-server with AOF mid-batch (nothing lost
or duplicated), and a small soak (every task accounted for once)."""

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from conftest import RYOT, assert_openai_error, start_server
from redis_server import RedisServer

CONSUMER_RE = re.compile(r"consumer (\S+),")


def consumer(s):
    return CONSUMER_RE.search(s.log_text()).group(1)


@pytest.fixture(scope="module")
def tiny():
    d = tempfile.mkdtemp(prefix="ryot-tasks-test-")
    path = os.path.join(d, "tiny.gguf")
    subprocess.run([RYOT, "gen", "-o", path, "--preset", "tiny-llama"], check=True, capture_output=True)
    yield path
    os.unlink(path)
    os.rmdir(d)


def submit(s, body, endpoint="/v1/completions", **kw):
    r = httpx.post(s.url("/v1/tasks"), json={"endpoint": endpoint, "body": body, **kw}, timeout=30)
    assert r.status_code == 202, r.text
    t = r.json()
    assert t["status"] in ("queued", "in_progress", "completed") and t["object"] == "task" and t["id"].startswith("task_")
    return t["id"]


def get_task(s, tid):
    """The task object; None while the queue is unreachable (503)."""
    r = httpx.get(s.url(f"/v1/tasks/{tid}"), timeout=30)
    if r.status_code == 503:
        return None
    assert r.status_code == 200, r.text
    return r.json()


def wait_task(s, tid, timeout=120):
    end = time.monotonic() + timeout
    while True:
        t = get_task(s, tid)
        if t and t["status"] in ("completed", "failed"):
            return t
        assert time.monotonic() < end, f"task {tid}: {t}"
        time.sleep(0.05)


def test_task_result_equals_endpoint(server, model_id):
    """The session server (no --redis): an LMDB queue in a temporary directory."""
    body = {"model": model_id, "messages": [{"role": "user", "content": "Name a fruit."}], "temperature": 0,
            "max_tokens": 8}
    tid = submit(server, body, endpoint="/v1/chat/completions", priority="high", metadata={"k": "v"})
    t = wait_task(server, tid)
    assert t["status"] == "completed" and t["priority"] == "high" and t["metadata"] == {"k": "v"}
    assert t["result"]["status_code"] == 200 and t["attempts"] == 1 and t["error"] is None
    direct = httpx.post(server.url("/v1/chat/completions"), json=body, timeout=60).json()
    assert t["result"]["body"]["choices"] == direct["choices"]
    assert t["result"]["body"]["usage"]["completion_tokens"] == direct["usage"]["completion_tokens"]
    assert t["timings"]["queued_ms"] >= 0 and t["timings"]["run_ms"] >= 0
    # default priority: low
    tid = submit(server, {"prompt": "a", "max_tokens": 2})
    assert wait_task(server, tid)["priority"] == "low"


def test_task_metrics(server):
    """/metrics counts submitted and finished tasks and times their wait and run."""
    m0 = server.metrics()
    ok = submit(server, {"prompt": "a", "max_tokens": 2})
    assert wait_task(server, ok)["status"] == "completed"
    bad = submit(server, {"prompt": "hello " * 40000, "max_tokens": 2})  # valid shape, over the context when run
    assert wait_task(server, bad)["status"] == "failed"
    m1 = server.metrics()
    d = lambda name, labels="": m1.get((name, labels), 0) - m0.get((name, labels), 0)  # noqa: E731
    assert d("ryot_tasks_submitted_total") == 2
    assert d("ryot_tasks_finished_total", '{result="ok"}') == 1
    assert d("ryot_tasks_finished_total", '{result="failed"}') == 1
    assert d("ryot_task_queue_wait_seconds_count") == 2 and d("ryot_task_run_seconds_count") == 2
    assert d("ryot_task_run_seconds_sum") > 0
    assert m1[("ryot_tasks_running", "")] == 0


def test_task_validation(server):
    post = lambda j: httpx.post(server.url("/v1/tasks"), json=j, timeout=30)  # noqa: E731
    assert_openai_error(post({"body": {"max_tokens": 3}}), 400, param="body.messages")
    assert_openai_error(post({"endpoint": "/v1/images", "body": {}}), 400, param="endpoint")
    assert_openai_error(post({"endpoint": "/v1/completions"}), 400, param="body")
    assert_openai_error(post({"endpoint": "/v1/completions", "body": {"prompt": "x"}, "priority": "urgent"}), 400,
                        param="priority")
    assert_openai_error(post({"endpoint": "/v1/completions", "body": {"prompt": "x", "stream": True}}), 400,
                        param="body.stream")
    for url in ("http://example.com/hook", "https://127.0.0.1/x", "http://10.0.0.1:80/x", "ftp://127.0.0.1/",
                "http://127.0.0.1/a b"):
        assert_openai_error(post({"endpoint": "/v1/completions", "body": {"prompt": "x"}, "callback_url": url}), 400,
                            param="callback_url")
    assert_openai_error(httpx.post(server.url("/v1/tasks"), content=b"[1]", timeout=30), 400)
    assert_openai_error(httpx.get(server.url("/v1/tasks/task_0000"), timeout=30), 404, code="not_found")
    assert_openai_error(httpx.put(server.url("/v1/tasks"), timeout=30), 405)


class _Hook(BaseHTTPRequestHandler):
    got = []

    def do_POST(self):  # noqa: N802
        n = int(self.headers["Content-Length"])
        _Hook.got.append((self.path, json.loads(self.rfile.read(n))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_callback(server):
    hook = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{hook.server_address[1]}/done?x=1"
        tid = submit(server, {"prompt": "hello", "max_tokens": 3, "temperature": 0}, callback_url=url)
        end = time.monotonic() + 60
        while not _Hook.got and time.monotonic() < end:
            time.sleep(0.05)
        assert _Hook.got, "no callback"
        path, obj = _Hook.got[0]
        assert path == "/done?x=1"
        assert obj["id"] == tid and obj["status"] == "completed" and obj["callback_url"] == url
        assert obj["result"]["body"]["object"] == "text_completion"
    finally:
        hook.shutdown()


def test_full_queue_429(tiny):
    d = tempfile.mkdtemp(prefix="ryot-tasks-full-")
    s = start_server("-m", tiny, "--ctx", "256", "--threads", "1", "--tasks-dir", d, "--max-tasks", "3",
                     "--task-workers", "0")
    try:
        for _ in range(3):
            submit(s, {"prompt": "x", "max_tokens": 1})
        r = httpx.post(s.url("/v1/tasks"), json={"endpoint": "/v1/completions", "body": {"prompt": "x"}}, timeout=30)
        assert_openai_error(r, 429, code="queue_full")
        assert r.headers["Retry-After"] == "1"
        # a batch that does not fit is refused whole
        line = json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}})
        f = httpx.post(s.url("/v1/files"), files={"file": ("b.jsonl", (line + "\n").encode())},
                       data={"purpose": "batch"}, timeout=30).json()
        r = httpx.post(s.url("/v1/batches"), timeout=30,
                       json={"input_file_id": f["id"], "endpoint": "/v1/completions", "completion_window": "24h"})
        assert_openai_error(r, 429, code="queue_full")
        b = httpx.get(s.url("/v1/batches"), timeout=30).json()["data"][0]
        assert b["status"] == "failed" and b["errors"]["data"][0]["code"] == "queue_full"
    finally:
        s.stop_and_check()
    # the queued tasks survive a restart (LMDB) and run once workers are there
    s = start_server("-m", tiny, "--ctx", "256", "--threads", "1", "--tasks-dir", d, "--max-tasks", "3")
    try:
        r = httpx.post(s.url("/v1/tasks"), json={"endpoint": "/v1/completions", "body": {"prompt": "x"}}, timeout=30)
        end = time.monotonic() + 60
        while r.status_code == 429 and time.monotonic() < end:  # frees up as the three run
            time.sleep(0.1)
            r = httpx.post(s.url("/v1/tasks"), json={"endpoint": "/v1/completions", "body": {"prompt": "x"}},
                           timeout=30)
        assert r.status_code == 202
        assert wait_task(s, r.json()["id"])["status"] == "completed"
    finally:
        s.stop_and_check()
        subprocess.run(["rm", "-rf", d], check=True)


# ---------------------------------------------------------------- Redis, two instances

@pytest.fixture()
def redis():
    r = RedisServer(appendonly=True)
    yield r
    r.stop()


def redis_serve(redis, *extra, model=None):
    args = ["--ctx", "512", "--threads", "1", "--tasks-redis", redis.url, "--task-visibility-ms", "1500", *extra]
    if model:
        args = ["-m", model, *args]
    return start_server(*args)


def queue_empty(redis):
    """No task left in any tier's stream, none dead, no attempts pending."""
    assert sum(redis.command("XLEN", f"ryot:tasks:q:{t}") for t in range(5)) == 0
    assert redis.command("XLEN", "ryot:tasks:dead") == 0
    assert redis.command("HLEN", "ryot:tasks:attempts") == 0


def batch_of(s, lines, endpoint):
    data = ("\n".join(json.dumps(x) for x in lines) + "\n").encode()
    f = httpx.post(s.url("/v1/files"), files={"file": ("in.jsonl", data)}, data={"purpose": "batch"}, timeout=30)
    assert f.status_code == 200, f.text
    r = httpx.post(s.url("/v1/batches"), timeout=30,
                   json={"input_file_id": f.json()["id"], "endpoint": endpoint, "completion_window": "24h"})
    assert r.status_code == 200 and r.json()["status"] == "in_progress", r.text
    return r.json()["id"]


def wait_batch(s, bid, timeout=240):
    end = time.monotonic() + timeout
    while True:
        r = httpx.get(s.url(f"/v1/batches/{bid}"), timeout=30)
        if r.status_code == 200 and r.json()["status"] in ("completed", "failed", "cancelled", "expired"):
            return r.json()
        assert time.monotonic() < end, r.text
        time.sleep(0.1)


def file_lines(s, fid):
    r = httpx.get(s.url(f"/v1/files/{fid}/content"), timeout=30)
    assert r.status_code == 200
    return [json.loads(x) for x in r.text.splitlines() if x.strip()]


def test_kill9_mid_task_reclaimed_once(redis):
    """A runs the batch; kill -9 A while its tasks run; B (started after, so
    A claimed them) takes them over after the visibility timeout; every line
    is answered once."""
    n = 6
    a = redis_serve(redis, "--task-workers", "2")
    b = None
    try:
        mid = httpx.get(a.url("/v1/models"), timeout=30).json()["data"][0]["id"]
        lines = [{"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
                  "body": {"model": mid, "messages": [{"role": "user", "content": f"Count to {i + 20}."}],
                           "temperature": 0, "max_tokens": 120, "ignore_eos": True}} for i in range(n)]
        bid = batch_of(a, lines, "/v1/chat/completions")
        # both of A's workers hold a task (pending in the group, not acked)
        end = time.monotonic() + 60
        while True:
            p = redis.command("XPENDING", "ryot:tasks:q:4", "ryot")
            if p[0] == 2:
                break
            assert time.monotonic() < end, p
            time.sleep(0.05)
        time.sleep(0.5)
        a_name = consumer(a)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        a.stopped = True
        b = redis_serve(redis, "--task-workers", "2")
        assert consumer(b) != a_name
        done = wait_batch(b, bid)
        assert done["status"] == "completed", done
        assert done["request_counts"] == {"total": n, "completed": n, "failed": 0}
        out = file_lines(b, done["output_file_id"])
        assert [o["custom_id"] for o in out] == [f"c{i}" for i in range(n)]  # each once, in order
        assert done["error_file_id"] is None
        # B finished what A held: those results are B's second attempts
        results = [json.loads(redis.command("GET", f"ryot:tasks:result:{bid}-{i}")) for i in range(n)]
        again = [r for r in results if r["attempt"] == 2]
        assert len(again) == 2 and all(r["worker"] == consumer(b) for r in again)
        queue_empty(redis)
    finally:
        if b:
            b.stop_and_check()
        a.kill()


def test_redis_restart_with_aof(redis, tiny):
    """redis-server restarted (AOF on) while a batch runs: every line ends
    with one result; tasks submitted while it was down were refused (503),
    not lost silently."""
    n = 40
    a = redis_serve(redis, "--task-workers", "2", model=tiny)
    b = redis_serve(redis, "--task-workers", "2", model=tiny)
    try:
        lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions",
                  "body": {"prompt": f"item {i}", "max_tokens": 200, "ignore_eos": True, "temperature": 0}}
                 for i in range(n)]
        bid = batch_of(a, lines, "/v1/completions")
        time.sleep(0.3)
        redis.proc.terminate()
        redis.proc.wait(timeout=30)
        r = httpx.post(b.url("/v1/tasks"), json={"endpoint": "/v1/completions", "body": {"prompt": "x"}}, timeout=30)
        assert_openai_error(r, 503)
        time.sleep(1.0)
        redis._start()
        done = wait_batch(b, bid)
        assert done["status"] == "completed" and done["request_counts"]["completed"] == n, done
        out = file_lines(a, done["output_file_id"])
        assert sorted(o["custom_id"] for o in out) == sorted(f"r{i}" for i in range(n))
        queue_empty(redis)
    finally:
        a.stop_and_check()
        b.stop_and_check()


def test_soak_two_instances(redis, tiny):
    """300 tasks over two instances (the 10,000-task run: bench/tasks_soak.py)."""
    n = int(os.environ.get("RYOT_TASKS_SOAK", "300"))
    a = redis_serve(redis, "--task-workers", "4", model=tiny)
    b = redis_serve(redis, "--task-workers", "4", model=tiny)
    try:
        ids = []
        with httpx.Client(timeout=30) as c:
            for i in range(n):
                s = (a, b)[i % 2]
                r = c.post(s.url("/v1/tasks"), json={"endpoint": "/v1/completions",
                                                     "body": {"prompt": f"soak {i}", "max_tokens": 2}})
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])
            end = time.monotonic() + 240
            pending = set(ids)
            workers = {}
            while pending and time.monotonic() < end:
                for tid in list(pending):
                    t = c.get(a.url(f"/v1/tasks/{tid}")).json()
                    if t["status"] in ("completed", "failed"):
                        assert t["status"] == "completed", t
                        workers[t["worker"]] = workers.get(t["worker"], 0) + 1
                        pending.discard(tid)
                if pending:
                    time.sleep(0.2)
        assert not pending, f"{len(pending)} tasks unfinished"
        assert set(workers) <= {consumer(a), consumer(b)} and sum(workers.values()) == n
        assert len(redis.command("KEYS", "ryot:tasks:result:*")) == n
        queue_empty(redis)
    finally:
        a.stop_and_check()
        b.stop_and_check()
