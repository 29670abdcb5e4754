"""Hand-off hooks: atomic 0600 files, env quoting, commands without secrets, webhooks."""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from rotator.adapters.hooks import (
    CommandHandOff,
    FileHandOff,
    HookContext,
    WebhookHandOff,
    atomic_write,
    build_hooks,
    env_quote,
)
from rotator.config import CommandHook, FileHook, WebhookHook, parse
from rotator.errors import HandOffFailed
from rotator.model import fingerprint

KEY_ID = "HOOKKEYID00000001"
SECRET = "HOOKSECRET0000000000000000000000000001"
RECORD = {
    "api_key": KEY_ID,
    "api_secret": SECRET,
    "expires_at": "2026-04-01T00:00:00+00:00",
    "rotation_id": "abc123",
    "account": "main",
    "sub_uid": 2001,
}
CTX = HookContext(vault_path="rotator/keys/bot1", key_file=Path("/tmp/x.env"))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_env_file_is_written_atomically_with_mode_0600(tmp_path):
    """The env file holds exactly the two lines, mode 0600, and no temp file is left behind."""
    target = tmp_path / "bot.env"
    target.write_text("OLD=1\n")
    FileHandOff(FileHook(type="file", path=target)).run("bot1", RECORD, CTX)
    assert target.read_text() == f"BYBIT_API_KEY={KEY_ID}\nBYBIT_API_SECRET={SECRET}\n"
    assert mode_of(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bot.env"]


def test_configured_mode_and_json_format(tmp_path):
    """format=json writes the consumer record; mode 0640 is applied."""
    target = tmp_path / "bot.json"
    FileHandOff(FileHook(type="file", path=target, format="json", mode=0o640)).run(
        "bot1", RECORD, CTX
    )
    assert json.loads(target.read_text()) == RECORD
    assert mode_of(target) == 0o640


def test_temp_file_is_0600_from_the_start(tmp_path, monkeypatch):
    """The temp file is created 0600 by os.open, even with a permissive umask."""
    seen = []
    real_open = os.open

    def spy(path, flags, mode=0o777, **kw):
        if str(path).endswith(".tmp"):
            seen.append((flags & os.O_EXCL, mode))
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", spy)
    old = os.umask(0)
    try:
        atomic_write(tmp_path / "f.env", b"x", mode=0o600)
    finally:
        os.umask(old)
    assert seen == [(os.O_EXCL, 0o600)]
    assert mode_of(tmp_path / "f.env") == 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    """A crash before the rename leaves the previous file intact."""
    target = tmp_path / "bot.env"
    target.write_text("OLD=1\n")

    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(HandOffFailed, match="No space left"):
        FileHandOff(FileHook(type="file", path=target)).run("bot1", RECORD, CTX)
    assert target.read_text() == "OLD=1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bot.env"]


def test_missing_directory_is_a_clear_failure(tmp_path):
    with pytest.raises(HandOffFailed, match=r"cannot write .*directory exists"):
        FileHandOff(FileHook(type="file", path=tmp_path / "nope" / "bot.env")).run(
            "bot1", RECORD, CTX
        )


@pytest.mark.skipif(os.geteuid() == 0, reason="root may chown to anyone")
def test_chown_not_permitted_is_a_clear_failure(tmp_path):
    hook = FileHook(type="file", path=tmp_path / "bot.env", owner="0")
    with pytest.raises(HandOffFailed, match="not permitted"):
        FileHandOff(hook).run("bot1", RECORD, CTX)


def test_unknown_owner_is_a_clear_failure(tmp_path):
    hook = FileHook(type="file", path=tmp_path / "bot.env", owner="no-such-user-xyz")
    with pytest.raises(HandOffFailed, match="no such user"):
        FileHandOff(hook).run("bot1", RECORD, CTX)


@pytest.mark.parametrize(
    "value",
    ["plain", "with space", 'dq"uote', "sq'uote", "dollar$HOME", "back\\slash", "tick`id`", ""],
)
def test_env_values_read_back_unchanged_by_sh(tmp_path, value):
    """What env_quote writes, `sh` (and so systemd/dotenv, same rules) reads back verbatim."""
    env_file = tmp_path / "v.env"
    env_file.write_text(f"V={env_quote(value)}\n")
    out = subprocess.run(
        ["/bin/sh", "-c", f'set -a; . "{env_file}"; printf %s "$V"'],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"},
    ).stdout
    assert out == value


def test_env_quote_refuses_newlines():
    with pytest.raises(HandOffFailed, match="control character"):
        env_quote("a\nB=1")


DUMP = """
import json, os, sys, time
out = os.environ.get("DUMP_TO") or sys.argv[1]
with open(sys.argv[1], "w") as f:
    json.dump({"argv": sys.argv, "env": dict(os.environ)}, f)
if len(sys.argv) > 2:
    time.sleep(float(sys.argv[2]))
sys.exit(int(os.environ.get("EXIT", "0")))
"""


