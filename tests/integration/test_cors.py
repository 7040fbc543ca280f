"""Browsers calling the gateway from a page on another origin (``[server] cors_origins``, see
alloy/cors.py): the preflight answered by Alloy, and every answer to an allowed origin, success,
stream or error, carrying ``Access-Control-Allow-Origin``; nothing for another origin, nothing
without the setting, and never the provider's own CORS answer beside Alloy's."""

import http.client
import json
import subprocess
import sys

import pytest

from harness import RUN_DIR, assert_no_crash_logged, gateway_env, start_gateway_process
from scripted_upstream import ScriptedUpstream, answer

APP = "https://app.example"
MASTER = "sk-master-cors"
COMPLETION = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}  # fmt: skip
CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
PREFLIGHT = {"Origin": APP, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os"}  # fmt: skip


@pytest.fixture(scope="module")
def upstream():
    server = ScriptedUpstream()
    yield server
    server.close()


def gateway_with(tmp_path_factory, upstream, origins, server=""):
    """A gateway with ``cors_origins`` (None: not set) and ``server``'s other ``[server]`` lines;
    ``.config`` is its file."""
    setting = ("" if origins is None else f"cors_origins = {json.dumps(origins)}") + "\n        " + server
    config = tmp_path_factory.mktemp("cors") / "alloy.toml"
    process = start_gateway_process(
        config,
        f"""
        [server]
        master_key = "{MASTER}"
        {setting}
        [providers.openai]
        base_url = "{upstream.base}/v1"
        api_key = "sk-provider"
        """,
    )
    process.config = config
    return process


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream):
    process = gateway_with(tmp_path_factory, upstream, [APP, "http://localhost:5173"])
    yield process
    process.stop()
    assert_no_crash_logged(process)


def call(gateway, method, path, headers, body=None, connection=None):
    own = connection is None
    connection = connection or http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    if own:
        connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.getheaders(), data


def chat(gateway, origin=None, key=MASTER, scripted=None, body=CHAT, connection=None):
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **(scripted or answer(COMPLETION))}
    if origin is not None:
        headers["Origin"] = origin
    return call(gateway, "POST", "/v1/chat/completions", headers, body, connection)


def test_a_preflight_from_an_allowed_origin_is_answered_by_the_gateway(gateway, upstream):
    before = len(upstream.requests)
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    status, headers, _, data = call(gateway, "OPTIONS", "/v1/chat/completions", PREFLIGHT, connection=connection)
    assert status == 204 and data == b""
    assert headers["access-control-allow-origin"] == APP
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "authorization, content-type, x-stainless-os"
    assert headers["access-control-max-age"] == "600"
    assert "content-length" not in headers  # RFC 9110 section 8.6: never on a 204
    assert "access-control-allow-credentials" not in headers
    # No key was needed, nothing went upstream, and the connection serves the call that follows.
    status, headers, _, _ = chat(gateway, APP, connection=connection)
    connection.close()
    assert status == 200 and headers["access-control-allow-origin"] == APP
    assert len(upstream.requests) == before + 1


def test_every_answer_to_an_allowed_origin_names_it(gateway, upstream):
    status, headers, _, _ = chat(gateway, APP)
    assert status == 200 and headers["access-control-allow-origin"] == APP
    assert headers["access-control-expose-headers"] == "*" and "origin" in headers["vary"].lower()
    # A stream, an error, the gateway's own endpoints: a page must read each of them.
    stream = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[]}\n\ndata: [DONE]\n\n'
    status, headers, _, data = chat(gateway, APP, scripted=answer(stream, "text/event-stream"),
                                    body=json.dumps({**json.loads(CHAT), "stream": True}))  # fmt: skip
    assert status == 200 and data.endswith(b"data: [DONE]\n\n") and headers["access-control-allow-origin"] == APP
    status, headers, _, data = chat(gateway, APP, key="sk-wrong")
    assert status == 401 and json.loads(data)["error"]["code"] == "invalid_api_key"
    assert headers["access-control-allow-origin"] == APP
    status, headers, _, _ = call(gateway, "GET", "/health", {"Origin": APP})
    assert status == 200 and headers["access-control-allow-origin"] == APP
    origin = {"Origin": "http://localhost:5173", "Authorization": f"Bearer {MASTER}"}
    status, headers, _, _ = call(gateway, "POST", "/v1/nothing", origin, b"{}")
    assert status == 404 and headers["access-control-allow-origin"] == "http://localhost:5173"


def test_the_providers_own_cors_answer_never_doubles_the_gateways(gateway):
    scripted = answer(COMPLETION, header="Access-Control-Allow-Origin: *")
    status, _, raw_headers, _ = chat(gateway, APP, scripted=scripted)
    allowed = [value for name, value in raw_headers if name.lower() == "access-control-allow-origin"]
    assert status == 200 and allowed == [APP]
    status, _, raw_headers, _ = chat(gateway, None, scripted=scripted)  # not a browser: none at all
    assert not [name for name, _ in raw_headers if name.lower().startswith("access-control-")]


