"""The OpenAI Batch API through the official SDK (client.files,
client.batches): JSONL upload validated line by line, the status machine
(in_progress -> completed / failed / cancelling -> cancelled / expired),
request_counts, output and error files in input order whose bodies equal
what the endpoint answers, cancel, list with pagination.  The server keeps
its queue in LMDB (--tasks-dir)."""

import json
import shutil
import tempfile
import time

import httpx
import openai
import pytest

from conftest import assert_openai_error, start_server


def _q(content):
    return [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": content}]


QUESTIONS = ["What is the capital of France?", "Name a color.", "Say hello."]


@pytest.fixture(scope="module")
def srv():
    d = tempfile.mkdtemp(prefix="ryot-batch-test-")
    s = start_server("--ctx", "512", "--threads", "2", "--task-workers", "2", "--tasks-dir", d)
    yield s
    s.stop_and_check()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def sdk(srv):
    return srv.client()


@pytest.fixture(scope="module")
def mid(srv):
    return httpx.get(srv.url("/v1/models"), timeout=30).json()["data"][0]["id"]


def jsonl(lines):
    return ("\n".join(json.dumps(x) for x in lines) + "\n").encode()


def chat_line(cid, content, mid, **kw):
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": mid, "messages": _q(content), "temperature": 0, "max_tokens": 8, **kw}}


def wait_batch(sdk, bid, done=("completed", "failed", "cancelled", "expired"), timeout=180):
    end = time.monotonic() + timeout
    seen = []
    while True:
        b = sdk.batches.retrieve(bid)
        if not seen or seen[-1] != b.status:
            seen.append(b.status)
        if b.status in done:
            return b, seen
        assert time.monotonic() < end, f"batch {bid} still {b.status} (saw {seen})"
        time.sleep(0.2)


def read_lines(sdk, file_id):
    text = sdk.files.content(file_id).text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_batch_roundtrip(srv, sdk, mid):
    lines = [chat_line(f"q{i}", q, mid) for i, q in enumerate(QUESTIONS)]
    # valid for the endpoint's parser, refused when run: an unknown model
    lines.insert(1, chat_line("bad-model", "hi", "no-such-model"))
    f = sdk.files.create(file=("questions.jsonl", jsonl(lines)), purpose="batch")
    assert f.purpose == "batch" and f.bytes == len(jsonl(lines)) and f.filename == "questions.jsonl"
    assert f.id.startswith("file-") and f.object == "file"
    assert sdk.files.retrieve(f.id).id == f.id
    assert sdk.files.content(f.id).content == jsonl(lines)

    b = sdk.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                           metadata={"job": "roundtrip"})
    assert b.status == "in_progress" and b.object == "batch" and b.endpoint == "/v1/chat/completions"
    assert b.request_counts.total == 4 and b.metadata == {"job": "roundtrip"}
    assert b.in_progress_at and b.expires_at == b.created_at + 86400
    b, seen = wait_batch(sdk, b.id)
    assert b.status == "completed", seen
    assert b.request_counts.total == 4 and b.request_counts.completed == 3 and b.request_counts.failed == 1
    assert b.completed_at >= b.in_progress_at and b.finalizing_at

    out = read_lines(sdk, b.output_file_id)
    assert [o["custom_id"] for o in out] == ["q0", "q1", "q2"]  # input order
    for o, q in zip(out, QUESTIONS):
        assert o["error"] is None and o["response"]["status_code"] == 200
        body = o["response"]["body"]
        # the same answer the endpoint gives for the same request
        direct = sdk.chat.completions.create(model=mid, messages=_q(q), temperature=0, max_tokens=8)
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"] == direct.choices[0].message.content
        assert body["usage"]["completion_tokens"] == direct.usage.completion_tokens
    errs = read_lines(sdk, b.error_file_id)
    assert len(errs) == 1 and errs[0]["custom_id"] == "bad-model"
    assert errs[0]["response"]["status_code"] == 404
    assert errs[0]["response"]["body"]["error"]["code"] == "model_not_found"
    assert sdk.files.retrieve(b.output_file_id).purpose == "batch_output"

    listed = sdk.batches.list(limit=100)
    assert b.id in [x.id for x in listed.data]


def test_list_pagination(srv, sdk, mid):
    f = sdk.files.create(file=("one.jsonl", jsonl([chat_line("a", "hi", mid, max_tokens=1)])), purpose="batch")
    ids = [sdk.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h").id
           for _ in range(3)]
    page = sdk.batches.list(limit=2)
    assert [x.id for x in page.data] == ids[::-1][:2]  # newest first
    assert page.has_more
    page2 = sdk.batches.list(limit=2, after=page.data[-1].id)
    assert page2.data[0].id == ids[0]
    for bid in ids:
        assert wait_batch(sdk, bid)[0].status == "completed"


