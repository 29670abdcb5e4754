"""Hooks that misbehave: any exception is a counted hand-off failure (LeaseLost excepted), webhook
URLs are checked at load, in `check` and before posting, and command hooks never outlive the
daemon (their own process group, PR_SET_PDEATHSIG, `kill_running_hooks`). Issues 10 and 12."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from rotator.adapters import hooks as hooks_mod
from rotator.adapters.hooks import (
    CommandHandOff,
    HookChains,
    HookContext,
    WebhookHandOff,
    build_hooks,
    kill_running_hooks,
    running_hook_groups,
)
from rotator.cli.check import Checklist, check_hooks
from rotator.config import CommandHook, WebhookHook, parse, webhook_url_problem
from rotator.errors import ConfigError, HandOffFailed, LeaseLost

KEY_ID = "HARDKEYID00000001"
SECRET = "HARDSECRET0000000000000000000000000001"
RECORD = {"api_key": KEY_ID, "api_secret": SECRET, "rotation_id": "r1"}
CTX = HookContext(vault_path="rotator/keys/bot1", key_file=None)
BAD_URL = "http://[oops/hook?token=HOOKTOKEN123456"


def _gone(pid: int) -> bool:
    """The process no longer runs (gone, or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _wait_for(predicate, what: str, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {limit_s}s")
        time.sleep(0.05)


class Raising:
    kind = "custom"

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def run(self, key_name, record, context):
        raise self.exc


def _chains(hook, failures):
    return HookChains(
        {"bot1": [hook]}, {"bot1": CTX}, on_failure=lambda k, kind: failures.append((k, kind))
    )


@pytest.mark.parametrize(
    "exc", [ValueError("bad"), RuntimeError(SECRET), OverflowError(), KeyError("x")]
)
def test_any_hook_exception_is_a_counted_handoff_failure(exc):
    """A hook raising anything becomes HandOffFailed (the engine records and retries it), and the
    failure is counted; the message names the class only, never the exception's text."""
    failures: list = []
    with pytest.raises(HandOffFailed) as info:
        _chains(Raising(exc), failures).deliver("bot1", dict(RECORD))
    assert type(exc).__name__ in info.value.message
    assert SECRET not in info.value.message
    assert failures == [("bot1", "custom")]


def test_lease_lost_passes_through_hooks_uncounted():
    """LeaseLost from a hook or from the fence is not a hook failure: it passes unchanged."""
    failures: list = []
    with pytest.raises(LeaseLost):
        _chains(Raising(LeaseLost("fenced")), failures).deliver("bot1", dict(RECORD))

    def fence():
        raise LeaseLost("lease gone")

    with pytest.raises(LeaseLost):
        _chains(Raising(RuntimeError()), failures).deliver("bot1", dict(RECORD), fence=fence)
    assert failures == []


def test_unparsable_webhook_url_file_fails_the_handoff_without_quoting_it(tmp_path):
    """The URL of issue 10 (`http://[oops/hook` in a url_file) is a counted hand-off failure."""
    url_file = tmp_path / "url"
    url_file.write_text(BAD_URL + "\n")
    failures: list = []
    hook = WebhookHandOff(WebhookHook(type="webhook", url_file=url_file))
    with pytest.raises(HandOffFailed) as info:
        _chains(hook, failures).deliver("bot1", dict(RECORD))
    assert "not a URL" in info.value.message
    assert "HOOKTOKEN" not in info.value.message
    assert failures == [("bot1", "webhook")]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://[oops/hook", "not a URL"),
        ("ftp://example.com/x", "scheme"),
        ("hooks.example/rotated", "scheme"),
        ("http:///path-only", "no host"),
        ("https://hooks.example/rotated?t=1", None),
        ("http://127.0.0.1:8080/x", None),
    ],
)
def test_webhook_url_problem(url, problem):
    found = webhook_url_problem(url)
    assert (found is None) if problem is None else (problem in found)


CONFIG = """
[[accounts]]
name = "main"
[[keys]]
name = "bot1"
account = "main"
sub_uid = 2001
permissions = {{ Spot = ["SpotTrade"] }}
{hooks}
"""


def test_inline_webhook_url_is_checked_at_load():
    hooks = '[[keys.hooks]]\ntype = "webhook"\nurl = "ftp://hooks.example/x"\n'
    with pytest.raises(ConfigError, match=r"keys\[0\]\.hooks\[0\].*scheme http:// or https://"):
        parse(CONFIG.format(hooks=hooks), source="t.toml")


def test_check_reports_bad_hook_urls(tmp_path, monkeypatch, capsys):
    """`rotator check` reads url_file and url_env and fails a URL the hook could not post to."""
    bad_file = tmp_path / "bad.url"
    bad_file.write_text(BAD_URL)
    good_file = tmp_path / "good.url"
    good_file.write_text("https://hooks.example/rotated")
    monkeypatch.setenv("HOOK_URL_ENV", "ftp://hooks.example/x")
    hooks = "".join(
        f'[[keys.hooks]]\ntype = "webhook"\n{source}\ntimeout = "5s"\n'
        for source in (
            f'url_file = "{bad_file}"',
            'url_env = "HOOK_URL_ENV"',
            f'url_file = "{good_file}"',
            f'url_file = "{tmp_path / "missing"}"',
        )
    )
    out = Checklist()
    check_hooks(parse(CONFIG.format(hooks=hooks), source="t.toml"), out)
    assert [i.status for i in out.items] == ["FAIL", "FAIL", "ok", "FAIL"]
    assert "not a URL" in out.items[0].text
    assert "scheme" in out.items[1].text
    printed = capsys.readouterr().out
    assert "HOOKTOKEN" not in printed
    assert "ftp://" not in printed


