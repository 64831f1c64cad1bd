#!/usr/bin/env python3
"""Task queue benchmarks (docs/PERFORMANCE.md, "Task queue"): a real
redis-server and `ryot serve` instances sharing it (--tasks-redis).

  soak      N tasks (default 10000) over two instances, tiny generated model,
            max_tokens 2: throughput, and every task accounted for once
            (each GET says completed, one result key per task, queue empty).
  overhead  tasks one at a time with a loopback callback: queue overhead =
            (callback received - submit sent) - the worker's run time
            (generation through the server's own request path); p50/p99.
  ttft      interactive TTFT p99 (`ryot bench serve`, streamed chat) alone and
            while a 1,000-request batch runs at the background tier.

Run with the API test venv:  ~/.cache/ryot/venv-api/bin/python bench/tasks_bench.py soak
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "api"))
from redis_server import RedisServer  # noqa: E402

RYOT = os.path.abspath(os.environ.get("RYOT", os.path.join(REPO, "build", "ryot")))


class Serve:
    def __init__(self, *args):
        self.log = tempfile.NamedTemporaryFile(prefix="ryot-tasks-bench-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([RYOT, "serve", "--port", "0", "--quiet", *args], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        end = time.monotonic() + 60
        while True:
            m = re.search(r"listening on (http://[0-9.:]+)", open(self.log.name).read())
            if m:
                self.url = m.group(1)
                try:
                    if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(open(self.log.name).read())
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        os.unlink(self.log.name)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def tiny_model():
    path = os.path.join(tempfile.mkdtemp(prefix="ryot-tasks-bench-"), "tiny.gguf")
    subprocess.run([RYOT, "gen", "-o", path, "--preset", "tiny-llama"], check=True, capture_output=True)
    return path


def soak(a):
    model = tiny_model()
    redis = RedisServer(appendonly=True)
    common = ["-m", model, "--ctx", "256", "--threads", "1", "--tasks-redis", redis.url, "--task-workers",
              str(a.workers), "--max-tasks", str(a.n + 10)]
    inst = [Serve(*common) for _ in range(2)]
    try:
        t0 = time.monotonic()
        local = threading.local()

        def submit(i):
            if not hasattr(local, "c"):
                local.c = httpx.Client(timeout=60)  # one per thread: httpx.post builds a client (and TLS context) a call
            r = local.c.post(inst[i % 2].url + "/v1/tasks",
                             json={"endpoint": "/v1/completions", "body": {"prompt": f"soak {i}", "max_tokens": 2}})
            assert r.status_code == 202, r.text
            return r.json()["id"]

        with ThreadPoolExecutor(8) as ex:
            ids = list(ex.map(submit, range(a.n)))
        t_sub = time.monotonic() - t0
        while True:
            left = sum(redis.command("XLEN", f"ryot:tasks:q:{t}") for t in range(5))
            if left == 0:
                break
            time.sleep(0.2)
        t_all = time.monotonic() - t0
        status, workers = {}, {}
        with httpx.Client(timeout=60) as c:
            for tid in ids:
                t = c.get(inst[0].url + f"/v1/tasks/{tid}").json()
                status[t["status"]] = status.get(t["status"], 0) + 1
                workers[t.get("worker")] = workers.get(t.get("worker"), 0) + 1
        n_results = len(redis.command("KEYS", "ryot:tasks:result:*"))
        dead = redis.command("XLEN", "ryot:tasks:dead")
        print(f"soak: {a.n} tasks, 2 instances x {a.workers} workers: submitted in {t_sub:.1f} s, all done in "
              f"{t_all:.1f} s ({a.n / t_all:.0f} tasks/s)")
        print(f"  statuses {status}; by worker {workers}; result keys {n_results}; dead-letter {dead}; "
              f"unique ids {len(set(ids))}")
        ok = status == {"completed": a.n} and n_results == a.n and dead == 0 and len(set(ids)) == a.n
        print("  every task accounted for once" if ok else "  MISMATCH")
        return 0 if ok else 1
    finally:
        for s in inst:
            s.stop()
        redis.stop()


class Hook(BaseHTTPRequestHandler):
    got = {}

    def do_POST(self):  # noqa: N802
        t = time.time()
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Hook.got[body["id"]] = (t, body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def overhead(a):
    model = tiny_model()
    redis = RedisServer(appendonly=True) if a.backend == "redis" else None
    d = tempfile.mkdtemp(prefix="ryot-tasks-bench-dir-")
    q = ["--tasks-redis", redis.url] if redis else ["--tasks-dir", d]
    s = Serve("-m", model, "--ctx", "256", "--threads", "1", *q, "--task-workers", "2")
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    cb = f"http://127.0.0.1:{hook.server_address[1]}/cb"
    over, run = [], []
    try:
        with httpx.Client(timeout=60) as c:
            for i in range(a.n + 20):
                t0 = time.time()
                r = c.post(s.url + "/v1/tasks", json={"endpoint": "/v1/completions", "callback_url": cb,
                                                      "body": {"prompt": f"x {i}", "max_tokens": 2}})
                tid = r.json()["id"]
                end = time.monotonic() + 30
                while tid not in Hook.got:
                    assert time.monotonic() < end
                    time.sleep(0.0002)
                t1, body = Hook.got[tid]
                if i >= 20:  # warm-up
                    run_ms = body["timings"]["run_ms"]
                    over.append((t1 - t0) * 1000 - run_ms)
                    run.append(run_ms)
        print(f"overhead ({a.backend}): {a.n} tasks one at a time, max_tokens 2: queue overhead p50 "
              f"{statistics.median(over):.2f} ms, p99 {pct(over, 99):.2f} ms, max {max(over):.2f} ms; "
              f"run time p50 {statistics.median(run):.1f} ms")
    finally:
        hook.shutdown()
        s.stop()
        if redis:
            redis.stop()
        subprocess.run(["rm", "-rf", d])


def bench_serve(url, n, label):
    out = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
    subprocess.run([RYOT, "bench", "serve", "--url", url, "--concurrency", "2", "--num-requests", str(n),
                    "--input-len", "64", "--output-len", "32", "--warmup", "4", "--json", out, "--no-metrics", "--label", label],
                   check=True, capture_output=True)
    res = json.load(open(out))
    os.unlink(out)
    runs = res.get("runs") or [res]
    m = runs[0].get("metrics", runs[0])
    return m["ttft_ms"]


def ttft(a):
    redis = RedisServer(appendonly=True)
    s = Serve("--ctx", "1024", "--threads", "2", "--tasks-redis", redis.url, "--task-workers", str(a.workers))
    try:
        base = bench_serve(s.url, a.n, "interactive alone")
        mid = httpx.get(s.url + "/v1/models").json()["data"][0]["id"]
        lines = [json.dumps({"custom_id": f"b{i}", "method": "POST", "url": "/v1/chat/completions",
                             "body": {"model": mid, "max_tokens": 16, "messages": [
                                 {"role": "user", "content": f"Write a sentence about the number {i}."}]}})
                 for i in range(a.batch)]
        f = httpx.post(s.url + "/v1/files", files={"file": ("b.jsonl", ("\n".join(lines) + "\n").encode())},
                       data={"purpose": "batch"}, timeout=60).json()
        b = httpx.post(s.url + "/v1/batches", timeout=60, json={"input_file_id": f["id"], "completion_window": "24h",
                                                                "endpoint": "/v1/chat/completions"}).json()
        time.sleep(2)
        busy = bench_serve(s.url, a.n, "interactive during a batch")
        st = httpx.get(s.url + f"/v1/batches/{b['id']}").json()
        print(f"ttft: {a.n} streamed chat requests, concurrency 2, 64 words in, 32 tokens out")
        print(f"  alone:              TTFT p50 {base['median']:.1f} ms  p99 {base['p99']:.1f} ms")
        print(f"  during a {a.batch}-line batch ({a.workers} task workers, background tier): "
              f"TTFT p50 {busy['median']:.1f} ms  p99 {busy['p99']:.1f} ms")
        print(f"  batch meanwhile: {st['status']}, {st['request_counts']}")
        httpx.post(s.url + f"/v1/batches/{b['id']}/cancel", timeout=60)
    finally:
        s.stop()
        redis.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["soak", "overhead", "ttft"])
    p.add_argument("-n", type=int, default=None)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--backend", choices=["redis", "lmdb"], default="redis")
    a = p.parse_args()
    if a.n is None:
        a.n = {"soak": 10000, "overhead": 500, "ttft": 40}[a.mode]
    sys.exit({"soak": soak, "overhead": overhead, "ttft": ttft}[a.mode](a) or 0)


if __name__ == "__main__":
    main()
