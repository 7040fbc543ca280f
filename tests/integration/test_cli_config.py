"""The ``alloy`` command: --version, refusing a bad configuration at start-up (naming the file and
the key, never printing a secret), and the zero-config paths (built-in mock; environment only).
"""

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import openai
import pytest

from harness import RUN_DIR, gateway_env

SECRETS = {
    "ALLOY_TEST_SECRET": "sk-envsecret-3b1f0a9d",
    "ALLOY_MASTER_KEY": "mk-mastersecret-71c2",
}


def run_alloy(*args, env=None, timeout=20):
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "alloy", *args],
            env=gateway_env(env),
            cwd=RUN_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"alloy {' '.join(args)} still running after {timeout}s (it should have exited):\n{expired.stderr}")
    return result, time.monotonic() - started


def sdk(gateway):
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key="client-key", max_retries=0, timeout=30.0)


# --- --version --------------------------------------------------------------------------------------


def test_version():
    from alloy._version import __version__

    result, elapsed = run_alloy("--version")
    assert result.returncode == 0, result.stderr
    assert (result.stdout + result.stderr).strip() == f"alloy {__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", __version__)
    assert elapsed < 15


def test_help_mentions_the_options():
    result, _ = run_alloy("--help")
    assert result.returncode == 0
    for option in ("--config", "--port", "--host", "--version"):
        assert option in result.stdout


# --- bad configuration ---------------------------------------------------------------------------

VALID_PROVIDER = """
[providers.openai]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "env:ALLOY_TEST_SECRET"
"""