def test_command_gets_key_name_and_file_but_never_the_secret(tmp_path):
    """argv and environment of the command hold no key id or secret, even when the daemon's own
    environment holds a Vault token."""
    dump = tmp_path / "dump.json"
    hook = CommandHook(type="command", argv=[sys.executable, "-c", DUMP, str(dump)])
    parent_env = {"PATH": os.environ["PATH"], "VAULT_TOKEN": "hvs.parenttoken", "LANG": "C.UTF-8"}
    CommandHandOff(hook, parent_env).run("bot1", RECORD, CTX)
    seen = json.loads(dump.read_text())
    assert seen["env"]["ROTATOR_KEY_NAME"] == "bot1"
    assert seen["env"]["ROTATOR_KEY_FILE"] == "/tmp/x.env"
    assert seen["env"]["ROTATOR_KEY_FP"] == fingerprint(KEY_ID)
    assert seen["env"]["ROTATOR_VAULT_PATH"] == "rotator/keys/bot1"
    assert "VAULT_TOKEN" not in seen["env"]
    text = dump.read_text()
    assert SECRET not in text
    assert KEY_ID not in text


def test_command_nonzero_exit_fails_the_handoff(tmp_path):
    hook = CommandHook(type="command", argv=[sys.executable, "-c", "import sys; sys.exit(3)"])
    with pytest.raises(HandOffFailed, match="exited with 3"):
        CommandHandOff(hook, {"PATH": os.environ["PATH"]}).run("bot1", RECORD, CTX)


def test_command_timeout_kills_it(tmp_path):
    dump = tmp_path / "dump.json"
    hook = CommandHook(
        type="command",
        argv=[sys.executable, "-c", DUMP, str(dump), "30"],
        timeout=timedelta(seconds=0.5),
    )
    with pytest.raises(HandOffFailed, match=r"did not finish within 0\.5s"):
        CommandHandOff(hook, {"PATH": os.environ["PATH"]}).run("bot1", RECORD, CTX)


def test_missing_command_fails_clearly():
    hook = CommandHook(type="command", argv=["/nonexistent/restart-bot"])
    with pytest.raises(HandOffFailed, match="cannot start"):
        CommandHandOff(hook, {}).run("bot1", RECORD, CTX)


def test_webhook_posts_fingerprint_never_key_or_secret(capture):
    """The webhook body names the key and its fingerprint; no key id, no secret."""
    hook = WebhookHook(type="webhook", url_env="HOOK_URL")
    WebhookHandOff(hook, {"HOOK_URL": capture.url + "/rotated"}).run("bot1", RECORD, CTX)
    [got] = capture.received
    assert got.path == "/rotated"
    assert got.json["key"] == "bot1"
    assert got.json["key_fp"] == fingerprint(KEY_ID)
    assert got.json["vault_path"] == "rotator/keys/bot1"
    assert SECRET.encode() not in got.body
    assert KEY_ID.encode() not in got.body


def test_webhook_url_from_file_and_non_2xx_fails(capture, tmp_path):
    url_file = tmp_path / "url"
    url_file.write_text(capture.url + "/x\n")
    capture.status = 500
    with pytest.raises(HandOffFailed, match="answered HTTP 500"):
        WebhookHandOff(WebhookHook(type="webhook", url_file=url_file)).run("bot1", RECORD, CTX)


def test_webhook_unreachable_error_does_not_quote_the_url():
    hook = WebhookHook(
        type="webhook", url="http://127.0.0.1:9/hook?token=SUPERSECRETTOKEN1", timeout="1s"
    )
    with pytest.raises(HandOffFailed) as info:
        WebhookHandOff(hook).run("bot1", RECORD, CTX)
    assert "SUPERSECRETTOKEN1" not in info.value.message


CONFIG = """
[[accounts]]
name = "main"
[[keys]]
name = "bot1"
account = "main"
sub_uid = 2001
permissions = {{ Spot = ["SpotTrade"] }}
[[keys.hooks]]
type = "file"
path = "{env}"
[[keys.hooks]]
type = "command"
argv = ["{python}", "-c", "import sys; sys.exit(int(open('{flag}').read()))"]
[[keys.hooks]]
type = "webhook"
url_env = "HOOK_URL"
"""


def test_chain_runs_in_order_and_stops_at_first_failure(tmp_path, capture):
    """file -> command -> webhook; a failing command stops the chain (no webhook) and is counted
    by hook kind."""
    flag = tmp_path / "flag"
    flag.write_text("1")
    cfg = parse(
        CONFIG.format(env=tmp_path / "bot1.env", python=sys.executable, flag=flag),
        source="t.toml",
    )
    failures = []
    chains = build_hooks(
        cfg,
        env={"PATH": os.environ["PATH"], "HOOK_URL": capture.url},
        on_failure=lambda key, kind: failures.append((key, kind)),
    )
    with pytest.raises(HandOffFailed):
        chains.deliver("bot1", dict(RECORD))
    assert (tmp_path / "bot1.env").exists()
    assert capture.received == []
    assert failures == [("bot1", "command")]
    flag.write_text("0")
    chains.deliver("bot1", dict(RECORD))
    assert len(capture.received) == 1
    chains.deliver("unknown-key", dict(RECORD))  # no hooks: nothing to do


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may give a file away")
def test_owner_and_group_are_applied(tmp_path):
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    target = tmp_path / "bot.env"
    FileHandOff(FileHook(type="file", path=target, owner="nobody", group=group)).run(
        "bot1", RECORD, CTX
    )
    assert (target.stat().st_uid, target.stat().st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert mode_of(target) == 0o600
