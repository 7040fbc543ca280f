"""An answer whose body comes as thousands of one-byte chunks (a server that flushes every token
as a chunk of its own, or a hostile one) costs the gateway memory in proportion to its bytes.

An answer the gateway must keep before giving it (a translated answer, read whole to translate; an
error answer held for a possible retry) was kept as one object per chunk: ~40 bytes of bookkeeping
for each byte of answer, so a 2 MB answer took ~80 MB of the gateway's memory, and the 64 MB cap
on a translated answer allowed gigabytes. Measured here as the gateway process's peak RSS
(VmHWM), through a running gateway whose upstream is scripted (scripted_upstream.py).
"""

import json

import openai
import pytest

from harness import assert_no_crash_logged, start_gateway_process
from scripted_upstream import ScriptedUpstream, answer

SIZE = 2_000_000  # bytes of answer, each its own chunk


@pytest.fixture
def gateway(tmp_path):
    """A gateway of its own for each test: the peak RSS measured is this test's."""
    upstream = ScriptedUpstream()
    gateway = start_gateway_process(
        tmp_path / "alloy.toml",
        f"""
        [router]
        max_retries = 1
        backoff_base = 0.001
        backoff_max = 0.002
        [providers.anthropic]
        base_url = "{upstream.base}"
        api_key = "sk-ant-provider"
        total_timeout = 30
        [providers.local]
        kind = "openai"
        base_url = "{upstream.base}/v1"
        api_key = "sk-local"
        responses_api = false
        total_timeout = 30
        """,
    )
    yield gateway
    gateway.stop()
    upstream.close()
    assert_no_crash_logged(gateway)


def peak_rss_mb(gateway):
    with open(f"/proc/{gateway.popen.pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_translated_answer_in_one_byte_chunks(gateway):
    before = peak_rss_mb(gateway)
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
               "content": [{"type": "text", "text": "FILL"}], "stop_reason": "end_turn",
               "usage": {"input_tokens": 1, "output_tokens": 1}}  # fmt: skip
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="client", max_retries=0, timeout=60)
    completion = client.chat.completions.create(
        model="anthropic/claude-x", messages=[{"role": "user", "content": "hi"}],
        extra_headers=answer(message, crumbs=True, fill=SIZE),
    )  # fmt: skip
    assert len(completion.choices[0].message.content) == SIZE
    # the answer is in memory two or three times over (its bytes, the parsed text, the translation)
    assert peak_rss_mb(gateway) - before < 25


def test_an_error_answer_held_for_a_retry_in_one_byte_chunks(gateway):
    before = peak_rss_mb(gateway)
    error = {"error": {"message": "FILL", "type": "server_error", "code": None}}
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="client", max_retries=0, timeout=60)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="local/m", messages=[{"role": "user", "content": "hi"}],
            extra_headers=answer(error, crumbs=True, fill=900_000, status=500),
        )  # fmt: skip
    assert len(json.dumps(caught.value.body)) > 900_000  # the upstream's own error, whole
    assert peak_rss_mb(gateway) - before < 15