def test_default_hook_timeouts_stay_below_the_lease():
    """Defaults: command 20s, webhook 10s; one key's hooks together must end before
    leader_election.renew_deadline, and the error names the hooks and the fix."""
    assert CommandHook(type="command", argv=["true"]).timeout == timedelta(seconds=20)
    assert WebhookHook(type="webhook", url_env="X").timeout == timedelta(seconds=10)
    one_each = (
        '[[keys.hooks]]\ntype = "command"\nargv = ["true"]\n'
        '[[keys.hooks]]\ntype = "webhook"\nurl_env = "X"\n'
    )
    parse(CONFIG.format(hooks=one_each), source="t.toml")  # 30s < 40s
    with pytest.raises(ConfigError) as info:
        parse(CONFIG.format(hooks=one_each * 2), source="t.toml")
    message = info.value.message
    assert message.startswith("t.toml")
    assert "keys[0].hooks" in message
    assert "hooks[0] command 20s" in message
    assert "renew_deadline" in message
    assert "Lower the hooks' timeout" in message


# ------------------------------------------------------------------------ process groups
def test_timeout_kills_the_hooks_whole_process_group(tmp_path):
    """A command that started a background child: on timeout the child dies too."""
    pid_file = tmp_path / "pid"
    hook = CommandHook(
        type="command",
        argv=["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"],
        timeout=timedelta(seconds=1),
    )
    with pytest.raises(HandOffFailed, match="killed its process group"):
        CommandHandOff(hook, {"PATH": os.environ["PATH"]}).run("bot1", RECORD, CTX)
    child = int(pid_file.read_text())
    _wait_for(lambda: _gone(child), "the background child of a timed-out hook did not die")
    assert running_hook_groups() == frozenset()


def test_kill_running_hooks_ends_every_running_hook(tmp_path):
    """The daemon's shutdown kills the groups of hooks still running; the hand-off fails."""
    hook = CommandHook(type="command", argv=["sleep", "60"], timeout=timedelta(seconds=50))
    errors: list[BaseException] = []

    def run():
        try:
            CommandHandOff(hook, {"PATH": os.environ["PATH"]}).run("bot1", RECORD, CTX)
        except HandOffFailed as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    _wait_for(running_hook_groups, "the hook never started")
    assert kill_running_hooks() == 1
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert [str(e) for e in errors] == ["command hook 'sleep' exited with -9"]
    assert running_hook_groups() == frozenset()


DAEMON = """
import os, sys
from pathlib import Path
from rotator.adapters.hooks import build_hooks
from rotator.config import parse
cfg = parse(Path(sys.argv[1]).read_text())
build_hooks(cfg, env={"PATH": os.environ["PATH"]}).deliver(
    "bot1", {"api_key": "K" * 18, "api_secret": "S" * 36}
)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_hook_dies_when_the_daemon_is_killed(tmp_path):
    """SIGKILL the process running a hook: the hook (the test's grandchild) dies with it."""
    pid_file = tmp_path / "pid"
    config = tmp_path / "rotator.toml"
    hooks = (
        '[[keys.hooks]]\ntype = "command"\n'
        f'argv = ["sh", "-c", "echo $$ > {pid_file}; exec sleep 60"]\n'
    )
    config.write_text(CONFIG.format(hooks=hooks))
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON, str(config)])
    try:
        _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), "no hook ran")
        hook_pid = int(pid_file.read_text())
        assert not _gone(hook_pid)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
        _wait_for(lambda: _gone(hook_pid), "the hook outlived the daemon that ran it")
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)
        if pid_file.exists() and pid_file.read_text().strip():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_build_hooks_unchanged_for_good_configs(tmp_path):
    """A config with one hook of each kind still builds its chain in order."""
    hooks = (
        f'[[keys.hooks]]\ntype = "file"\npath = "{tmp_path / "b.env"}"\n'
        '[[keys.hooks]]\ntype = "command"\nargv = ["true"]\n'
        '[[keys.hooks]]\ntype = "webhook"\nurl = "https://hooks.example/x"\n'
    )
    chains = build_hooks(parse(CONFIG.format(hooks=hooks), source="t.toml"))
    assert [h.kind for h in chains.chains["bot1"]] == ["file", "command", "webhook"]
    assert hooks_mod.HookChains is HookChains


def test_timeout_does_not_hang_on_a_process_that_left_the_group(tmp_path, monkeypatch):
    """A hook child that called setsid keeps the output pipe open: after killing the group the
    hook fails anyway, within the drain limit, instead of waiting for that process."""
    monkeypatch.setattr(hooks_mod, "_REAP_WAIT_S", 0.2)
    pid_file = tmp_path / "pid"
    hook = CommandHook(
        type="command",
        argv=["sh", "-c", f"setsid sleep 60 & echo $! > {pid_file}; sleep 60"],
        timeout=timedelta(seconds=0.5),
    )
    started = time.monotonic()
    try:
        with pytest.raises(HandOffFailed, match="did not finish"):
            CommandHandOff(hook, {"PATH": os.environ["PATH"]}).run("bot1", RECORD, CTX)
        assert time.monotonic() - started < 30
    finally:
        if pid_file.exists() and pid_file.read_text().strip():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
