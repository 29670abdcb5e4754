"""The example Alertmanager config: valid for amtool, and no secret written inline."""

from __future__ import annotations

import re

import yaml
from deploy_tools import DEPLOY, run, tool

CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
# Fields that Alertmanager 0.25 (Debian 12) lacks; they arrived in later releases.
NEWER_THAN_0_25 = {
    "webhook_url_file": "webhook_url: https://discord.invalid/placeholder",
    "bot_token_file": "bot_token: placeholder",
}
INLINE_SECRETS = {"api_url", "webhook_url", "bot_token", "url", "auth_password", "api_key"}


def amtool_version() -> tuple[int, int]:
    result = run(tool("amtool"), "--version")
    match = re.search(r"version (\d+)\.(\d+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    return int(match.group(1)), int(match.group(2))


def test_amtool_check_config(tmp_path):
    """Checked as shipped on amtool >= 0.26; on 0.25 with only the two newer fields swapped."""
    amtool = tool("amtool")
    text = CONFIG.read_text(encoding="utf-8")
    if amtool_version() < (0, 26):
        for field, placeholder in NEWER_THAN_0_25.items():
            text, count = re.subn(rf"{field}: \S+", placeholder, text)
            assert count >= 1, field
    checked = tmp_path / "alertmanager.yml"
    checked.write_text(text, encoding="utf-8")
    result = run(amtool, "check-config", checked)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_check_can_fail(tmp_path):
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(
        CONFIG.read_text(encoding="utf-8").replace("receiver: chat-critical", "receiver: nobody"),
        encoding="utf-8",
    )
    assert run(tool("amtool"), "check-config", broken).returncode != 0


def walk(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key), value
            yield from walk(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, (*path, i))


def test_receivers_slack_discord_telegram_read_secrets_from_files():
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    inline = [p for p, _ in walk(config) if p[-1] in INLINE_SECRETS]
    assert inline == [], f"secrets written inline: {inline}"
    kinds = {key for receiver in config["receivers"] for key in receiver if key != "name"}
    assert kinds >= {"slack_configs", "discord_configs", "telegram_configs"}
    file_fields = {p[-1] for p, _ in walk(config) if str(p[-1]).endswith("_file")}
    assert file_fields >= {"api_url_file", "webhook_url_file", "bot_token_file"}
