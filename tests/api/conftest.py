"""Black-box API tests of `ryot serve`: fixtures and helpers.

Every test talks HTTP to a real `ryot serve` started here ($RYOT, default
build/ryot; the default model unless $RYOT_MODEL is set).  The session
server is started once with small settings; tests that need other flags
(API key, a tiny queue, a tiny body limit, few running slots, shutdown)
start their own through `start_server`.

Each server is stopped with SIGTERM at teardown and must exit with status 0.
"""

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

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RYOT = os.environ.get("RYOT", "build/ryot")
if "/" in RYOT and not os.path.isabs(RYOT):
    RYOT = os.path.join(REPO, RYOT)

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_path():
    """The model `ryot serve` loads without -m (as src/cli/main.c finds it)."""
    if os.environ.get("RYOT_MODEL"):
        return os.environ["RYOT_MODEL"]
    d = os.environ.get("RYOT_MODEL_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "ryot", "models")
    return os.path.join(d, DEFAULT_MODEL_FILE)


# Settings of the shared server: small enough for a 2-core machine.
SESSION_ARGS = ["--ctx", "2048", "--max-running", "32", "--threads", "2"]
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
HTTP_TIMEOUT_S = 120

LISTEN_RE = re.compile(r"listening on http://([0-9.]+):([0-9]+)")


class Server:
    """A running `ryot serve` (stderr goes to a temporary file)."""

    def __init__(self, *args, env=None):
        self.args = [RYOT, "serve", "--port", "0", *args]
        self.log = tempfile.NamedTemporaryFile(prefix="ryot-serve-", suffix=".log", delete=False)
        e = dict(os.environ)
        e.pop("RYOT_API_KEY", None)
        if env:
            e.update(env)
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=e, cwd=REPO)
        self.base_url = None
        self.stopped = False
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def log_text(self):
        with open(self.log.name, "r", encoding="utf-8", errors="replace") as f:
            return f.read()

    def _wait_ready(self):
        end = time.monotonic() + START_TIMEOUT_S
        while self.base_url is None:
            m = LISTEN_RE.search(self.log_text())
            if m:
                self.base_url = f"http://{m.group(1)}:{m.group(2)}"
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"ryot serve exited with {self.proc.returncode}:\n{self.log_text()}")
            if time.monotonic() > end:
                raise RuntimeError(f"ryot serve printed no address:\n{self.log_text()}")
            time.sleep(0.02)
        while True:
            try:
                if httpx.get(self.base_url + "/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"ryot serve exited with {self.proc.returncode}:\n{self.log_text()}")
            if time.monotonic() > end:
                raise RuntimeError(f"/health never answered 200:\n{self.log_text()}")
            time.sleep(0.05)

    def url(self, path):
        return self.base_url + path

    def client(self, api_key="unused", **kw):
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key=api_key, max_retries=0,
                             timeout=kw.pop("timeout", HTTP_TIMEOUT_S), **kw)

    def metrics(self):
        r = httpx.get(self.base_url + "/metrics", timeout=30)
        assert r.status_code == 200
        return parse_metrics(r.text)

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM, wait; returns the exit status (killed and -9 on a hang)."""
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = -9
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stopped = True

    def stop_and_check(self):
        rc = self.stop()
        text = self.log_text()
        os.unlink(self.log.name)
        assert rc == 0, f"ryot serve exited with {rc}; log tail:\n{text[-3000:]}"
        return text


def start_server(*args, env=None):
    return Server(*args, env=env)


@pytest.fixture(scope="session")
def server():
    s = start_server(*SESSION_ARGS)
    yield s
    s.stop_and_check()


@pytest.fixture(scope="session")
def base_url(server):
    return server.base_url


@pytest.fixture(scope="session")
def client(server):
    return server.client()


@pytest.fixture(scope="session")
def model_id(server):
    r = httpx.get(server.url("/v1/models"), timeout=30)
    assert r.status_code == 200
    return r.json()["data"][0]["id"]


@pytest.fixture(scope="session")
def http(server):
    with httpx.Client(base_url=server.base_url, timeout=HTTP_TIMEOUT_S) as c:
        yield c


# ---------------------------------------------------------------- helpers

SAMPLE_RE = re.compile(
    r"^([a-zA-Z_:][a-zA-Z0-9_:]*)"                      # name
    r"(\{(?:[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\]|\\.)*\""  # labels
    r"(?:,[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\]|\\.)*\")*,?)?\})?"
    r" ([-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?|NaN|Inf))"
    r"(?: [-+]?[0-9]+)?$")                               # optional timestamp


def parse_metrics(text):
    """Prometheus text -> {(name, labels-string): value}; asserts the format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def metric_sum(metrics, name):
    """Sum of a metric over all its label sets."""
    vals = [v for (n, _), v in metrics.items() if n == name]
    assert vals, f"no metric {name}"
    return sum(vals)


def assert_openai_error(resp, status, param=None, code=None):
    """resp (httpx.Response) is an OpenAI-shaped error with this status."""
    assert resp.status_code == status, f"status {resp.status_code}, want {status}: {resp.text[:300]}"
    assert resp.headers.get("content-type", "").startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}, body
    e = body["error"]
    assert set(e) >= {"message", "type", "param", "code"}, e
    assert isinstance(e["message"], str) and e["message"], e
    assert isinstance(e["type"], str) and e["type"], e
    assert e["param"] is None or isinstance(e["param"], str), e
    assert e["code"] is None or isinstance(e["code"], str), e
    if param is not None:
        assert e["param"] == param, e
    if code is not None:
        assert e["code"] == code, e
    return e


def chat_stream_text(stream):
    """Consumes an SDK chat stream: (text per choice index, finish per index, chunks)."""
    texts, finish, chunks = {}, {}, []
    for ch in stream:
        chunks.append(ch)
        for c in ch.choices:
            if c.delta.content:
                texts[c.index] = texts.get(c.index, "") + c.delta.content
            if c.finish_reason:
                finish[c.index] = c.finish_reason
    return texts, finish, chunks


def sse_events(resp):
    """Data payloads of a streaming httpx response ('[DONE]' included)."""
    for line in resp.iter_lines():
        if line.startswith("data: "):
            yield line[6:]


def first_token_time(client, t0, **kw):
    """Streams a chat completion; seconds from t0 to the first content, and the text."""
    ttft = None
    text = ""
    with client.chat.completions.create(stream=True, **kw) as stream:
        for ch in stream:
            for c in ch.choices:
                if c.delta.content:
                    if ttft is None:
                        ttft = time.monotonic() - t0
                    text += c.delta.content
    return ttft, text


class Threads:
    """Runs callables in threads and collects results or exceptions."""

    def __init__(self):
        self.threads = []
        self.results = {}
        self.lock = threading.Lock()

    def start(self, key, fn, *a, **kw):
        def run():
            try:
                r = fn(*a, **kw)
            except BaseException as e:  # reported by join
                r = e
            with self.lock:
                self.results[key] = r

        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.threads.append(t)

    def join(self, timeout=HTTP_TIMEOUT_S):
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, end - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "a request thread did not finish"
        return self.results


def dumps(obj):
    return json.dumps(obj)
