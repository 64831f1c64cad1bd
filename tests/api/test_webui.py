"""The web chat page at / (src/server/webui/index.html, compiled into the
binary): its HTTP headers and routing over plain HTTP, then the page itself
in a real headless Chromium (browser.py, the DevTools protocol): the model
picker, a streamed answer growing in place, TTFT and tok/s, the settings
and the conversation history in the requests, the Stop button cancelling
the sequence on the server, and the API-key field against a server started
with --api-key.

A screenshot of a finished answer is saved to $RYOT_ARTIFACTS/webui.png
(default: $BUILD/artifacts/webui.png, $BUILD being the build directory
`make test` passes, else build/).  The browser tests skip only when no
chromium is installed (scripts/install-deps.sh installs it)."""

import base64
import hashlib
import json
import os
import re
import time

import httpx
import pytest

from browser import Browser, chromium_path
from conftest import REPO, assert_openai_error, metric_sum, start_server

KEY = "webui-key-42"
STATS_RE = re.compile(r"TTFT (\d+) ms \u00b7 ([0-9.]+) tok/s \u00b7 (\d+) tokens")


def artifact_path(name):
    d = os.environ.get("RYOT_ARTIFACTS")
    if not d:
        build = os.environ.get("BUILD", "build")
        d = os.path.join(build if os.path.isabs(build) else os.path.join(REPO, build), "artifacts")
    return os.path.join(d, name)


def inline_hash(page, tag):
    """'sha256-...' of the text of the page's one <tag> element."""
    a = page.index(f"<{tag}>") + len(tag) + 2
    b = page.index(f"</{tag}>", a)
    assert page.count(f"<{tag}>") == 1
    return "'sha256-" + base64.b64encode(hashlib.sha256(page[a:b].encode()).digest()).decode() + "'"


def csp_directives(value):
    out = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def wait_idle(server, timeout=10.0):
    """Metrics once nothing runs or waits."""
    end = time.monotonic() + timeout
    while True:
        m = server.metrics()
        if metric_sum(m, "ryot_requests_running") == 0 and metric_sum(m, "ryot_requests_waiting") == 0:
            return m
        assert time.monotonic() < end, "the server did not become idle"
        time.sleep(0.05)


def ended(m, reason):
    return m[("ryot_request_success_total", f'{{finished_reason="{reason}"}}')]


# ---------------------------------------------------------------- plain HTTP

