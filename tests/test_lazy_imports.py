"""What a started gateway has imported: nothing its default path never uses (issue 11, idle memory).

Each case starts the real gateway the way the ``alloy`` command does (``alloy.cli.main``) in a
subprocess, on a loopback port the kernel picks, and the moment it announces its address the
subprocess reports ``sys.modules`` and exits. Imports cost resident memory for the life of the
process (httpx alone ~5 MB), so a module that creeps back into the start path shows up here; the
RSS figures themselves are measured by benchmarks/memory_bench.sh, never asserted. The translators
(providers of another kind, Messages and Responses clients of providers that do not speak their
API) come only with a provider that needs them, or with the first request that does; that they then
work is what the client API and provider integration tests show.
"""

import functools
import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The translators each way: a provider of another kind (out), a Messages or Responses client whose
# model's providers do not speak its API (in). Imported when the first provider of that kind is
# configured, or by the first request that needs them.
ANTHROPIC_OUT = ("alloy.providers.anthropic", "alloy.providers.anthropic_stream")
GEMINI_OUT = ("alloy.providers.gemini", "alloy.providers.gemini_stream", "mimetypes")
MESSAGES_ANSWER = (  # a Messages call's connection and transport, and Anthropic answering natively
    "alloy.client_apis.messages_native", "alloy.client_apis.messages_wire", "alloy.client_apis.messages_response",
    "alloy.client_apis.messages_stream", "alloy.client_apis.chat_stream",
)  # fmt: skip
MESSAGES_REQUEST = ("alloy.client_apis.messages", "alloy.client_apis.messages_content", "alloy.client_apis.messages_tokens")
RESPONSES_IN = (
    "alloy.client_apis.responses_request", "alloy.client_apis.responses_response",
    "alloy.client_apis.responses_stream", "alloy.client_apis.responses_wire",
)  # fmt: skip
TRANSLATION = (*ANTHROPIC_OUT, *GEMINI_OUT, *MESSAGES_ANSWER, *MESSAGES_REQUEST, *RESPONSES_IN)

# Imported by the gateway only when something asks for it: a provider with client = "httpx", a
# configuration file, --workers N, a Retry-After date, keys on disk, Redis, the built-in mock, a
# translation, the response cache or prefix-affinity (and with them hashlib).
NEVER_AT_START = (
    "httpx", "httpcore", "h2", "alloy.upstream.httpx_backend",
    "tomllib", "email", "email.utils", "ctypes.util", "shutil", "tempfile", "bz2", "lzma",
    "sqlite3", "redis", "http.client", "logging.handlers", "hmac", "hashlib",
    "alloy.cache.response_cache", "alloy.cache.memory", "alloy.cache.prompt_prefix",
    "alloy.mock_upstream", "alloy.governance.counters", "alloy.governance.commands", "alloy.check",
    "alloy.supervisor", "random",  # --workers N; random's generator is taken alone (alloy.chance)
    "argparse", "alloy.cli_parsers",  # --help, --version, a mistaken command line
    "urllib.parse", "ipaddress",  # a configuration's URLs are read by alloy.urls
    "alloy.reload", "alloy.attempts", "alloy.cors", "alloy.observability.tracing", "alloy.observability.exposition",
    *TRANSLATION,
)  # fmt: skip

START_AND_REPORT = textwrap.dedent(
    """
    import json, os, sys
    from alloy import cli, server

    def say(message):  # the gateway's announcement: it is started, report and leave
        if "listening on" in message:
            print(json.dumps(sorted(sys.modules)), flush=True)
            os._exit(0)

    server.say = say
    cli.main(sys.argv[1:])
    """
)


@functools.cache
def interpreter_modules():
    """What the interpreter holds before any code of ours runs (an editable install's import hook
    brings pathlib and urllib.parse, say): not the gateway's doing."""
    done = subprocess.run([sys.executable, "-c", "import json, sys; print(json.dumps(sorted(sys.modules)))"],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return frozenset(json.loads(done.stdout)) - {"json", "json.decoder", "json.scanner", "json.encoder", "_json"}


def started_modules(tmp_path, args=(), env=None):
    """The modules a gateway started with ``args`` and ``env`` (the provider's key and address)
    imported, beyond the interpreter's own."""
    environment = {key: value for key, value in os.environ.items() if not key.endswith("_API_KEY")}
    environment.pop("ALLOY_CONFIG", None)
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-c", START_AND_REPORT, "--host", "127.0.0.1", "--port", "0", *args],
        capture_output=True, text=True, timeout=60, env=environment, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1])) - interpreter_modules()


