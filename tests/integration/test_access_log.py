"""The access log through a running gateway: one line per request with the right fields (a success,
a stream, the upstream's error, Alloy's own error, a refused request, a Messages call), in JSON or
text, flushed within a second and at shutdown; a log file that is removed, a full disk, an
unwritable path or a closed stderr never fails a request (the lines are dropped and counted).
Gateway events (configuration loaded, started, stopped) follow ``--log-level``.
"""

import http.client
import json
import shlex
import os
import signal
import socket
import subprocess
import sys
import time

import openai
import pytest

from harness import LISTENING, RUN_DIR, assert_no_crash_logged, exit_code, gateway_env, wait_until
from metrics_helpers import scrape

KEY = "sk-provider"
MASTER = "team-key-123"


def config(mock, log, extra=""):
    return f"""
[router]
max_retries = 1
backoff_base = 0.001
backoff_max = 0.002

[providers.openai]
base_url = "{mock.base}/v1"
api_key = "env:K"

[[models]]
name = "fast"
provider = "openai"
model = "gpt-4o-mini"

[log]
{log}

{extra}
"""


def start(start_gateway, mock, log, extra="", env=None, args=()):
    return start_gateway(config=config(mock, log, extra), env={"K": KEY, **(env or {})}, args=args)


def post(gateway, body, headers=None, path="/v1/chat/completions"):
    host, port = gateway.base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    raw = json.dumps(body).encode()
    connection.request("POST", path, raw, {"content-type": "application/json", **(headers or {})})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data, raw


def chat(model="fast", **extra):
    return {"model": model, "messages": [{"role": "user", "content": "log me"}], **extra}


def lines_of(path, count, seconds=5.0):
    """The file's lines once it has ``count`` of them (flushed at least once a second)."""
    assert wait_until(lambda: path.exists() and len(path.read_text().splitlines()) >= count, seconds), (
        path.read_text() if path.exists() else "no log file"
    )
    return path.read_text().splitlines()


AUTH = {"authorization": f"Bearer {MASTER}"}