def test_page_headers(server):
    r = httpx.get(server.url("/"), timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-cache"
    page = r.text
    assert page.startswith("<!DOCTYPE html>") and "</html>" in page
    # no CDN, no external origin anywhere in the page
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", page, re.I), "the page names an external URL"
    assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=\"(?!data:)", page), "the page loads a file"
    csp = csp_directives(r.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == [inline_hash(page, "script")]  # exactly the page's own script, nothing else
    assert csp["style-src"] == [inline_hash(page, "style")]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["form-action"] == ["'none'"]
    for words in csp.values():
        for w in words:
            assert w.startswith("'") or w == "data:", f"CSP allows an origin: {w}"
    # /index.html is the same page; HEAD has the headers and no body
    r2 = httpx.get(server.url("/index.html"), timeout=30)
    assert r2.status_code == 200 and r2.content == r.content
    h = httpx.head(server.url("/"), timeout=30)
    assert h.status_code == 200 and h.content == b""
    assert h.headers["content-length"] == str(len(r.content))
    assert h.headers["content-security-policy"] == r.headers["content-security-policy"]
    # revalidation: the ETag answers 304 without a body; another tag gets the page
    etag = r.headers["etag"]
    assert re.fullmatch(r'"[A-Za-z0-9+/]{43}"', etag)
    n = httpx.get(server.url("/"), headers={"If-None-Match": etag}, timeout=30)
    assert n.status_code == 304 and n.content == b"" and n.headers["etag"] == etag
    o = httpx.get(server.url("/"), headers={"If-None-Match": '"other"'}, timeout=30)
    assert o.status_code == 200 and o.content == r.content


@pytest.mark.parametrize("method,path", [("POST", "/"), ("PUT", "/"), ("DELETE", "/index.html"),
                                         ("PATCH", "/")])
def test_page_405(server, method, path):
    r = httpx.request(method, server.url(path), timeout=30)
    assert_openai_error(r, 405)
    assert r.headers["allow"] == "GET, HEAD"


def test_page_near_misses_are_404(server):
    for path in ("/index.htm", "/index.html/", "//", "/webui"):
        assert_openai_error(httpx.get(server.url(path), timeout=30), 404, code="not_found")


def test_no_webui_flag():
    s = start_server("--no-webui", "--ctx", "512", "--threads", "2")
    try:
        for path in ("/", "/index.html"):
            assert_openai_error(httpx.get(s.url(path), timeout=30), 404, code="not_found")
        assert httpx.get(s.url("/v1/models"), timeout=30).status_code == 200
    finally:
        s.stop_and_check()


# ---------------------------------------------------------------- in a browser

needs_browser = pytest.mark.skipif(chromium_path() is None,
                                   reason="chromium is not installed (apt-get install chromium; "
                                          "scripts/install-deps.sh installs it): the web page's browser tests "
                                          "cannot run")

# Test-side instrumentation, run in the page: a MutationObserver records the
# length of the newest answer's text at every change (with the page's state),
# and fetch is wrapped to record each chat request's body; `extra` fields
# are merged into it (ignore_eos for a surely long answer).
INSTRUMENT = """
(() => {
  window.__lens = [];
  window.__bodies = [];
  window.__extra = {};
  new MutationObserver(() => {
    const t = [...document.querySelectorAll('.msg.assistant .text')].pop();
    if (t) window.__lens.push([t.textContent.length, document.body.dataset.state]);
  }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
  const real = window.fetch;
  window.fetch = (url, opts) => {
    if (url === '/v1/chat/completions' && opts && opts.body) {
      const body = Object.assign(JSON.parse(opts.body), window.__extra);
      window.__bodies.push(body);
      opts = Object.assign({}, opts, {body: JSON.stringify(body)});
    }
    return real(url, opts);
  };
  return true;
})()
"""

LAST_ANSWER_DONE = "document.querySelector('.msg.assistant:last-child[data-done=\"true\"]') !== null"
LAST_TEXT = "[...document.querySelectorAll('.msg.assistant .text')].pop().textContent"
LAST_STATS = "[...document.querySelectorAll('.msg.assistant .stats')].pop().textContent"
STATUS = "document.getElementById('status').textContent"


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.close()


def open_page(b, server, ready=True):
    b.goto(server.url("/"))
    assert b.eval(INSTRUMENT)
    if ready:
        b.wait_for(f"{STATUS} === 'ready'", 30, what="the model list")


def set_field(b, selector, value):
    """Replaces a settings field's text by typing, then leaves it (change fires)."""
    if not b.eval("document.querySelector('details').open"):
        b.click("summary")
    b.click(selector)
    b.eval(f"document.querySelector({json.dumps(selector)}).select()")
    b.page_call("Input.insertText", text=value)
    b.click("h1")  # focus moves away: the change event


def no_csp_violations(b):
    b.eval("1")  # takes in the events that arrived meanwhile
    bad = [c for c in b.console if "Content Security Policy" in c or "Refused to" in c or c.startswith("exception")]
    assert not bad, bad


@needs_browser
def test_browser_chat_streams(server, model_id, browser):
    b = browser
    open_page(b, server)
    assert b.eval("[...document.getElementById('model').options].map(o => o.value)") == [model_id]
    set_field(b, "#temperature", "0")
    set_field(b, "#max-tokens", "40")
    set_field(b, "#system", "You are a concise assistant.")

    # first message: typed, sent with the Send button
    question = "Describe the ocean in a few sentences."
    b.type_into("#input", question)
    b.click("#send")
    b.wait_for(LAST_ANSWER_DONE, 120, what="the first answer")
    lens = b.eval("window.__lens")
    final = len(b.eval(LAST_TEXT))
    growing = sorted({n for n, state in lens if state == "streaming" and 0 < n < final})
    assert len(growing) >= 2, f"the text did not grow during streaming: {lens}"
    assert final > 0
    m = STATS_RE.search(b.eval(LAST_STATS))
    assert m, b.eval(LAST_STATS)
    ttft, tps, ntok = int(m.group(1)), float(m.group(2)), int(m.group(3))
    assert 0 < ttft < 60000 and tps > 0 and 2 <= ntok <= 40
    assert b.eval("document.getElementById('input').value") == ""
    assert b.eval("document.getElementById('send').disabled") is False
    assert b.eval("document.getElementById('stop').disabled") is True
    first = b.eval(LAST_TEXT)

    # the request carried the settings and asked for streaming with usage
    body = b.eval("window.__bodies[0]")
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == model_id and body["temperature"] == 0 and body["max_tokens"] == 40
    assert body["messages"] == [{"role": "system", "content": "You are a concise assistant."},
                                {"role": "user", "content": question}]

    # second message: Enter sends; markup in it shows as text, never as elements
    evil = "<img src=x id=pwned> and <b>bold</b>?"
    b.type_into("#input", evil)
    b.press_enter()
    b.wait_for(LAST_ANSWER_DONE + " && document.querySelectorAll('.msg.assistant').length === 2", 120,
               what="the second answer")
    assert b.eval("document.querySelectorAll('#messages img, #messages b').length") == 0
    assert b.eval("[...document.querySelectorAll('.msg.user .text')].map(e => e.textContent)") == [question, evil]
    body = b.eval("window.__bodies[1]")
    assert [x["role"] for x in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][2]["content"] == first and body["messages"][3]["content"] == evil
    assert STATS_RE.search(b.eval(LAST_STATS))

    # every request went to the server itself; nothing was refused by the CSP
    assert b.requests and all(u.startswith(server.base_url + "/") for u in b.requests), b.requests
    no_csp_violations(b)
    png = b.screenshot(artifact_path("webui.png"))
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000

    # New chat empties the conversation; settings persist (localStorage)
    b.click("#clear")
    assert b.eval("document.querySelectorAll('.msg').length") == 0
    b.reload()
    assert b.eval("document.getElementById('max-tokens').value") == "40"
    assert b.eval("document.getElementById('system').value") == "You are a concise assistant."
    assert b.eval("document.querySelectorAll('.msg').length") == 0


@needs_browser
def test_browser_stop_cancels(server, model_id, browser):
    b = browser
    open_page(b, server)
    set_field(b, "#max-tokens", "1500")
    b.eval("window.__extra = {ignore_eos: true}; 1")  # a surely long answer
    before = wait_idle(server)
    b.type_into("#input", "Write a very long story about a lighthouse keeper.")
    b.click("#send")
    b.wait_for(f"document.querySelectorAll('.msg.assistant').length === 1 && {LAST_TEXT}.length > 20", 60,
               what="the answer to start")
    assert b.eval("document.body.dataset.state") == "streaming"
    assert metric_sum(server.metrics(), "ryot_requests_running") == 1
    t0 = time.monotonic()
    b.click("#stop")
    b.wait_for("document.body.dataset.state === 'idle'", 5, what="the page to stop")
    stats = b.eval(LAST_STATS)
    assert stats.endswith("stopped"), stats
    assert "TTFT" in stats
    after = wait_idle(server, timeout=5.0)
    assert time.monotonic() - t0 < 5.0
    assert ended(after, "cancelled") == ended(before, "cancelled") + 1
    generated = after[("ryot_generation_tokens_total", "")] - before[("ryot_generation_tokens_total", "")]
    assert generated < 1500, "the stopped answer kept generating"
    # the stopped text stays in the conversation and a next message works
    kept = b.eval(LAST_TEXT)
    assert kept
    b.eval("window.__extra = {}; 1")
    set_field(b, "#max-tokens", "8")
    b.type_into("#input", "Thanks!")
    b.press_enter()
    b.wait_for(LAST_ANSWER_DONE + " && document.querySelectorAll('.msg.assistant').length === 2", 60)
    msgs = b.eval("window.__bodies[1].messages")
    assert msgs[-2] == {"role": "assistant", "content": kept}
    no_csp_violations(b)


@pytest.fixture(scope="module")
def keyed():
    s = start_server("--api-key", KEY, "--ctx", "512", "--threads", "2")
    yield s
    s.stop_and_check()


def test_keyed_page_is_public(keyed):
    r = httpx.get(keyed.url("/"), timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert_openai_error(httpx.get(keyed.url("/v1/models"), timeout=30), 401)


@needs_browser
def test_browser_api_key(keyed, browser):
    b = browser
    open_page(b, keyed, ready=False)
    # no key: the model list is refused and the page says why
    status = b.wait_for(f"document.getElementById('status').classList.contains('error') && {STATUS}", 30)
    assert "requires an API key" in status and "401" in status, status
    assert b.eval("document.getElementById('key').classList.contains('need')") is True
    b.type_into("#input", "Hello?")
    b.click("#send")
    b.wait_for(LAST_ANSWER_DONE, 30)
    assert b.eval("[...document.querySelectorAll('.msg.assistant')].pop().classList.contains('error')") is True
    assert "API key" in b.eval(LAST_TEXT) and "401" in b.eval(LAST_TEXT)

    # a wrong key is refused with its own message
    b.type_into("#key", "wrong")
    b.click("h1")
    b.wait_for(f"{STATUS}.includes('refused')", 30, what="the refusal of a wrong key")

    # the right key: the models load and a chat works
    b.eval("document.getElementById('key').value = ''; 1")
    b.type_into("#key", KEY)
    b.click("h1")
    b.wait_for(f"{STATUS} === 'ready'", 30, what="the models with the key")
    assert b.eval("document.getElementById('key').classList.contains('need')") is False
    set_field(b, "#max-tokens", "8")
    b.type_into("#input", "Say hi.")
    b.press_enter()
    b.wait_for(LAST_ANSWER_DONE + " && document.querySelectorAll('.msg.assistant').length === 2", 60)
    assert b.eval("[...document.querySelectorAll('.msg.assistant')].pop().classList.contains('error')") is False
    assert STATS_RE.search(b.eval(LAST_STATS))

    # the key stays in this tab only, unless "remember" is ticked (then localStorage)
    assert b.eval("localStorage.getItem('ryot-api-key')") is None
    assert b.eval("sessionStorage.getItem('ryot-api-key')") == KEY
    b.click("#remember")
    assert b.eval("localStorage.getItem('ryot-api-key')") == KEY
    b.reload()
    b.wait_for(f"{STATUS} === 'ready'", 30, what="the models after a reload")
    assert b.eval("document.getElementById('key').value") == KEY
    b.click("#remember")
    assert b.eval("localStorage.getItem('ryot-api-key')") is None
    no_csp_violations(b)
