"""What a newcomer reads is true (issue 11 item 7): the first run, PATH, the demo's output, the
install source, the core module list, and the key form the demo's table and logs share."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from types import SimpleNamespace

from deploy_tools import DOCS, REPO
from rotator.demo import status_table
from rotator.key_report import KeyReport
from rotator.model import fingerprint

README = (REPO / "README.md").read_text(encoding="utf-8")
README_JA = (REPO / "README.ja.md").read_text(encoding="utf-8")
INSTALL = (DOCS / "install-vps.md").read_text(encoding="utf-8")


def test_first_run_and_adopt_are_explained():
    """README and the VPS guide say the first run creates every key, and when to adopt."""
    for text in (README, INSTALL):
        assert "first run creates every key" in text
        assert "rotator adopt" in text
        assert "before" in text.split("first run creates every key", 1)[1][:1200]


def test_readme_says_how_to_reach_rotator_after_dev_demo():
    assert ".venv/bin/rotator" in README
    assert ". .venv/bin/activate" in README


def test_demo_output_is_ignored_by_git():
    """`rotator demo` writes demo-out/ in the current directory: .gitignore names it."""
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "demo-out/" in ignored


def test_install_clones_no_placeholder_url():
    assert not re.search(r"git clone https?://github\.com/example/", INSTALL)


def test_japanese_readme_lists_the_core_modules_the_contract_lists():
    """Both READMEs name every module of the core import contract."""
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    block = pyproject.split('name = "The core never imports I/O libraries or adapters"', 1)[1]
    modules = re.findall(r'"rotator\.(\w+)"', block.split("forbidden_modules", 1)[0])
    assert "state" in modules
    for module in modules:
        assert f"{module}.py" in README, module
        assert f"{module}.py" in README_JA, module


def test_demo_table_shows_the_key_fp_the_logs_carry():
    """The demo's table and its log lines name a key the same way: key_fp."""

    report = KeyReport(
        name="bot-alpha", account="main", sub_uid=2001, state="idle", key_id="Y0CQABCDEFQ8"
    )
    daemon = SimpleNamespace(reports={"bot-alpha": report})
    table = status_table(daemon, datetime(2026, 1, 1, tzinfo=UTC))  # type: ignore[arg-type]
    assert "KEY FP" in table.splitlines()[0]
    assert fingerprint("Y0CQABCDEFQ8") in table
    assert "Y0CQ…Q8" not in table