def test_each_request_is_one_json_line_with_its_fields(start_gateway, mock, tmp_path):
    log = tmp_path / "access.log"
    gateway = start(start_gateway, mock, f'path = "{log}"', env={"ALLOY_MASTER_KEY": MASTER})
    status, body, raw = post(gateway, chat(), {**AUTH, "x-request-id": "req-success-1"})
    assert status == 200
    usage = json.loads(body)["usage"]
    sdk = openai.OpenAI(base_url=gateway.base + "/v1", api_key=MASTER, max_retries=0)
    streamed_usage = None
    for chunk in sdk.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "stream"}], stream=True, stream_options={"include_usage": True}
    ):
        streamed_usage = chunk.usage or streamed_usage
    assert post(gateway, chat(), {**AUTH, "x-mock-fault": "status=400"})[0] == 400  # the upstream's own
    assert post(gateway, chat(), {**AUTH, "x-mock-fault": "reset"})[0] == 502  # Alloy's, after a retry
    refused_status, _, _ = post(gateway, chat(), {"x-request-id": "refused-1"})
    assert refused_status == 401  # no key: refused before any call
    messages = {"model": "fast", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    anthropic_status, anthropic_body, _ = post(gateway, messages, {"x-api-key": MASTER, "anthropic-version": "2023-06-01"}, "/v1/messages")
    assert anthropic_status == 200
    scrape(gateway.base, key=MASTER)  # not a /v1/ request: not logged

    lines = [json.loads(line) for line in lines_of(log, 6)]
    time.sleep(1.2)
    assert len(log.read_text().splitlines()) == 6  # one line per request, the scrape none
    success, stream, upstream_error, alloy_error, refused, anthropic = lines

    assert success["request_id"] == "req-success-1"
    assert success["client"].startswith("127.0.0.1:")
    assert success["time"].endswith("Z") and success["time"][:4].isdigit()
    for key, value in {
        "method": "POST", "path": "/v1/chat/completions", "model": "fast", "served_model": "gpt-4o-mini",
        "provider": "openai", "status": 200, "attempts": 1, "stream": False, "bytes_in": len(raw),
        "prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"],
    }.items():  # fmt: skip
        assert success[key] == value, key
    assert 0 <= success["ttfb_ms"] <= success["duration_ms"]
    assert success["bytes_out"] == len(body) and "ttft_ms" not in success
    assert 0 <= success["overhead_us"] <= success["duration_ms"] * 1000
    assert "error" not in success and "key" not in success

    assert stream["stream"] is True and stream["status"] == 200
    assert stream["prompt_tokens"] == streamed_usage.prompt_tokens
    assert stream["completion_tokens"] == streamed_usage.completion_tokens
    assert stream["request_id"] and stream["request_id"] != success["request_id"]
    assert 0 < stream["ttft_ms"] <= stream["duration_ms"] and stream["bytes_out"] > 0

    assert upstream_error["status"] == 400 and upstream_error["attempts"] == 1
    assert "error" not in upstream_error  # the upstream's answer, relayed: not Alloy's own error
    assert upstream_error["provider"] == "openai" and "ttfb_ms" in upstream_error

    assert alloy_error["status"] == 502 and alloy_error["attempts"] == 2
    assert (alloy_error["error"], alloy_error["error_code"]) == ("server_error", "bad_gateway")
    assert "ttfb_ms" not in alloy_error and "overhead_us" not in alloy_error
    assert alloy_error["duration_ms"] > 0

    assert refused["status"] == 401 and refused["attempts"] == 0
    assert refused["request_id"] == "refused-1"  # the id its answer carried, as for any other line
    assert refused["client"].startswith("127.0.0.1:")
    assert (refused["error"], refused["error_code"]) == ("invalid_request_error", "invalid_api_key")
    assert "model" not in refused and "provider" not in refused and "duration_ms" not in refused

    assert anthropic["path"] == "/v1/messages" and anthropic["status"] == 200
    assert anthropic["model"] == "fast" and anthropic["provider"] == "openai"
    assert anthropic["client"].startswith("127.0.0.1:")  # a Messages call asks the client's connection
    assert anthropic["bytes_out"] == len(anthropic_body)  # the Message it got, not the chat completion behind it
    assert MASTER not in log.read_text() and KEY not in log.read_text()  # never a key
    counted = scrape(gateway.base, key=MASTER)
    assert counted.value("alloy_access_log_lines_total") == 6
    assert counted.value("alloy_access_log_dropped_total") == 0
    assert_no_crash_logged(gateway)


