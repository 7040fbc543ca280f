"""Virtual keys through the running gateway: created with ``alloy keys`` or ``/admin/keys``, used
with the openai and anthropic SDKs, limited to models, expired, revoked and rotated (refused within
the sync interval), and the admin API's refusals of bad input, which write nothing."""

import json
import re
import subprocess
import sys
import time

import anthropic
import openai
import pytest

from governance_helpers import MASTER, admin, alloy, alloy_text, burst, chat, create_key, keyed_config, post, statuses, usage_rows
from harness import RUN_DIR, gateway_env, wait_until

REVOCATION_BOUND = 3.0  # seconds; documented bound is sync_interval (0.1 s here) + a reload


@pytest.fixture
def keyed(start_gateway, upstream, tmp_path):
    """A gateway with keys in tmp_path/alloy.db and the master key MASTER: (gateway, db)."""
    db = tmp_path / "alloy.db"
    gateway = start_gateway(config=keyed_config(upstream, db), env={"ALLOY_MASTER_KEY": MASTER})
    return gateway, db


def sdk(gateway, key):
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key=key, max_retries=0)


def test_a_created_key_works_with_the_sdk_and_others_do_not(keyed, upstream):
    gateway, db = keyed
    row, secret = create_key(db, "alice")
    assert secret.startswith("sk-alloy-") and row["prefix"] == secret[:13] + "..."
    wait_until(lambda: post(gateway.port, secret, chat())[0] == 200, timeout=REVOCATION_BOUND)
    answer = sdk(gateway, secret).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "echo: hi"
    assert sdk(gateway, MASTER).models.list() is not None  # the master key keeps working
    upstream.clear()
    with pytest.raises(openai.AuthenticationError) as refused:
        sdk(gateway, "sk-alloy-" + "x" * 43).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, "no-such-key").chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert upstream.requests() == []
    # Listed by prefix and name; the secret and its hash are never shown again.
    status, listing = admin(gateway.port, "GET", "/admin/keys")
    assert status == 200
    assert [(k["name"], k["prefix"]) for k in listing["data"]] == [("alice", row["prefix"])]
    assert secret not in str(listing) and "hash" not in listing["data"][0]
    assert "key" not in alloy(db, "keys", "show", "alice")


def test_x_api_key_and_the_messages_endpoint(keyed):
    gateway, db = keyed
    _, secret = create_key(db, "claude-code")
    client = anthropic.Anthropic(base_url=gateway.base, api_key=secret, max_retries=0)
    wait_until(lambda: post(gateway.port, secret, chat())[0] == 200, timeout=REVOCATION_BOUND)
    message = client.messages.create(model="gpt-4o", max_tokens=50, messages=[{"role": "user", "content": "hello"}])
    assert message.content[0].text == "echo: hello"
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=gateway.base, api_key="sk-alloy-wrong", max_retries=0).messages.create(
            model="gpt-4o", max_tokens=50, messages=[{"role": "user", "content": "hello"}]
        )