BAD_CONFIGS = {
    # name: (file content, words the message must contain)
    "unknown_provider_key": (
        VALID_PROVIDER + 'base_urll = "http://127.0.0.1:9/v1"\n',
        ["providers.openai", "base_urll", "unknown"],
    ),
    "unknown_server_key": (
        '[server]\nmax_body = 10\n' + VALID_PROVIDER,
        ["server", "max_body", "unknown"],
    ),
    "unknown_top_level_key": (
        VALID_PROVIDER + '\n[routes]\nfast = "openai"\n',
        ["routes"],
    ),
    "wrong_type_timeout": (
        VALID_PROVIDER + 'read_timeout = "slow"\n',
        ["providers.openai", "read_timeout", "float", "str"],
    ),
    "unknown_provider_in_model": (
        VALID_PROVIDER + '\n[[models]]\nname = "fast"\nprovider = "anthropic"\nmodel = "claude"\n',
        ["models[0]", "provider", "anthropic"],
    ),
    "unknown_upstream_client": (
        VALID_PROVIDER + 'client = "requests"\n',
        ["providers.openai", "client", "requests"],
    ),
    "bad_base_url": (
        VALID_PROVIDER.replace("http://127.0.0.1:9/v1", "127.0.0.1:9/v1"),
        ["providers.openai", "base_url"],
    ),
    "missing_env_secret": (
        VALID_PROVIDER.replace("env:ALLOY_TEST_SECRET", "env:ALLOY_TEST_NOT_SET"),
        ["providers.openai", "api_key", "ALLOY_TEST_NOT_SET"],
    ),
    "bad_toml": (
        '[providers.openai\nkind = "openai"\n',
        [],
    ),
    "unknown_router_key": (
        '[router]\nmax_retry = 3\n' + VALID_PROVIDER,
        ["router", "max_retry", "unknown"],
    ),
    "unknown_strategy": (
        '[router]\nstrategy = "fastest"\n' + VALID_PROVIDER,
        ["router.strategy", "fastest", "round-robin"],
    ),
    "negative_retries": (
        '[router]\nmax_retries = -1\n' + VALID_PROVIDER,
        ["router.max_retries", "negative"],
    ),
    "fallback_to_an_unknown_model": (
        VALID_PROVIDER + '\n[[models]]\nname = "fast"\nprovider = "openai"\nfallbacks = ["slow"]\n',
        ["models[0].fallbacks", "slow"],
    ),
    "provider_and_deployments_together": (
        VALID_PROVIDER + '\n[[models]]\nname = "fast"\nprovider = "openai"\ndeployments = [{ provider = "openai" }]\n',
        ["models[0].deployments", "not both"],
    ),
    "deployment_of_an_unknown_provider": (
        VALID_PROVIDER + '\n[[models]]\nname = "fast"\ndeployments = [{ provider = "openai" }, { provider = "azure" }]\n',
        ["models[0].deployments[1].provider", "azure"],
    ),
    "unknown_deployment_key": (
        VALID_PROVIDER + '\n[[models]]\nname = "fast"\ndeployments = [{ provider = "openai", wieght = 2 }]\n',
        ["models[0].deployments[0]", "wieght", "unknown"],
    ),
    "zero_weight": (
        VALID_PROVIDER + '\n[[models]]\nname = "fast"\ndeployments = [{ provider = "openai", weight = 0 }]\n',
        ["models[0].deployments[0].weight", "greater than zero"],
    ),
    "unknown_model_key": (
        VALID_PROVIDER + '\n[[models]]\nname = "fast"\nprovider = "openai"\ntimeout = 5\n',
        ["models[0]", "timeout", "unknown"],
    ),
    # TOML has inf and nan: they passed "greater than zero", then broke every connection (or the start)
    "infinite_keepalive_timeout": ('[server]\nkeepalive_timeout = inf\n' + VALID_PROVIDER, ["server.keepalive_timeout", "finite"]),
    "nan_read_timeout": ('[server]\nread_timeout = nan\n' + VALID_PROVIDER, ["server.read_timeout", "finite"]),
    "huge_shutdown_timeout": ('[server]\nshutdown_timeout = 1e300\n' + VALID_PROVIDER, ["server.shutdown_timeout", "finite"]),
    "infinite_connect_timeout": (VALID_PROVIDER + "connect_timeout = inf\n", ["providers.openai.connect_timeout", "finite"]),
    "nan_first_byte_timeout": (VALID_PROVIDER + "first_byte_timeout = nan\n", ["providers.openai.first_byte_timeout", "finite"]),
    "not_utf8": (VALID_PROVIDER + '# caf\udcff\n', ["UTF-8"]),
    # A provider's CA file is read at start: a typo must not wait for the first https request
    "missing_ca_file": (VALID_PROVIDER + 'ca_file = "no-such-ca.pem"\n', ["providers.openai.ca_file", "no-such-ca.pem", "cannot read"]),
    "ca_file_without_a_certificate": (VALID_PROVIDER + 'ca_file = "/etc/hostname"\n', ["providers.openai.ca_file", "no PEM certificate"]),
    # Names no request can use (the request's model check): they would still be listed and labelled
    "model_name_too_long": (VALID_PROVIDER + '\n[[models]]\nname = "' + "m" * 257 + '"\nprovider = "openai"\n', ["models[0].name", "256 bytes"]),
    # An integer past a C long passed the start, then uvloop failed every accept (also at a reload)
    "huge_max_body_bytes": ('[server]\nmax_body_bytes = 9223372036854775808\n' + VALID_PROVIDER, ["server.max_body_bytes", "at most"]),
    "huge_max_tokens_default": (VALID_PROVIDER + "max_tokens_default = 18446744073709551616\n", ["providers.openai.max_tokens_default"]),
    # What goes into every upstream head is checked at start, not found wrong by each request
    "api_version_with_a_line_break": (VALID_PROVIDER + 'api_version = "2023-06-01\\r\\nX-Injected: yes"\n', ["providers.openai.api_version"]),
    "api_version_outside_a_query": (VALID_PROVIDER + 'api_version = "2024 10&x=1#"\n', ["providers.openai.api_version"]),
    "a_framing_header": (VALID_PROVIDER + 'headers = { "Content-Length" = "5" }\n', ["providers.openai.headers", "Content-Length"]),
    "a_credential_header": (VALID_PROVIDER + 'headers = { "Authorization" = "Bearer X" }\n', ["providers.openai.headers", "Authorization", "api_key"]),
    "an_azure_deployment_no_url_can_name": (
        VALID_PROVIDER + '\n[providers.az]\nkind = "azure"\nbase_url = "http://127.0.0.1:9"\napi_key = "x"\n'
        '\n[[models]]\nname = "m"\nprovider = "az"\nmodel = "gpt4o prod"\n',
        ["models[0].model", "gpt4o prod", "azure"],
    ),
    "a_deployment_twice": (
        VALID_PROVIDER + '\n[[models]]\nname = "m"\ndeployments = [{ provider = "openai", model = "x" }, { provider = "openai", model = "x", weight = 2 }]\n',
        ["models[0].deployments[1]", "deployments[0]"],
    ),
    "a_model_twice": (
        VALID_PROVIDER + '\n[[models]]\nname = "m"\nprovider = "openai"\n\n[[models]]\nname = "m"\nprovider = "openai"\n',
        ["models[1].name", "models[0]"],
    ),
    "an_alias_that_is_a_model": (
        VALID_PROVIDER + '\n[[models]]\nname = "m"\nprovider = "openai"\n\n[[models]]\nname = "n"\nprovider = "openai"\naliases = ["m"]\n',
        ["models[1].aliases", "models[0]"],
    ),
    # Each names the upstream in every answer's head (x-alloy-provider, x-alloy-model): a control
    # character there left every request unanswered until its keep-alive ran out
    "provider_name_with_a_line_break": (
        '[providers."a\\nb"]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\napi_key = "x"\n',
        ["providers.'a\\nb'", "control characters"],
    ),
    "upstream_model_with_a_delete": (
        VALID_PROVIDER + '\n[[models]]\nname = "m"\nprovider = "openai"\nmodel = "gpt\\u007f4o"\n',
        ["models[0].model", "control characters"],
    ),
    "alias_with_a_zero_width_space": (
        VALID_PROVIDER + '\n[[models]]\nname = "fast"\nprovider = "openai"\naliases = ["quick\\u200b"]\n',
        ["models[0].aliases", "printable"],
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_is_refused_at_start(tmp_path, name):
    content, words = BAD_CONFIGS[name]
    path = tmp_path / f"{name}.toml"
    path.write_bytes(textwrap.dedent(content).encode("utf-8", "surrogateescape"))

    result, elapsed = run_alloy("--host", "127.0.0.1", "--port", "0", "--config", str(path), env=SECRETS)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"alloy started with a bad config:\n{output}"
    assert elapsed < 15
    assert "listening on" not in output
    assert "Traceback" not in output, output
    assert str(path) in result.stderr, f"the message must name the file:\n{result.stderr}"
    for word in words:
        assert word in result.stderr, f"the message must mention {word!r}:\n{result.stderr}"
    for secret in SECRETS.values():
        assert secret not in output, "a secret from the environment was printed"


def test_missing_config_file_is_refused(tmp_path):
    path = tmp_path / "nowhere.toml"
    result, _ = run_alloy("--port", "0", "--config", str(path))
    assert result.returncode != 0
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("port", ["70000", "-5"])
def test_a_port_out_of_range_is_refused(port):
    result, _ = run_alloy("--port", port)
    assert result.returncode == 2 and "server.port" in result.stderr and "Traceback" not in result.stderr


def test_a_directory_as_config_is_refused(tmp_path):
    result, _ = run_alloy("--port", "0", "--config", str(tmp_path))
    assert result.returncode == 2 and str(tmp_path) in result.stderr and "Traceback" not in result.stderr


def test_bad_environment_does_not_print_the_key():
    """Zero-config from the environment with an unusable base URL: refused, key not shown."""
    secret = "sk-zeroconfig-secret-9e8d"
    result, _ = run_alloy(
        "--port", "0", env={"OPENAI_API_KEY": secret, "OPENAI_BASE_URL": "ftp://example.invalid/v1"}
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "OPENAI_BASE_URL" in result.stderr
    assert secret not in output


def test_port_in_use_exits_with_a_message():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        result, _ = run_alloy("--host", "127.0.0.1", "--port", str(port))
    finally:
        taken.close()
    assert result.returncode != 0
    assert str(port) in result.stderr
    assert "Traceback" not in result.stderr


# --- zero configuration --------------------------------------------------------------------------


def test_zero_config_serves_the_builtin_mock(start_gateway):
    gateway = start_gateway()  # no --config, no provider key in the environment
    assert "mock" in gateway.stderr.lower(), gateway.stderr
    # The run tests the core it means to: ALLOY_PURE=1 selects the pure twin, else the compiled one.
    expected_core = "pure" if os.environ.get("ALLOY_PURE") == "1" else "compiled"
    assert f"core: {expected_core}" in gateway.stderr, gateway.stderr
    client = sdk(gateway)
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello offline world"}]
    )
    assert completion.choices[0].message.content == "echo: hello offline world"
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "stream offline"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: stream offline"
    assert len(client.embeddings.create(model="text-embedding-3-small", input="x").data[0].embedding) > 0


def test_environment_only_proxies_to_openai_base_url(start_mock, start_gateway):
    """The "Done when" command: OPENAI_API_KEY=sk-x OPENAI_BASE_URL=<mock>/v1 alloy."""
    mock = start_mock("--api-key", "sk-x")
    gateway = start_gateway(env={"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": mock.base + "/v1"})
    assert "built-in mock" not in gateway.stderr, gateway.stderr
    assert "sk-x" not in gateway.stderr

    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "through the environment"}]
    )
    assert raw.parse().choices[0].message.content == "echo: through the environment"
    assert raw.headers["x-alloy-provider"] == "openai"
    [record] = mock.requests()
    assert record["path"] == "/v1/chat/completions"
    assert record["headers"]["authorization"] == "Bearer sk-x"