def provider_config(tmp_path, kind, client="core"):
    """The arguments for a gateway with one provider of ``kind``, from a configuration file."""
    config = tmp_path / "alloy.toml"
    config.write_text(
        f'[providers.up]\nkind = "{kind}"\nbase_url = "http://127.0.0.1:9/v1"\napi_key = "sk-test"\nclient = "{client}"\n'
    )
    return ["--config", str(config)]


PROVIDER = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}


def test_a_gateway_in_front_of_a_provider_imports_nothing_it_does_not_use(tmp_path):
    modules = started_modules(tmp_path, env=PROVIDER)
    assert "alloy.upstream.pool" in modules and "orjson" in modules  # what the default path runs on
    assert sorted(modules.intersection(NEVER_AT_START)) == []


def test_the_compiled_core_tunes_the_process_without_ctypes_or_resource(tmp_path):
    # ctypes (~0.35 MB) and resource would be held for three calls at start; the pure twin uses
    # them, and bisect for the metrics' buckets (a prefix-affinity ring imports it when built)
    from alloy import core

    modules = started_modules(tmp_path, env=PROVIDER)
    for module in ("ctypes", "resource", "bisect"):
        assert (module in modules) == (core.IMPLEMENTATION == "pure"), module


def test_an_https_provider_loads_no_ca_store_until_it_connects(tmp_path):
    # The CA store (certifi's, ~2.5 MB with its TLS context) is loaded by the first connection.
    modules = started_modules(tmp_path, env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "https://127.0.0.1:9/v1"})
    assert "alloy.upstream.pool" in modules and "certifi" not in modules


def test_without_a_provider_only_the_builtin_mock_is_added(tmp_path):
    modules = started_modules(tmp_path)
    assert "alloy.mock_upstream" in modules
    # HTTP dates (email.utils, which imports urllib.parse and ipaddress), embeddings, jitter
    mock_needs = {"alloy.mock_upstream", "email", "email.utils", "urllib.parse", "ipaddress", "hashlib", "random", "bisect"}
    assert sorted(modules.intersection(NEVER_AT_START) - mock_needs) == []


@pytest.mark.parametrize("client", ["core", "httpx"])
def test_httpx_is_imported_only_for_a_provider_that_selects_it(tmp_path, client):
    modules = started_modules(tmp_path, provider_config(tmp_path, "openai", client))
    assert "tomllib" in modules  # a configuration file was read
    assert ("httpx" in modules) == (client == "httpx")
    assert ("alloy.upstream.httpx_backend" in modules) == (client == "httpx")


def test_an_openai_gateway_holds_no_translator_until_a_request_needs_one(tmp_path):
    modules = started_modules(tmp_path, provider_config(tmp_path, "openai"))
    # the endpoints themselves are there: they take /v1/messages and /v1/responses when asked
    assert {"alloy.client_apis.messages_endpoint", "alloy.client_apis.responses_endpoint"} <= modules
    assert sorted(modules.intersection(TRANSLATION)) == []


def test_an_anthropic_provider_brings_its_translator_and_native_messages_only(tmp_path):
    modules = started_modules(tmp_path, provider_config(tmp_path, "anthropic"))
    # chat completions are translated out to it, and Messages clients reach it natively through
    # the Messages connection and transport; a Messages body is translated only for another kind
    assert sorted(modules.intersection(ANTHROPIC_OUT + MESSAGES_ANSWER)) == sorted(ANTHROPIC_OUT + MESSAGES_ANSWER)
    assert sorted(modules.intersection(GEMINI_OUT + MESSAGES_REQUEST + RESPONSES_IN)) == []


def test_a_gemini_provider_brings_its_translator_alone(tmp_path):
    modules = started_modules(tmp_path, provider_config(tmp_path, "gemini"))
    assert sorted(modules.intersection(GEMINI_OUT)) == sorted(GEMINI_OUT)
    assert sorted(modules.intersection(ANTHROPIC_OUT + MESSAGES_ANSWER + MESSAGES_REQUEST + RESPONSES_IN)) == []