def test_bytes_out_is_what_a_messages_or_responses_client_received(start_gateway, mock, tmp_path):
    # Their answers are translated from a chat completion: the line counts the translated body
    # (without the chunk framing), streamed or whole.
    log = tmp_path / "access.log"
    chat_only = f'[providers.plain]\nkind = "openai"\nbase_url = "{mock.base}/v1"\napi_key = "env:K"\nresponses_api = false\n'
    gateway = start(start_gateway, mock, f'path = "{log}"', extra=chat_only)
    messages = {"model": "fast", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    received = [
        post(gateway, {**messages, "stream": True}, {"anthropic-version": "2023-06-01"}, "/v1/messages")[1],
        post(gateway, {"model": "plain/gpt-4o-mini", "input": "hi", "stream": True}, path="/v1/responses")[1],
        post(gateway, {"model": "plain/gpt-4o-mini", "input": "hi"}, path="/v1/responses")[1],
    ]
    assert received[0].startswith(b"event: message_start") and received[1].startswith(b"event: response.created")
    lines = [json.loads(line) for line in lines_of(log, 3)]
    assert [line["status"] for line in lines] == [200, 200, 200]
    assert [line["bytes_out"] for line in lines] == [len(body) for body in received]


def test_text_format_is_one_key_value_line_per_request(start_gateway, mock, tmp_path):
    log = tmp_path / "access.log"
    gateway = start(start_gateway, mock, f'path = "{log}"\nformat = "text"')
    assert post(gateway, chat(), {"x-request-id": "txt-1"})[0] == 200
    assert post(gateway, chat("unknown model"))[0] == 404
    ok, missing = lines_of(log, 2)
    assert ok.split(" ")[1:4] == ["POST", "/v1/chat/completions", "200"]
    pairs = dict(part.split("=", 1) for part in ok.split(" ")[4:])
    assert pairs["request_id"] == "txt-1" and pairs["model"] == "fast" and pairs["provider"] == "openai"
    assert pairs["attempts"] == "1" and float(pairs["duration_ms"]) > 0
    assert " 404 " in missing and "error_code=model_not_found" in missing


def test_a_client_cannot_add_fields_to_a_text_line(start_gateway, mock, tmp_path):
    # The model is the client's own text: a quote in it must stay inside its value. (The text
    # escaping once doubled the backslash before a quote, and the quote then ended the value.)
    log = tmp_path / "access.log"
    wildcard = '[wildcards]\n"gpt-*" = "openai"\n'
    gateway = start(start_gateway, mock, f'path = "{log}"\nformat = "text"', extra=wildcard)
    hostile = 'gpt-a" provider=forged status=299 x="\\'
    assert post(gateway, chat(hostile), {"x-request-id": "txt-2"})[0] == 200
    (line,) = lines_of(log, 1)
    words = shlex.split(line, posix=True)  # logfmt's quoting reads like a shell's words
    fields = dict(word.split("=", 1) for word in words[4:])
    assert fields["model"] == hostile and fields["provider"] == "openai" and fields["request_id"] == "txt-2", fields
    assert words[3] == "200"
    # Outside printable ASCII, a value is quoted and escaped, as the README says (a log shipper
    # reading the line as ASCII or Latin-1 sees no raw bytes of another encoding).
    assert post(gateway, chat("gpt-\u00e9\u65e5"))[0] == 200
    second = lines_of(log, 2)[1]
    assert second.isascii() and 'model="gpt-\\xe9\\u65e5"' in second, second


def test_sampling_logs_the_share_asked_for(start_gateway, mock, tmp_path):
    log = tmp_path / "access.log"
    gateway = start(start_gateway, mock, f'path = "{log}"\nsample = 0.0')
    for _ in range(5):
        assert post(gateway, chat())[0] == 200
    time.sleep(1.5)
    assert not log.exists() or log.read_text() == ""
    off = start(start_gateway, mock, "access = false")
    assert post(off, chat())[0] == 200
    assert scrape(off.base).value("alloy_access_log_lines_total") == 0


def test_lines_are_flushed_at_shutdown(start_gateway, mock, tmp_path):
    log = tmp_path / "access.log"
    gateway = start(start_gateway, mock, f'path = "{log}"')
    for _ in range(3):
        assert post(gateway, chat())[0] == 200
    gateway.signal(signal.SIGTERM)  # before the next once-a-second flush, most likely
    assert exit_code(gateway, 10) == 0
    assert len(log.read_text().splitlines()) == 3


def test_a_removed_log_file_is_started_again(start_gateway, mock, tmp_path):
    log = tmp_path / "access.log"
    gateway = start(start_gateway, mock, f'path = "{log}"')
    assert post(gateway, chat())[0] == 200
    lines_of(log, 1)
    os.rename(log, tmp_path / "access.log.1")  # logrotate, without a signal
    for _ in range(3):
        assert post(gateway, chat())[0] == 200
    assert len(lines_of(log, 3)) == 3
    assert len((tmp_path / "access.log.1").read_text().splitlines()) == 1
    log.unlink()
    assert post(gateway, chat())[0] == 200
    assert len(lines_of(log, 1)) == 1


@pytest.mark.parametrize("where", ["full disk", "unwritable path"])
def test_a_log_that_cannot_be_written_drops_lines_and_fails_no_request(start_gateway, mock, tmp_path, where):
    if where == "full disk":
        if not os.path.exists("/dev/full"):
            pytest.skip("no /dev/full here")
        path = "/dev/full"  # every write fails with ENOSPC
    else:
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        path = str(blocker / "access.log")  # ENOTDIR, even for root
    gateway = start(start_gateway, mock, f'path = "{path}"')
    for _ in range(5):
        assert post(gateway, chat())[0] == 200
    assert wait_until(lambda: scrape(gateway.base).value("alloy_access_log_dropped_total") == 5, 5)
    assert post(gateway, chat())[0] == 200
    assert gateway.popen.poll() is None
    assert_no_crash_logged(gateway)
    # The operator is told, once, not left to find a counter (at start for a path it cannot open).
    assert wait_until(lambda: f"the access log cannot be written to {path}" in gateway.stderr, 5), gateway.stderr
    assert gateway.stderr.count("the access log cannot be written") == 1


def test_a_log_directory_created_after_the_start_is_written_to_and_said_so(start_gateway, mock, tmp_path):
    path = tmp_path / "later" / "access.log"
    gateway = start(start_gateway, mock, f'path = "{path}"')
    assert f"the access log cannot be written to {path} (No such file or directory)" in gateway.stderr
    path.parent.mkdir()
    assert post(gateway, chat())[0] == 200
    assert len(lines_of(path, 1)) == 1
    assert wait_until(lambda: f"the access log is written to {path} again" in gateway.stderr, 5), gateway.stderr
    assert "alloy: alloy:" not in gateway.stderr  # the logger names itself once


def test_a_closed_stderr_never_breaks_a_request(mock, tmp_path):
    path = tmp_path / "alloy.toml"
    path.write_text(config(mock, ""))  # the access log on its default: stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "alloy", "--host", "127.0.0.1", "--port", "0", "--config", str(path)],
        env=gateway_env({"K": KEY}), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=RUN_DIR,
    )  # fmt: skip
    try:
        port = None
        deadline = time.monotonic() + 20
        while port is None and time.monotonic() < deadline:
            match = LISTENING.search(process.stderr.readline())
            port = match and int(match.group(2))
        assert port, "the gateway did not start"
        process.stderr.close()  # nobody reads stderr any more: writes to it fail (EPIPE)

        class Gateway:
            base = f"http://127.0.0.1:{port}"

        for _ in range(3):
            assert post(Gateway, chat())[0] == 200
        time.sleep(1.5)  # a flush into the closed pipe
        for _ in range(3):
            assert post(Gateway, chat())[0] == 200
        assert wait_until(lambda: scrape(Gateway.base).value("alloy_access_log_dropped_total") >= 3, 5)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def test_log_level_decides_which_gateway_events_are_shown(start_gateway, mock, tmp_path):
    log = tmp_path / "access.log"
    verbose = start(start_gateway, mock, f'path = "{log}"', args=["--log-level", "INFO"])
    assert "configuration loaded from" in verbose.stderr and "1 provider(s) (openai)" in verbose.stderr
    assert wait_until(lambda: "gateway started" in verbose.stderr, 5)
    verbose.signal(signal.SIGTERM)
    assert exit_code(verbose, 10) == 0
    assert "gateway stopped" in verbose.stderr
    quiet = start(start_gateway, mock, f'path = "{tmp_path / "other.log"}"')
    assert post(quiet, chat())[0] == 200
    quiet.signal(signal.SIGTERM)
    assert exit_code(quiet, 10) == 0
    assert "configuration loaded" not in quiet.stderr and "gateway started" not in quiet.stderr