def test_a_provider_not_named_after_its_kind_gets_no_key_from_the_kinds_variable(start_mock, start_gateway):
    # OPENAI_API_KEY is OpenAI's: a local server configured as kind openai (the default kind) must
    # not receive it, over plain http, because the environment happens to hold it.
    mock = start_mock()
    gateway = start_gateway(
        config=f"""
        [providers.local]
        kind = "openai"
        base_url = "{mock.base}/v1"

        [providers.mybox]
        base_url = "{mock.base}/v1"
        """,
        env={"OPENAI_API_KEY": "sk-real-openai-key-5150"},
    )
    for model in ("local/m", "mybox/m"):
        with pytest.raises(openai.AuthenticationError):  # the mock, like OpenAI, wants some key
            sdk(gateway).chat.completions.create(model=model, messages=[{"role": "user", "content": "ok"}])
    assert [r["headers"].get("authorization") for r in mock.requests()] == [None, None]


def test_config_file_secret_from_environment_is_used_not_printed(start_mock, start_gateway):
    mock = start_mock("--api-key", "sk-from-env-5150")
    gateway = start_gateway(
        config=f"""
        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "env:MY_PROVIDER_SECRET"
        """,
        env={"MY_PROVIDER_SECRET": "sk-from-env-5150"},
        args=["--log-level", "DEBUG"],
    )
    completion = sdk(gateway).chat.completions.create(model="m", messages=[{"role": "user", "content": "ok"}])
    assert completion.choices[0].message.content == "echo: ok"
    assert mock.requests()[0]["headers"]["authorization"] == "Bearer sk-from-env-5150"
    assert "sk-from-env-5150" not in gateway.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_sighup_while_the_gateway_starts_does_not_end_it(workers):
    # A config-management tool that reloads on every change may send SIGHUP just as the gateway
    # starts: before the reload handler exists, SIGHUP's default action ended the process.
    process = subprocess.Popen(
        [sys.executable, "-m", "alloy", "--host", "127.0.0.1", "--port", "0", "--workers", workers],
        env=gateway_env(), cwd=RUN_DIR, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(0.05)
        process.send_signal(signal.SIGHUP)
        started = time.monotonic()
        line = ""
        while "listening on" not in line and time.monotonic() - started < 15 and process.poll() is None:
            line = process.stderr.readline()
        assert "listening on" in line, f"ended with {process.poll()}"
    finally:
        process.terminate()
        process.wait(10)


def test_an_ipv6_address_is_announced_as_a_url_a_client_can_use():
    process = subprocess.Popen(
        [sys.executable, "-m", "alloy", "--host", "::1", "--port", "0"], env=gateway_env(), cwd=RUN_DIR, stderr=subprocess.PIPE, text=True
    )
    try:
        line = process.stderr.readline()
        while line and "listening on" not in line:
            line = process.stderr.readline()
        found = re.search(r"listening on (http://\S+)", line)
        assert found and re.fullmatch(r"http://\[::1\]:\d+", found.group(1)), line
        with urllib.request.urlopen(found.group(1) + "/health", timeout=5) as answer:  # as curl would use it
            assert answer.status == 200
    finally:
        process.terminate()
        process.wait(10)


def test_http2_without_the_h2_package_is_refused_with_a_message(tmp_path):
    pytest.importorskip("httpx")
    if importlib.util.find_spec("h2") is not None:
        pytest.skip("h2 is installed here: HTTP/2 works")
    path = tmp_path / "alloy.toml"
    path.write_text(VALID_PROVIDER + 'client = "httpx"\nhttp2 = true\n')
    for command in (("--port", "0", "--config", str(path)), ("check", "--config", str(path))):
        result, _ = run_alloy(*command, env=SECRETS)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert "providers.openai.http2" in result.stderr and "httpx[http2]" in result.stderr


@pytest.mark.parametrize("client_id", [None, "my-trace-1"], ids=["gateway's id", "client's id"])
def test_a_provider_pointing_at_the_gateway_itself_is_a_508_not_a_loop(start_gateway, client_id):
    # One shell's OPENAI_BASE_URL meant for the clients, read by the gateway too: each request
    # went around again (717 nested calls, one x-request-id) until the client gave up. The loop
    # was once told by the gateway's own x-request-id, which a client's own id replaces upstream:
    # with one, the request went around until the pool ran out.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = start_gateway(args=["--port", str(port)], env={"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"})
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="x", max_retries=0, timeout=10)
    started = time.monotonic()
    headers = {} if client_id is None else {"x-request-id": client_id}
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], extra_headers=headers)
    assert caught.value.status_code == 508 and caught.value.body["code"] == "loop_detected"
    assert "base_url points at this gateway" in caught.value.message
    assert time.monotonic() - started < 5


def test_a_client_sending_back_an_earlier_answers_request_id_is_answered(start_mock, start_gateway):
    # Only an id of a call still in flight means the request came back around: a client may send
    # the id of an answer it already has (to tie a retry to it), which is no loop.
    mock = start_mock()
    gateway = start_gateway(env={"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": mock.base + "/v1"})
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="x", max_retries=0, timeout=10)
    first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    own_id = first.headers["x-request-id"]
    again = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi again"}], extra_headers={"x-request-id": own_id}
    )
    assert again.status_code == 200 and again.headers["x-request-id"] == own_id
    assert again.parse().choices[0].message.content == "echo: hi again"
    # Nor is a client behind a proxy (its own Via, forwarded): only the gateway's own mark in a Via
    # (random, never shown to a client) means a loop.
    proxied = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "via"}], extra_headers={"via": "1.1 corporate-proxy"}
    )
    assert proxied.status_code == 200 and "via" not in proxied.headers
    sent = mock.requests()
    assert len(sent) == 3
    marks = {via.split("alloy-")[1][:24] for via in (request["headers"]["via"] for request in sent)}
    assert len(marks) == 1  # one gateway, one mark
    assert "corporate-proxy" in sent[2]["headers"]["via"]  # the client's hop kept, the gateway's added
