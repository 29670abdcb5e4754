"""The docs stay true to the code: every config option is documented, examples are valid."""

from __future__ import annotations

import re

import pytest
from deploy_tools import DEPLOY, DOCS, REPO
from pydantic import BaseModel
from rotator import config

# Section heading in docs/configuration.md -> the model it documents.
SECTIONS: dict[str, type[BaseModel]] = {
    "`[bybit]`": config.BybitConfig,
    "`[vault]`": config.VaultConfig,
    "`[vault.auth]`": config.VaultAuthConfig,
    "`[policy]`": config.PolicyConfig,
    "`[[accounts]]`": config.AccountConfig,
    "`[[keys]]`": config.KeyConfig,
    "`[keys.policy]`": config.PolicyOverrides,
    "`[keys.ack]`": config.AckConfig,
    '`[[keys.hooks]]` with `type = "file"`': config.FileHook,
    '`[[keys.hooks]]` with `type = "command"`': config.CommandHook,
    '`[[keys.hooks]]` with `type = "webhook"`': config.WebhookHook,
    '`[[keys.hooks]]` with `type = "config_file"`': config.ConfigFileHook,
    "`[[key_sets]]`": config.KeySetConfig,
    "`[metrics]`": config.MetricsConfig,
    "`[notify]`": config.NotifyConfig,
    "`[[notify.channels]]`": config.NotifyChannel,
    "`[leader_election]`": config.LeaderElectionConfig,
    "`[logging]`": config.LoggingConfig,
    "`[reminders]`": config.RemindersConfig,
    "`[[tracked]]`": config.TrackedKeyConfig,
}
# Fields that are sub-sections, documented under their own heading.
NESTED = {"auth"}


def sections() -> dict[str, set[str]]:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    found: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"#{2,3} (.+)", line)
        if heading:
            current = heading.group(1).strip()
            found[current] = set()
        elif current and (row := re.match(r"\| `(\w+)` \|", line)):
            found[current].add(row.group(1))
    return found


def test_every_config_section_is_documented():
    top = set(config.Config.model_fields)
    documented = {re.sub(r"[`\[\]]", "", h).split()[0].split(".")[0] for h in SECTIONS}
    assert top <= documented


@pytest.mark.parametrize("heading", sorted(SECTIONS))
def test_every_option_is_documented(heading):
    documented = sections().get(heading)
    assert documented is not None, f"no section {heading} in docs/configuration.md"
    fields = set(SECTIONS[heading].model_fields) - NESTED
    assert fields - documented == set(), "options missing from the docs"
    assert documented - fields == set(), "documented options that do not exist"


def toml_blocks(path) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", path.read_text(encoding="utf-8"), re.DOTALL)


@pytest.mark.parametrize(
    "path",
    [DOCS / "configuration.md", DOCS / "install-vps.md", DOCS / "kubernetes.md"],
    ids=lambda p: p.name,
)
def test_toml_examples_in_docs_are_valid(path):
    blocks = toml_blocks(path)
    assert blocks, f"{path.name} has no ```toml example"
    for block in blocks:
        config.parse(block, source=path.name)


@pytest.mark.parametrize(
    "path",
    sorted((DEPLOY / "k8s").rglob("rotator.toml")),
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_shipped_configs_are_valid(path):
    config.load(path)