def test_another_origin_and_a_request_without_one_get_no_cors_answer(gateway):
    status, headers, _, _ = chat(gateway, "https://evil.example")
    assert status == 200 and "access-control-allow-origin" not in headers
    status, headers, _, _ = call(gateway, "OPTIONS", "/v1/chat/completions", {**PREFLIGHT, "Origin": "https://evil.example"})
    assert status == 401 and "access-control-allow-origin" not in headers  # an OPTIONS as any: the browser refuses
    status, headers, _, _ = chat(gateway, None)
    assert status == 200 and not [name for name in headers if name.startswith("access-control-")]
    # Each of these answers depends on Origin: a shared cache must not give them to an allowed page.
    for origin in (None, "https://evil.example"):
        assert "origin" in chat(gateway, origin)[1]["vary"].lower()
        assert "origin" in call(gateway, "GET", "/health", {} if origin is None else {"Origin": origin})[1]["vary"].lower()


def test_any_origin_and_no_setting(tmp_path_factory, upstream):
    anyone = gateway_with(tmp_path_factory, upstream, ["*"])
    try:
        status, headers, _, _ = call(anyone, "OPTIONS", "/v1/chat/completions", PREFLIGHT)
        assert status == 204 and headers["access-control-allow-origin"] == "*"
        status, headers, _, _ = chat(anyone, "https://anywhere.example")
        assert status == 200 and headers["access-control-allow-origin"] == "*"
    finally:
        anyone.stop()
    closed = gateway_with(tmp_path_factory, upstream, None)
    try:
        status, headers, _, _ = call(closed, "OPTIONS", "/v1/chat/completions", PREFLIGHT)
        assert status == 401 and "access-control-allow-origin" not in headers  # as before the setting
        status, headers, _, _ = chat(closed, APP)
        assert status == 200 and "access-control-allow-origin" not in headers
    finally:
        closed.stop()


def test_a_reload_changes_the_origins_at_once(tmp_path_factory, upstream):
    process = gateway_with(tmp_path_factory, upstream, [APP])
    try:
        assert chat(process, APP)[1]["access-control-allow-origin"] == APP
        process.config.write_text(process.config.read_text().replace(json.dumps([APP]), json.dumps(["https://other.example"])))
        status, _, _, data = call(process, "POST", "/admin/reload", {"Authorization": f"Bearer {MASTER}"}, b"")
        assert status == 200, data
        assert "access-control-allow-origin" not in chat(process, APP)[1]
        assert chat(process, "https://other.example")[1]["access-control-allow-origin"] == "https://other.example"
    finally:
        process.stop()


@pytest.mark.parametrize("origins", [["https://app.example/"], ["app.example"], ["https://app.example/path"], "*", [5]])
def test_a_cors_origin_that_is_not_an_origin_refuses_the_start(tmp_path, origins):
    config = tmp_path / "alloy.toml"
    config.write_text(f'[server]\ncors_origins = {json.dumps(origins)}\n[providers.openai]\napi_key = "sk-x"\n')
    done = subprocess.run([sys.executable, "-m", "alloy", "--port", "0", "--config", str(config)],
                          env=gateway_env(), cwd=RUN_DIR, capture_output=True, text=True, timeout=20)  # fmt: skip
    assert done.returncode != 0 and "server.cors_origins: expected" in done.stderr, done.stderr


def test_a_body_refused_for_its_size_still_names_the_origin(tmp_path_factory, upstream):
    # 413 comes from the head alone, before the body is read; the page must still be able to read it.
    process = gateway_with(tmp_path_factory, upstream, [APP], server="max_body_bytes = 1000")
    try:
        status, headers, _, _ = chat(process, APP, body=json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]}))
        assert status == 413 and headers["access-control-allow-origin"] == APP
    finally:
        process.stop()


def test_a_body_too_slow_to_arrive_still_names_the_origin(tmp_path_factory, upstream):
    # 408 comes while the body is arriving: its head was read, so the page can still read the 408.
    import socket

    process = gateway_with(tmp_path_factory, upstream, [APP], server="read_timeout = 1")
    try:
        with socket.create_connection(("127.0.0.1", process.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nOrigin: " + APP.encode()
                + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\""
            )  # fmt: skip
            received = b""
            while piece := sock.recv(65536):
                received += piece
        head = received.partition(b"\r\n\r\n")[0].lower()
        assert head.startswith(b"http/1.1 408 ") and b"access-control-allow-origin: " + APP.encode() in head
    finally:
        process.stop()