def test_log_settings_are_checked_at_start(start_gateway, mock):
    for bad, message in (('format = "xml"', "log.format"), ("sample = 1.5", "log.sample"), ("colour = 1", "log.colour")):
        with pytest.raises(RuntimeError, match=message):
            start(start_gateway, mock, bad)


def test_a_client_that_leaves_before_its_answer_is_logged_with_status_0(start_gateway, mock, tmp_path):
    log = tmp_path / "access.log"
    gateway = start(start_gateway, mock, f'path = "{log}"')
    host, port = gateway.base.removeprefix("http://").split(":")
    body = json.dumps(chat()).encode()
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: g\r\ncontent-type: application/json\r\n"
        b"x-mock-fault: slow-first-byte=3000\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert wait_until(lambda: scrape(gateway.base).value("alloy_requests_in_flight") == 1, 5)
    sock.close()  # gone before the upstream's first byte
    (line,) = [json.loads(text) for text in lines_of(log, 1)]
    assert line["status"] == 0 and line["attempts"] == 1 and line["provider"] == "openai"
    assert "ttfb_ms" not in line and "error" not in line and line["duration_ms"] > 0
    counted = scrape(gateway.base)
    assert counted.value(
        "alloy_requests_total", endpoint="chat/completions", model="fast", provider="openai", status_class="none"
    ) == 1
    assert counted.value("alloy_requests_in_flight") == 0


