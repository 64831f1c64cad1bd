"""A headless Chromium (Debian's `chromium` package) driven through the
Chrome DevTools Protocol over one WebSocket (the `websocket-client`
package): enough to load a page, run JavaScript in it, type, click with the
mouse, collect console and CSP messages, and take a screenshot.

The browser runs with a fresh profile in a temporary directory and
--remote-debugging-port=0; the port it picked is read from the
DevToolsActivePort file it writes there."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time

import websocket

START_TIMEOUT_S = 30
CALL_TIMEOUT_S = 30


def chromium_path():
    """The browser executable, or None (tests skip then)."""
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    return None


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page (tab) attached."""

    def __init__(self, exe=None, width=1100, height=800):
        exe = exe or chromium_path()
        if not exe:
            raise BrowserError("chromium is not installed (scripts/install-deps.sh installs it)")
        self.profile = tempfile.mkdtemp(prefix="ryot-chromium-")
        args = [exe, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
                "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
                "--disable-dev-shm-usage", "--disable-background-networking", "--disable-sync",
                "--password-store=basic", "--use-mock-keychain", f"--window-size={width},{height}"]
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox (CI runs as root)
        args.append("about:blank")
        self.log = tempfile.NamedTemporaryFile(prefix="ryot-chromium-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.ws = None
        self.next_id = 0
        self.console = []  # console messages and log entries, as text
        self.requests = []  # URLs of every request the page made
        try:
            self._connect()
        except BaseException:
            self.close()
            raise

    def _connect(self):
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        end = time.monotonic() + START_TIMEOUT_S
        while True:
            if os.path.exists(port_file):
                lines = open(port_file).read().split("\n")
                if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].strip():
                    break
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited with {self.proc.returncode}:\n{self._log_tail()}")
            if time.monotonic() > end:
                raise BrowserError(f"chromium wrote no DevToolsActivePort:\n{self._log_tail()}")
            time.sleep(0.05)
        port, path = lines[0].strip(), lines[1].strip()
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=CALL_TIMEOUT_S,
                                              suppress_origin=True)
        targets = self.call("Target.getTargets")["targetInfos"]
        pages = [t for t in targets if t["type"] == "page"]
        target = pages[0]["targetId"] if pages else self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.page_call(f"{domain}.enable")

    def _log_tail(self):
        try:
            with open(self.log.name, "r", errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    # ------------------------------------------------------------ protocol

    def _send(self, method, params, session):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        want = self.next_id
        end = time.monotonic() + CALL_TIMEOUT_S
        while time.monotonic() < end:
            m = json.loads(self.ws.recv())
            if m.get("id") == want:
                if "error" in m:
                    raise BrowserError(f"{method}: {m['error']}")
                return m.get("result", {})
            if "method" in m:
                self._event(m["method"], m.get("params", {}))
        raise BrowserError(f"{method}: no answer in {CALL_TIMEOUT_S} s")

    def _event(self, method, params):
        if method == "Runtime.consoleAPICalled":
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Log.entryAdded":
            self.console.append(params["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            d = params["exceptionDetails"]
            self.console.append("exception: " + d.get("exception", {}).get("description", d.get("text", "")))

    def call(self, method, **params):
        """A browser-level command."""
        return self._send(method, params, None)

    def page_call(self, method, **params):
        """A command to the page."""
        return self._send(method, params, self.session)

    # ------------------------------------------------------------ page helpers

    def eval(self, expr):
        """Value of a JavaScript expression in the page (promises awaited)."""
        r = self.page_call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise BrowserError(f"{expr!r}: {d.get('exception', {}).get('description', d.get('text'))}")
        return r["result"].get("value")

    def wait_for(self, expr, timeout=30.0, interval=0.02, what=None):
        """Polls expr until it is truthy; returns its value."""
        end = time.monotonic() + timeout
        while True:
            v = self.eval(expr)
            if v:
                return v
            if time.monotonic() > end:
                raise BrowserError(f"timed out after {timeout} s waiting for {what or expr}")
            time.sleep(interval)

    def goto(self, url, timeout=30.0):
        self.page_call("Page.navigate", url=url)
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'", timeout,
                      what=f"{url} to load")

    def reload(self, timeout=30.0):
        self.eval("window.__ryot_reload_marker = 1")
        self.page_call("Page.reload", ignoreCache=True)
        self.wait_for("window.__ryot_reload_marker === undefined && document.readyState === 'complete'", timeout,
                      what="the page to reload")

    def click(self, selector):
        """A real mouse click at the middle of the element."""
        box = self.eval(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                        f" if (!e) return null; e.scrollIntoView({{block: 'center'}});"
                        f" const r = e.getBoundingClientRect();"
                        f" return [r.left + r.width / 2, r.top + r.height / 2]; }})()")
        if not box:
            raise BrowserError(f"no element {selector}")
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            self.page_call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type_into(self, selector, text):
        """Focuses the element and types text as keyboard input."""
        self.click(selector)
        self.page_call("Input.insertText", text=text)

    def press_enter(self):
        for kind in ("keyDown", "keyUp"):
            self.page_call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter",
                           windowsVirtualKeyCode=13, nativeVirtualKeyCode=13,
                           **({"text": "\r"} if kind == "keyDown" else {}))

    def screenshot(self, path):
        data = base64.b64decode(self.page_call("Page.captureScreenshot", format="png")["data"])
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return data

    def close(self):
        if self.ws is not None:
            try:
                self.call("Browser.close")
            except Exception:
                pass
            try:
                self.ws.close()
            except Exception:
                pass
            self.ws = None
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
        try:
            os.unlink(self.log.name)
        except OSError:
            pass
