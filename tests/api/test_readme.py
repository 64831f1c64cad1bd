"""The README's first-run example, posted as the README writes it: a new user
copying it must get a short, correct answer at the server's defaults."""

import json
import os
import re

import pytest

from conftest import REPO

if os.environ.get("RYOT_MODEL"):
    pytest.skip("the README example names the default model", allow_module_level=True)


def readme_example():
    """The JSON body of the README's curl example (between -d ' and the closing ')."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"curl -s http://127\.0\.0\.1:8080(/v1/chat/completions) .*? -d '(\{.*?\})'\n```", text, re.S)
    assert m, "README.md has no curl example of /v1/chat/completions"
    return m.group(1), json.loads(m.group(2))


def test_readme_example_answers_paris(http):
    path, body = readme_example()
    r = http.post(path, json=body)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["model"] == body["model"]
    msg = d["choices"][0]["message"]["content"]
    assert "Paris" in msg, msg
    assert d["choices"][0]["finish_reason"] == "stop"
    assert d["usage"]["completion_tokens"] < 32, d["usage"]


def test_readme_example_text_is_quoted(http):
    """The answer the README promises is the one the server gives."""
    path, body = readme_example()
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        promised = re.search(r"answers `([^`]+)`", f.read())
    assert promised, "README.md does not quote the example's answer"
    r = http.post(path, json=body)
    assert r.json()["choices"][0]["message"]["content"] == promised.group(1)
