"""``alloy check``: a configuration is validated the way a start validates it (same refusals, same
messages, exit 2) and what it routes is printed for a person to confirm, keys never shown."""

import textwrap

from test_cli_config import run_alloy

CONFIG = """
[server]
host = "0.0.0.0"

[providers.openai]
base_url = "http://127.0.0.1:9/v1"
api_key = "env:K"

[providers.local]
kind = "vllm"
base_url = "http://127.0.0.1:8000/v1"

[[models]]
name = "fast"
provider = "openai"
model = "gpt-4o-mini"
aliases = ["quick"]
fallbacks = ["slow"]

[[models]]
name = "slow"
provider = "local"
model = "llama-3.1-8b"
"""


def test_a_valid_configuration_is_described_and_exits_0(tmp_path):
    path = tmp_path / "alloy.toml"
    path.write_text(textwrap.dedent(CONFIG))
    result, _ = run_alloy("check", "--config", str(path), env={"K": "sk-check-secret-4711"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "configuration OK" in out
    assert "provider openai: openai at http://127.0.0.1:9/v1 (key set" in out
    assert "model fast: openai/gpt-4o-mini; aliases quick; fallbacks slow" in out
    assert "warning: listening on 0.0.0.0 without a master key" in out
    assert "sk-check-secret-4711" not in out + result.stderr


def test_a_refused_configuration_exits_2_with_the_start_message(tmp_path):
    path = tmp_path / "alloy.toml"
    path.write_text(textwrap.dedent(CONFIG).replace("aliases", "alias"))
    result, _ = run_alloy("check", "--config", str(path), env={"K": "sk-x"})
    assert result.returncode == 2
    assert "configuration refused" in result.stderr and "models[0].alias: unknown key" in result.stderr


def test_a_password_in_a_base_url_is_not_printed(tmp_path):
    path = tmp_path / "alloy.toml"
    path.write_text(textwrap.dedent(CONFIG).replace("http://127.0.0.1:9/v1", "http://produser:urlSECRETpw@127.0.0.1:9/v1"))
    result, _ = run_alloy("check", "--config", str(path), env={"K": "sk-x"})
    assert result.returncode == 0, result.stderr
    assert "provider openai: openai at http://***@127.0.0.1:9/v1" in result.stdout
    assert "urlSECRETpw" not in result.stdout + result.stderr and "produser" not in result.stdout