def test_a_key_limited_to_models_sees_no_other(keyed, upstream):
    gateway, db = keyed
    _, secret = create_key(db, "mini-only", "--models", "gpt-4o-mini,o3*")
    wait_until(lambda: post(gateway.port, secret, chat("gpt-4o-mini"))[0] == 200, timeout=REVOCATION_BOUND)
    assert post(gateway.port, secret, chat("o3-mini"))[0] == 200  # a wildcard
    upstream.clear()
    status, _, body = post(gateway.port, secret, chat("gpt-4o"))
    assert status == 404 and body["error"]["code"] == "model_not_found"
    assert "'gpt-4o'" in body["error"]["message"] and "mini" not in body["error"]["message"]
    assert upstream.requests() == []
    assert post(gateway.port, MASTER, chat("gpt-4o"))[0] == 200  # the master key is not limited
    # Nor does counting tokens (answered by the gateway's estimate here) tell it about another model.
    counting = anthropic.Anthropic(base_url=gateway.base, api_key=secret, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as caught:
        counting.messages.count_tokens(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "'gpt-4o'" in caught.value.message and "mini" not in caught.value.message
    assert counting.messages.count_tokens(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]).input_tokens > 0


def test_expiry_revocation_and_rotation(keyed, upstream):
    gateway, db = keyed
    row, secret = create_key(db, "temp", "--expires", "1h", "--metadata", "owner=ops")
    assert row["metadata"] == {"owner": "ops"} and row["expires_at"].endswith("Z")
    wait_until(lambda: post(gateway.port, secret, chat())[0] == 200, timeout=REVOCATION_BOUND)
    # Expired: moved into the past through the admin API.
    assert admin(gateway.port, "PATCH", "/admin/keys/temp", {"expires": "2020-01-01T00:00:00Z"})[0] == 200
    status, _, body = post(gateway.port, secret, chat())
    assert status == 401 and "expired" in body["error"]["message"]
    assert admin(gateway.port, "PATCH", "/admin/keys/temp", {"expires": None})[0] == 200
    assert post(gateway.port, secret, chat())[0] == 200
    # Rotated: the old secret stops, the new one works, same key (id, name).
    status, rotated = admin(gateway.port, "POST", "/admin/keys/temp/rotate")
    assert status == 200 and rotated["key"] != secret and rotated["name"] == "temp"
    assert post(gateway.port, secret, chat())[0] == 401
    assert post(gateway.port, rotated["key"], chat())[0] == 200
    # Revoked with the CLI (another process): refused within the bound, by id as by name.
    alloy(db, "keys", "revoke", rotated["id"])
    wait_until(lambda: post(gateway.port, rotated["key"], chat())[0] == 401, timeout=REVOCATION_BOUND)
    status, _, body = post(gateway.port, rotated["key"], chat())
    assert "revoked" in body["error"]["message"]
    assert alloy(db, "keys", "show", "temp")["revoked_at"] is not None


def test_a_key_created_without_a_name_gets_one_over_http_as_on_the_command_line(keyed):
    gateway, db = keyed
    status, created = admin(gateway.port, "POST", "/admin/keys", {"rpm": 5})
    assert status == 201 and re.fullmatch(r"key-[0-9a-f]{8}", created["name"]) and created["rpm"] == 5
    made = alloy(db, "keys", "create")
    assert re.fullmatch(r"key-[0-9a-f]{8}", made["name"]) and made["name"] != created["name"]
    assert admin(gateway.port, "GET", f"/admin/keys/{created['name']}")[1]["id"] == created["id"]
    wait_until(lambda: post(gateway.port, created["key"], chat())[0] == 200, timeout=REVOCATION_BOUND)


def test_admin_api_refuses_bad_input_and_writes_nothing(keyed):
    gateway, db = keyed
    assert admin(gateway.port, "POST", "/admin/keys", {"name": "ok", "rpm": 10})[0] == 201
    refused = [
        (b"{not json", None),
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": "x", "rpm": -1}, "rpm"),
        ({"name": "x", "tpm": 1.5}, "tpm"),
        ({"name": "x", "max_parallel": 0}, "max_parallel"),
        ({"name": "x", "budget": 1e12}, "budget"),
        ({"name": "x", "budget": -5}, "budget"),
        ({"name": "x", "budget_period": "fortnight"}, "budget_period"),
        ({"name": "x", "expires": "soon"}, "expires"),
        # A time whose UTC value leaves years 1-9999 was written, then could not be shown (500).
        ({"name": "x", "expires": "9999-12-31T23:59:59-12:00"}, "expires"),
        ({"name": "x", "expires": "0001-01-01T00:00:00+14:00"}, "expires"),
        ({"name": "x", "expires": "2001-01-01T00:00:00Z"}, "expires"),  # a new key already dead
        ({"name": "x", "budget": 5e-7}, "budget"),  # under a millionth of a dollar: counted as none
        ({"name": "x", "models": ["gpt-4o\u0000"]}, "models"),
        ({"name": "x", "models": ["m"] * 1001}, "models"),
        ({"name": "x", "metadata": {"note": "\u00e9" * 3000}}, "metadata"),  # 6,000 bytes of UTF-8
        ({"name": "x", "team": "nobody"}, "team"),
        ({"name": "ok"}, "name"),  # a duplicate name
        ({"name": "bad name"}, "name"),
        ({"name": None, "rpm": 5}, "name"),  # a name given must be one (only a missing name is made up)
        ({"name": ""}, "name"),
        ([1, 2], "body"),
    ]
    for body, param in refused:
        status, answer = admin(gateway.port, "POST", "/admin/keys", body)
        assert status == 400, (body, answer)
        assert answer["error"]["type"] == "invalid_request_error" and answer["error"]["message"]
        assert answer["error"]["param"] == param, answer
    status, listing = admin(gateway.port, "GET", "/admin/keys")
    assert status == 200 and [k["name"] for k in listing["data"]] == ["ok"]
    assert admin(gateway.port, "PATCH", "/admin/keys/ok", {"rpm": -3})[0] == 400
    assert alloy(db, "keys", "show", "ok")["rpm"] == 10  # unchanged
    assert admin(gateway.port, "GET", "/admin/keys/nobody")[0] == 404
    assert admin(gateway.port, "PUT", "/admin/keys")[0] == 405
    # The admin API is the master key's alone.
    _, secret = create_key(db, "user")
    assert admin(gateway.port, "GET", "/admin/keys", key=secret)[0] == 401
    # The CLI refuses the same way, exit code 2, nothing written.
    done = alloy(db, "keys", "create", "--name", "neg", "--rpm", "-1", expect=2)
    assert "rpm" in done.stderr
    assert alloy(db, "keys", "show", "neg", expect=1).returncode == 1
    done = alloy(db, "keys", "create", "--name", "late", "--expires", "9999-12-31T23:59:59-12:00", expect=2)
    assert "expires" in done.stderr and "Traceback" not in done.stderr


def test_the_cli_says_what_is_wrong_with_a_database_path(tmp_path):
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("not a database\n" * 100)
    for path in (not_sqlite, tmp_path):  # a file of something else, a directory
        done = alloy(path, "keys", "list", expect=1)
        assert "alloy: " in done.stderr and "Traceback" not in done.stderr, done.stderr
    # Reading never creates a database: a mistyped path is said, not made.
    missing = tmp_path / "typo" / "alloy.db"
    for command in (("keys", "list"), ("usage",), ("teams", "show", "x")):
        done = alloy(missing, *command, expect=1)
        assert "no database at" in done.stderr
    assert not missing.parent.exists()
    # Nor does a refused create: an empty new database would put a running gateway under governance.
    for command in (("keys", "create", "--rpm", "0"), ("teams", "create", "--name", "t", "--budget", "-1")):
        assert alloy(missing, *command, expect=2).returncode == 2
    assert not missing.parent.exists()


def test_every_key_and_team_command_says_what_it_does():
    for group, commands in (("keys", ("create", "list", "show", "revoke", "rotate", "update")),
                            ("teams", ("create", "list", "show", "delete", "update"))):
        done = subprocess.run([sys.executable, "-m", "alloy", group, "--help"], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        described = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("    ") and len(line.split()) > 1}
        assert described >= set(commands), (group, done.stdout)


def test_no_key_and_no_master_key_behaves_as_before(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    gateway = start_gateway(config=keyed_config(upstream, db))
    assert post(gateway.port, None, chat())[0] == 200
    assert post(gateway.port, "any-provider-key", chat())[0] == 200
    # The first key closes the gateway to requests without one.
    _, secret = create_key(db, "first")
    wait_until(lambda: post(gateway.port, None, chat())[0] == 401, timeout=REVOCATION_BOUND)
    assert post(gateway.port, secret, chat())[0] == 200
    # Revoking the last key (a leaked one) must not open the gateway to everyone again.
    alloy(db, "keys", "revoke", "first")
    assert wait_until(lambda: post(gateway.port, secret, chat())[0] == 401, timeout=REVOCATION_BOUND)
    assert post(gateway.port, None, chat())[0] == 401
    assert post(gateway.port, "sk-anything", chat())[0] == 401


def test_revocation_reaches_every_worker(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "everywhere")
    gateway = start_gateway(config=keyed_config(upstream, db), env={"ALLOY_MASTER_KEY": MASTER}, args=["--workers", "2"])
    assert statuses(burst(gateway.port, secret, 16)) == [200] * 16  # each on its own connection: both workers
    alloy(db, "keys", "revoke", "everywhere")
    started = time.monotonic()
    wait_until(lambda: statuses(burst(gateway.port, secret, 16)) == [401] * 16, timeout=REVOCATION_BOUND)
    assert time.monotonic() - started < REVOCATION_BOUND
    upstream.clear()
    assert statuses(burst(gateway.port, secret, 16)) == [401] * 16  # and it stays so, in both workers
    assert upstream.requests() == []


def test_show_writes_invisible_characters_as_their_escapes(tmp_path):
    # Metadata is anyone's text: U+202E would turn the terminal's line around, shown raw.
    db = tmp_path / "alloy.db"
    create_key(db, "bidi", "--metadata", "owner=evil\u202eexe.txt", "--metadata", "tag=a\u200bb")
    text = alloy_text(db, "keys", "show", "bidi")
    assert "\u202e" not in text and "\u200b" not in text
    assert "\\u202e" in text and json.loads(text)["metadata"] == {"owner": "evil\u202eexe.txt", "tag": "a\u200bb"}


def test_a_renamed_key_keeps_its_usage_together(keyed):
    gateway, db = keyed
    _, secret = create_key(db, "before")
    wait_until(lambda: post(gateway.port, secret, chat())[0] == 200, timeout=REVOCATION_BOUND)
    assert post(gateway.port, secret, chat())[0] == 200
    assert admin(gateway.port, "PATCH", "/admin/keys/before", {"name": "after"})[0] == 200
    assert post(gateway.port, secret, chat())[0] == 200
    keyed_rows = lambda: [(r["key"], r["requests"]) for r in usage_rows(db) if r["key"] is not None]  # noqa: E731
    wait_until(lambda: sum(n for _, n in keyed_rows()) == 3, timeout=5)  # (refused tries before: no key)
    assert keyed_rows() == [("after", 3)]  # one row, under its name now
    assert usage_rows(db, key="after")[0]["requests"] == 3


def test_keys_are_managed_through_a_config_file_without_the_providers_secrets(tmp_path):
    # The CLI reads [governance] path alone: the provider's key need not be in its environment.
    db = tmp_path / "from-config.db"
    config = tmp_path / "alloy.toml"
    config.write_text(
        f'[providers.openai]\nbase_url = "http://127.0.0.1:9/v1"\napi_key = "env:NOT_SET_HERE"\n\n[governance]\npath = "{db}"\n'
    )
    env = {k: v for k, v in gateway_env().items() if k != "NOT_SET_HERE"}
    done = subprocess.run(
        [sys.executable, "-m", "alloy", "keys", "create", "--name", "via-config", "--config", str(config)],
        capture_output=True, text=True, cwd=RUN_DIR, env=env, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [k["name"] for k in alloy(db, "keys", "list", "--json")] == ["via-config"]


# A configured model with an alias, and another one (for the tests of a key's model list).
FAST_AND_SLOW = """
        [[models]]
        name = "fast"
        provider = "openai"
        model = "gpt-4o-mini"
        aliases = ["quick"]

        [[models]]
        name = "slow"
        provider = "openai"
        model = "gpt-4o"
        """


def test_a_key_allowed_a_model_may_use_its_aliases(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    gateway = start_gateway(config=keyed_config(upstream, db, FAST_AND_SLOW), env={"ALLOY_MASTER_KEY": MASTER})
    _, secret = create_key(db, "fast-only", "--models", "fast")
    wait_until(lambda: post(gateway.port, secret, chat("fast"))[0] == 200, timeout=REVOCATION_BOUND)
    assert post(gateway.port, secret, chat("quick"))[0] == 200  # the same model by another name
    assert post(gateway.port, secret, chat("slow"))[0] == 404
    _, alias_only = create_key(db, "quick-only", "--models", "quick")
    wait_until(lambda: post(gateway.port, alias_only, chat("quick"))[0] == 200, timeout=REVOCATION_BOUND)
    assert post(gateway.port, alias_only, chat("fast"))[0] == 404  # an alias allows itself, not the model


def test_a_key_limited_to_models_lists_only_those(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    gateway = start_gateway(config=keyed_config(upstream, db, FAST_AND_SLOW), env={"ALLOY_MASTER_KEY": MASTER})
    _, secret = create_key(db, "lister", "--models", "fast")
    wait_until(lambda: post(gateway.port, secret, chat("fast"))[0] == 200, timeout=REVOCATION_BOUND)
    assert sorted(m.id for m in sdk(gateway, secret).models.list()) == ["fast", "quick"]
    assert sdk(gateway, secret).models.retrieve("quick").id == "quick"
    with pytest.raises(openai.NotFoundError):
        sdk(gateway, secret).models.retrieve("slow")  # not a hint that it exists
    assert sorted(m.id for m in sdk(gateway, MASTER).models.list()) == ["fast", "quick", "slow"]


@pytest.mark.parametrize("content_type", ["Application/JSON", "text/plain", None])
def test_a_key_limited_to_models_cannot_route_around_them_by_content_type(keyed, upstream, content_type):
    # Model-bearing passthrough endpoints were read only under a lower-case application/json: any
    # other spelling went to the default provider with no model check, no alias and no cost.
    gateway, db = keyed
    _, secret = create_key(db, "mini-json", "--models", "gpt-4o-mini")
    wait_until(lambda: post(gateway.port, secret, chat("gpt-4o-mini"))[0] == 200, timeout=REVOCATION_BOUND)
    upstream.clear()
    headers = {"content-type": content_type} if content_type else {"content-type": ""}
    body = {"model": "gpt-4o", "input": "hi"}
    for path in ("/v1/responses", "/v1/images/generations", "/v1/moderations"):
        status, _, answer = post(gateway.port, secret, body, path=path, headers=headers)
        assert status == 404 and answer["error"]["code"] == "model_not_found", (path, answer)
        status, _, answer = post(gateway.port, secret, {"input": "no model"}, path=path, headers=headers)
        assert status == 400 and answer["error"]["param"] == "model", (path, answer)
    assert upstream.requests() == []
    status, _, answer = post(gateway.port, secret, {"model": "gpt-4o-mini", "input": "hi"}, path="/v1/responses", headers=headers)
    assert status == 200 and upstream.requests()[-1]["body"]["model"] == "gpt-4o-mini"


def test_a_key_limited_to_models_is_held_to_them_on_forms_and_kept_from_batches(keyed, upstream):
    # Transcriptions, translations and image edits name their model in a multipart form, and a
    # batch in a stored file: a limited key reached any model through them.
    gateway, db = keyed
    _, secret = create_key(db, "mini-forms", "--models", "gpt-4o-mini")
    wait_until(lambda: post(gateway.port, secret, chat("gpt-4o-mini"))[0] == 200, timeout=REVOCATION_BOUND)
    upstream.clear()
    client = sdk(gateway, secret)
    audio = ("hello.wav", b"RIFF....WAVEfmt ", "audio/wav")
    with pytest.raises(openai.NotFoundError) as refused:
        client.audio.transcriptions.create(model="whisper-1", file=audio)
    assert refused.value.body["code"] == "model_not_found" and "whisper-1" in refused.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client.audio.translations.create(model="whisper-1", file=audio)
    with pytest.raises(openai.NotFoundError):
        client.images.edit(model="gpt-image-1", image=("a.png", b"\x89PNG....", "image/png"), prompt="a hat")
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.batches.create(input_file_id="file-1", endpoint="/v1/chat/completions", completion_window="24h")
    assert refused.value.body["code"] == "permission_denied"
    assert upstream.requests() == []  # nothing of it left the gateway
    # A model the key may use goes through (the mock has no audio endpoint: its 404 is the upstream's).
    with pytest.raises(openai.NotFoundError):
        client.audio.transcriptions.create(model="gpt-4o-mini", file=audio)
    assert [r["path"] for r in upstream.requests()] == ["/v1/audio/transcriptions"]
    # The master key is not limited.
    with pytest.raises(openai.APIStatusError):
        sdk(gateway, MASTER).audio.transcriptions.create(model="whisper-1", file=audio)
    assert len(upstream.requests()) == 2


def test_a_key_limited_to_a_model_cannot_take_it_to_another_provider(start_gateway, upstream, tmp_path):
    # provider/model was held to the key's rule by its bare name: a key allowed gpt-4o-mini reached
    # every configured provider serving a model of that name, on that provider's key.
    db = tmp_path / "alloy.db"
    other = f'[providers.other]\nbase_url = "{upstream.base}/v1"\napi_key = "sk-provider"\n'
    gateway = start_gateway(config=keyed_config(upstream, db, other), env={"ALLOY_MASTER_KEY": MASTER})
    _, secret = create_key(db, "mini-only", "--models", "gpt-4o-mini")
    wait_until(lambda: post(gateway.port, secret, chat("gpt-4o-mini"))[0] == 200, timeout=REVOCATION_BOUND)
    upstream.clear()
    for prefixed in ("other/gpt-4o-mini", "openai/gpt-4o-mini"):
        status, _, body = post(gateway.port, secret, chat(prefixed))
        assert status == 404 and body["error"]["code"] == "model_not_found", body
    assert upstream.requests() == []
    _, by_provider = create_key(db, "openai-any", "--models", "openai/*")  # a rule that names the provider
    wait_until(lambda: post(gateway.port, by_provider, chat("openai/gpt-4o-mini"))[0] == 200, timeout=REVOCATION_BOUND)
    assert post(gateway.port, by_provider, chat("other/gpt-4o-mini"))[0] == 404


def test_a_key_limited_to_models_cannot_start_a_job_on_another_model(start_gateway, upstream, tmp_path):
    # An endpoint the allow-list opens beyond the model endpoints (fine-tuning jobs here) was not
    # held to the key's models: a job on any base model went upstream on the provider's key.
    db = tmp_path / "alloy.db"
    allow = '[passthrough]\nallow = ["POST /v1/fine_tuning/jobs", "POST /v1/files"]\n'
    gateway = start_gateway(config=keyed_config(upstream, db, allow), env={"ALLOY_MASTER_KEY": MASTER})
    _, secret = create_key(db, "mini-only", "--models", "gpt-4o-mini")
    wait_until(lambda: post(gateway.port, secret, chat("gpt-4o-mini"))[0] == 200, timeout=REVOCATION_BOUND)
    upstream.clear()
    job = {"model": "gpt-4o", "training_file": "file-abc"}
    for content_type in ("application/json", "text/plain"):  # read as JSON whatever the type says
        status, _, body = post(gateway.port, secret, job, path="/v1/fine_tuning/jobs", headers={"content-type": content_type})
        assert status == 404 and body["error"]["code"] == "model_not_found", body
    assert upstream.requests() == []
    post(gateway.port, secret, {**job, "model": "gpt-4o-mini"}, path="/v1/fine_tuning/jobs")
    [sent] = upstream.requests()  # a job on its own model goes on
    assert sent["path"] == "/v1/fine_tuning/jobs"
