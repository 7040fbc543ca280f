"""An answer that counts no tokens for a prompt it took is charged Alloy's estimate, not nothing.

Gemini's ``batchEmbedContents`` (what an OpenAI embeddings request becomes) reports no token counts
at all, and the OpenAI-shaped answer Alloy makes of it says ``prompt_tokens: 0``. Taken at its word,
a key's tokens per minute and budget would never see those calls: the reservation made before the
call (the body's size / 4) was replaced by zero when it ended. These tests, through a running
gateway in front of the strict Gemini emulator (which, like the real API, counts nothing), check
that such a call is charged its reservation instead: in the ledger's tokens and cost, and in the
minute's token window that decides the next request.
"""

import json

import pytest

from governance_helpers import MASTER, create_key, post, usage_rows
from harness import start_emulator_process, wait_until

CONFIG = """
    [providers.gemini]
    base_url = "{base}"
    api_key = "env:GEMINI_KEY"

    [wildcards]
    "gemini-*" = "gemini"

    [governance]
    path = "{db}"
    sync_interval = 0.1
    flush_interval = 0.1

    [governance.prices."gemini-embedding-001"]
    input = 100000
    output = 0
    """
TEXT = "a sentence of about forty characters... " * 50  # 2,000 characters


@pytest.fixture(scope="module")
def gemini():
    emulator = start_emulator_process("gemini", "--api-key", "sk-gemini")
    yield emulator
    emulator.stop()


def embeddings(count=1):
    return {"model": "gemini-embedding-001", "input": [TEXT] * count}


def estimate(body):
    return len(json.dumps(body)) // 4  # what the gate reserves: the body's size / 4


def start(start_gateway, gemini, db, secret):
    gateway = start_gateway(config=CONFIG.format(base=gemini.base, db=db), env={"ALLOY_MASTER_KEY": MASTER, "GEMINI_KEY": "sk-gemini"})
    # the key is known once a request with it is not a 401 (a 404 for a path nothing routes)
    assert wait_until(lambda: post(gateway.port, secret, {}, path="/v1/nothing")[0] != 401, timeout=5)
    return gateway


def test_an_uncounted_embedding_is_charged_its_estimate_in_the_ledger(start_gateway, gemini, tmp_path):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "embedder")
    gateway = start(start_gateway, gemini, db, secret)
    body = embeddings()
    status, _, answer = post(gateway.port, secret, body, path="/v1/embeddings")
    assert status == 200, answer
    assert answer["usage"]["prompt_tokens"] == 0  # what Gemini said, relayed as it is
    assert wait_until(lambda: any(row["tokens_in"] for row in usage_rows(db, by="model")), timeout=5)
    [row] = [row for row in usage_rows(db, by="model") if row["model"] == "gemini-embedding-001"]
    assert row["tokens_in"] == estimate(body) > 0
    assert row["cost_usd"] == pytest.approx(estimate(body) * 0.1)  # $0.10 a token


def test_uncounted_embeddings_fill_the_minutes_token_window(start_gateway, gemini, tmp_path):
    db = tmp_path / "alloy.db"
    body = embeddings(2)
    _, secret = create_key(db, "limited", "--tpm", str(2 * estimate(body) + 10))  # room for two calls
    gateway = start(start_gateway, gemini, db, secret)
    first, second, third = (post(gateway.port, secret, body, path="/v1/embeddings") for _ in range(3))
    assert [first[0], second[0]] == [200, 200], (first, second)
    assert third[0] == 429 and third[2]["error"]["code"] == "rate_limit_exceeded", third
    assert "tokens per minute" in third[2]["error"]["message"]