def test_an_unreachable_upstream_is_reported_once_then_its_return(start_gateway, tmp_path):
    """Connection failures are a WARNING once per outage window (with a count), not once per
    request, and the first connection that succeeds again is an INFO."""
    import socket as sockets

    from harness import start_mock_process

    with sockets.socket() as probe:  # a port nothing listens on, yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = start_gateway(
        config=f'[router]\nmax_retries = 0\n\n[providers.openai]\nbase_url = "http://127.0.0.1:{port}/v1"\napi_key = "sk-provider"\n',
        args=["--log-level", "INFO"],
    )
    for _ in range(5):
        assert post(gateway, chat("gpt-4o-mini"))[0] == 502
    assert wait_until(lambda: "cannot connect" in gateway.stderr, 5)
    assert gateway.stderr.count("cannot connect") == 1  # five failures, one report
    mock = start_mock_process("--api-key", "sk-provider", "--port", str(port))
    try:
        assert post(gateway, chat("gpt-4o-mini"))[0] == 200
        assert wait_until(lambda: "connected again" in gateway.stderr, 5)
    finally:
        mock.stop()


def test_a_stream_that_broke_off_is_logged_as_an_error(start_gateway, mock, tmp_path):
    # The client got a 200 head, then an error event: the line keeps its status but says it failed
    # (it was once a plain success, in the log and in the metrics' error counts).
    log = tmp_path / "access.log"
    gateway = start(start_gateway, mock, f'path = "{log}"')
    status, body, _ = post(gateway, chat(stream=True), {"x-mock-fault": "reset-mid-stream"})
    assert status == 200 and b"error" in body
    (line,) = [json.loads(text) for text in lines_of(log, 1)]
    assert line["status"] == 200 and line["stream"] is True
    assert line["error_code"] and line["error"], line
    assert "overhead_us" not in line  # not a sample of the gateway's own time
    assert line["bytes_out"] == len(body)  # the error event the stream ended with included


def test_a_request_the_http_parser_refuses_is_counted_and_logged(start_gateway, mock, tmp_path):
    # A body over max_body_bytes (413) or a head over max_header_bytes (431) never reaches
    # dispatch; operators still see it: a line with its status and error, and the metrics count it.
    log = tmp_path / "access.log"
    gateway = start(start_gateway, mock, f'path = "{log}"', extra="[server]\nmax_body_bytes = 200\nmax_header_bytes = 1024\nread_timeout = 1\n")
    assert post(gateway, chat(padding="x" * 500))[0] == 413
    assert post(gateway, chat(), {"x-big": "y" * 2000})[0] == 431
    with socket.create_connection(("127.0.0.1", int(gateway.base.rsplit(":", 1)[1])), timeout=10) as slow:
        slow.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\n")  # and nothing more: 408
        assert b" 408 " in slow.recv(65536)
    lines = [json.loads(text) for text in lines_of(log, 3)]
    assert sorted((line["status"], line["error_code"]) for line in lines) == [
        (408, "request_timeout"), (413, "request_too_large"), (431, "request_header_fields_too_large")
    ]
    assert all(line["request_id"] and line["client"].startswith("127.0.0.1:") for line in lines)
    assert not any("method" in line or "path" in line for line in lines)  # none was read
    metrics = scrape(gateway.base)
    assert metrics.total("alloy_requests_total", status_class="4xx") == 3
    assert metrics.total("alloy_errors_total", code="request_too_large") == 1