def test_upload_validated_per_line(srv, sdk):
    bad = (b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
           b'not json\n'
           b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
           b'{"custom_id": "c", "method": "GET", "url": "/v1/chat/completions", "body": {}}\n'
           b'\n'
           b'{"custom_id": "d", "method": "POST", "url": "/v1/images", "body": {}}\n')
    with pytest.raises(openai.BadRequestError) as ei:
        sdk.files.create(file=("bad.jsonl", bad), purpose="batch")
    msg = ei.value.body["message"]
    for part in ("line 2", "line 3", "line 4", "line 6", "custom_id", "method", "url"):
        assert part in msg, msg
    assert ei.value.body["param"] == "file"
    r = httpx.post(srv.url("/v1/files"), files={"file": ("x.jsonl", b"")}, data={"purpose": "batch"}, timeout=30)
    assert_openai_error(r, 400, param="file")
    r = httpx.post(srv.url("/v1/files"), files={"file": ("x.jsonl", b"{}\n")}, data={"purpose": "fine-tune"}, timeout=30)
    assert_openai_error(r, 400, param="purpose")
    r = httpx.post(srv.url("/v1/files"), data={"purpose": "batch"}, timeout=30)
    assert_openai_error(r, 400)
    r = httpx.post(srv.url("/v1/files"), json={"purpose": "batch"}, timeout=30)  # not multipart
    assert_openai_error(r, 400)


def test_validation_failure_names_lines(srv, sdk, mid):
    lines = [chat_line("ok", "hi", mid),
             {"custom_id": "nomsg", "method": "POST", "url": "/v1/chat/completions", "body": {"max_tokens": 2}},
             {"custom_id": "wrong-url", "method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}},
             chat_line("neg", "hi", mid, temperature=-1)]
    f = sdk.files.create(file=("mixed.jsonl", jsonl(lines)), purpose="batch")
    b = sdk.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert b.status == "failed" and b.failed_at
    errs = {e.line: e for e in b.errors.data}
    assert set(errs) == {2, 3, 4}
    assert errs[2].param == "body.messages" and "'messages'" in errs[2].message
    assert errs[3].param == "url"
    assert errs[4].param == "body.temperature"
    assert sdk.batches.retrieve(b.id).status == "failed"
    # bad arguments to create
    for kw, param in ((dict(input_file_id="file-nope", endpoint="/v1/chat/completions"), "input_file_id"),
                      (dict(input_file_id=f.id, endpoint="/v1/moderations"), "endpoint")):
        with pytest.raises((openai.BadRequestError, openai.NotFoundError)) as ei:
            sdk.batches.create(completion_window="24h", **kw)
        assert ei.value.body["param"] == param
    r = httpx.post(srv.url("/v1/batches"), timeout=30,
                   json={"input_file_id": f.id, "endpoint": "/v1/chat/completions", "completion_window": "soon"})
    assert_openai_error(r, 400, param="completion_window")
    assert_openai_error(httpx.get(srv.url("/v1/batches/batch_nope"), timeout=30), 404)
    assert_openai_error(httpx.delete(srv.url("/v1/batches"), timeout=30), 405)
    assert_openai_error(httpx.get(srv.url("/v1/batches/x/cancel"), timeout=30), 405)
    assert_openai_error(httpx.post(srv.url("/v1/batches"), content=b"{", timeout=30), 400)


def long_lines(mid, n, tokens=48):
    return [chat_line(f"l{i}", f"Count to {i + 50}.", mid, max_tokens=tokens, ignore_eos=True) for i in range(n)]


def accounted(sdk, b, n):
    """Every input line is in exactly one of the output and error files."""
    ids = []
    for fid in (b.output_file_id, b.error_file_id):
        if fid:
            ids += [x["custom_id"] for x in read_lines(sdk, fid)]
    assert sorted(ids) == sorted(f"l{i}" for i in range(n))


def test_cancel(srv, sdk, mid):
    n = 24
    f = sdk.files.create(file=("long.jsonl", jsonl(long_lines(mid, n))), purpose="batch")
    b = sdk.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    c = sdk.batches.cancel(b.id)
    assert c.status in ("cancelling", "cancelled") and c.cancelling_at
    b, seen = wait_batch(sdk, b.id)
    assert b.status == "cancelled" and b.cancelled_at, seen
    rc = b.request_counts
    assert rc.total == n and rc.completed + rc.failed < n
    accounted(sdk, b, n)
    errs = read_lines(sdk, b.error_file_id)
    assert any(e["error"] and e["error"]["code"] == "batch_cancelled" for e in errs)
    # a finished batch cannot be cancelled
    done = sdk.batches.list(limit=100).data
    fin = next(x for x in done if x.status == "completed")
    with pytest.raises(openai.APIStatusError) as ei:
        sdk.batches.cancel(fin.id)
    assert ei.value.status_code == 409


def test_expired(srv, sdk, mid):
    n = 16
    f = sdk.files.create(file=("slow.jsonl", jsonl(long_lines(mid, n, tokens=64))), purpose="batch")
    r = httpx.post(srv.url("/v1/batches"), timeout=30,
                   json={"input_file_id": f.id, "endpoint": "/v1/chat/completions", "completion_window": "1s"})
    assert r.status_code == 200, r.text
    b, seen = wait_batch(sdk, r.json()["id"])
    assert b.status == "expired" and b.expired_at, seen
    assert b.request_counts.completed < n
    accounted(sdk, b, n)
    errs = read_lines(sdk, b.error_file_id)
    assert any(e["error"] and e["error"]["code"] == "batch_expired" for e in errs)