def test_a_refusal_is_logged_under_the_path_the_routes_saw(start_gateway, mock, tmp_path):
    # Refusals were logged (and counted) only when the raw target began with /v1/: //v1/... and
    # absolute-form targets, which the routes take, were left out.
    log = tmp_path / "access.log"
    gateway = start(start_gateway, mock, f'path = "{log}"', env={"ALLOY_MASTER_KEY": MASTER})
    for number, path in enumerate(["//v1/chat/completions", "http://g/v1//chat/completions?x=1"]):
        assert post(gateway, chat(), {"x-request-id": f"refused-{number}"}, path)[0] == 401
    lines = [json.loads(line) for line in lines_of(log, 2)]
    assert [(line["request_id"], line["path"], line["status"]) for line in lines] == [
        ("refused-0", "/v1/chat/completions", 401), ("refused-1", "/v1/chat/completions", 401),
    ]


def test_a_models_listing_the_gateway_answers_is_logged_and_counted(start_gateway, mock, tmp_path):
    # /v1/models with [[models]] is answered by the gateway itself: its 200s were neither logged
    # nor counted while its 404s were, so a dashboard showed the endpoint failing every time.
    log = tmp_path / "access.log"
    gateway = start(start_gateway, mock, f'path = "{log}"')
    sizes, ids = [], []
    for target, status in (("/v1/models", 200), ("/v1/models/fast", 200), ("/v1/models/nothing", 404)):
        connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
        connection.request("GET", target, headers={"x-request-id": f"listing-{len(ids)}"})
        response = connection.getresponse()
        assert response.status == status
        sizes.append(len(response.read()))
        ids.append(response.getheader("x-request-id"))  # every /v1/ answer carries one (README)
        connection.close()
    assert ids == ["listing-0", "listing-1", "listing-2"]
    lines = [json.loads(line) for line in lines_of(log, 3)]
    assert [(line["path"], line["status"]) for line in lines] == [("/v1/models", 200), ("/v1/models/fast", 200), ("/v1/models/nothing", 404)]
    assert [line.get("request_id") for line in lines] == ids
    assert [line["bytes_out"] for line in lines[:2]] == sizes[:2]  # what the client got
    by_class = {}
    for labels, value in scrape(gateway.base).series("alloy_requests_total").items():
        labels = dict(labels)
        if labels["endpoint"].startswith("models"):
            by_class[labels["status_class"]] = by_class.get(labels["status_class"], 0) + value
    assert by_class == {"2xx": 2, "4xx": 1}


def test_a_passed_through_request_and_an_unknown_model_are_logged_with_what_they_named(start_gateway, mock, tmp_path):
    # A passed-through request's line had no provider (the one it went to), and a request refused
    # for its model (model_not_found) had no model: the two lines an operator greps for first.
    log = tmp_path / "access.log"
    gateway = start(start_gateway, mock, f'path = "{log}"')
    sdk = openai.OpenAI(base_url=gateway.base + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        sdk.files.retrieve("file-abc123")  # passed through to the provider, which has no such file
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    files, unknown = (json.loads(line) for line in lines_of(log, 2))
    assert (files["path"], files["status"], files.get("provider")) == ("/v1/files/file-abc123", 404, "openai")
    assert (unknown["status"], unknown["error_code"]) == (404, "model_not_found")
    assert unknown.get("model") == "no-such-model"


def test_a_long_path_is_cut_so_every_line_fits_one_atomic_pipe_write(start_gateway, mock, tmp_path):
    # Workers sharing stderr (a pipe) never interleave inside a line only while each line is one
    # write of at most PIPE_BUF (4096) bytes: a client's 6,000-byte path made longer lines.
    log = tmp_path / "access.log"
    gateway = start(start_gateway, mock, f'path = "{log}"')
    long_id = "file-" + 'x"' * 3000  # quotes: twice as long once JSON-escaped
    host, port = gateway.base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("GET", "/v1/files/" + long_id.replace('"', "%22"))
    assert connection.getresponse().read() is not None
    connection.close()
    [line] = lines_of(log, 1)
    entry = json.loads(line)
    assert len(line.encode()) + 1 <= 4096
    assert entry["path"].startswith("/v1/files/file-x%22") and entry["path"].endswith("...")
    assert len(entry["path"]) == 1024 + 3
