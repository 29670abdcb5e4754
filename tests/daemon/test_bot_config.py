"""config_file hooks on real files: the two fields change, every other byte and comment stays, the
file keeps its owner, group and mode, the secret never sits in a loose file or a log line."""

from __future__ import annotations

import json
import os
import pwd
import stat
import tomllib
from pathlib import Path

import pytest
import yaml
from rotator.adapters import bot_config
from rotator.adapters.bot_config import ConfigFileHandOff
from rotator.adapters.hooks import HookContext, build_hooks
from rotator.config import ConfigFileHook, parse
from rotator.errors import ConfigError, HandOffFailed
from structlog.testing import capture_logs

KEY_ID = "CFGKEYID000000001"
SECRET = "CFGSECRET00000000000000000000000000001"
OLD_SECRET = "OLDSECRET0000000000000000000000000042"
RECORD = {"api_key": KEY_ID, "api_secret": SECRET, "rotation_id": "r1", "account": "main"}
CTX = HookContext(vault_path="rotator/keys/bot1", key_file=None)

# A freqtrade config as `freqtrade new-config` writes it (4-space indent), trimmed.
FREQTRADE = (
    """{
    "max_open_trades": 3,
    "stake_currency": "USDT",
    "stake_amount": 0.05,
    "tradable_balance_ratio": 0.99,
    "dry_run": false,
    "trading_mode": "futures",
    "margin_mode": "isolated",
    "exchange": {
        "name": "bybit",
        "key": "OLDKEY",
        "secret": "OLD_SECRET",
        "ccxt_config": {},
        "pair_whitelist": ["BTC/USDT:USDT", "ETH/USDT:USDT"],
        "pair_blacklist": []
    },
    "telegram": {"enabled": false, "token": "", "chat_id": ""},
    "bot_name": "fr\\u00e9qbot",
    "initial_state": "running"
}
"""
).replace("OLD_SECRET", OLD_SECRET)

YAML_FILE = f"""# Bot settings (edited by hand; the rotator sets exchange.api_key/api_secret)
bot:
  name: grid-bot   # shown in chat
exchange:
  id: bybit
  api_key: OLDKEY        # rotated by bybit-key-rotator
  api_secret: '{OLD_SECRET}'
  symbols:
    - BTCUSDT
    - ETHUSDT
risk:
  max_position: 1.50
"""

TOML_FILE = f"""# Bot settings
title = "grid bot"

[exchange]
id = "bybit"
api_key = "OLDKEY"            # rotated by bybit-key-rotator
api_secret = '{OLD_SECRET}'   # literal string, keeps its quotes
symbols = ["BTCUSDT", "ETHUSDT"]

[risk]
max_position = 1.50  # contracts
"""


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def hook(path: Path, key: str = "exchange.key", secret: str = "exchange.secret", **kw):
    return ConfigFileHandOff(
        ConfigFileHook(
            type="config_file", path=path, api_key_field=key, api_secret_field=secret, **kw
        )
    )


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_freqtrade_json_changes_exactly_the_two_values(tmp_path):
    """Every byte but the two values stays (inline lists, spacing, number spelling, \\u escapes);
    the mode stays 0640; no temp file is left."""
    target = write(tmp_path / "config.json", FREQTRADE, 0o640)
    hook(target).run("bot1", RECORD, CTX)
    expected = FREQTRADE.replace('"OLDKEY"', f'"{KEY_ID}"').replace(OLD_SECRET, SECRET)
    assert target.read_text() == expected
    assert json.loads(target.read_text())["exchange"]["secret"] == SECRET
    assert mode_of(target) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_compact_json_and_null_fields(tmp_path):
    """A one-line file stays one line; a null field takes a string."""
    target = write(tmp_path / "c.json", '{"exchange":{"key":null,"secret":null},"n":1.50}')
    hook(target).run("bot1", RECORD, CTX)
    assert target.read_text() == (
        f'{{"exchange":{{"key":"{KEY_ID}","secret":"{SECRET}"}},"n":1.50}}'
    )


def test_yaml_keeps_comments_order_and_quote_style(tmp_path):
    target = write(tmp_path / "bot.yaml", YAML_FILE)
    hook(target, "exchange.api_key", "exchange.api_secret").run("bot1", RECORD, CTX)
    text = target.read_text()
    assert text == YAML_FILE.replace("OLDKEY       ", KEY_ID).replace(OLD_SECRET, SECRET)
    assert yaml.safe_load(text)["exchange"]["api_secret"] == SECRET


@pytest.mark.parametrize("value", ["yes", "0123", "1e3", "a: b", "null", "abc-def"])
def test_yaml_values_read_back_as_the_same_string_by_yaml_1_1(tmp_path, value):
    """A plain old value gets quotes when a YAML 1.1 reader (PyYAML) would read a bool, a number
    or something else."""
    target = write(tmp_path / "bot.yml", "exchange:\n  key: old\n  secret: old\n")
    hook(target).run("bot1", {"api_key": value, "api_secret": value}, CTX)
    assert yaml.safe_load(target.read_text())["exchange"] == {"key": value, "secret": value}


def test_toml_keeps_comments_and_layout(tmp_path):
    target = write(tmp_path / "bot.toml", TOML_FILE)
    hook(target, "exchange.api_key", "exchange.api_secret").run("bot1", RECORD, CTX)
    text = target.read_text()
    assert text == TOML_FILE.replace('"OLDKEY"', f'"{KEY_ID}"').replace(OLD_SECRET, SECRET)
    assert tomllib.loads(text)["exchange"]["api_secret"] == SECRET


def test_toml_dotted_keys_at_top_level(tmp_path):
    target = write(tmp_path / "bot.toml", 'exchange.key = ""\nexchange.secret = ""\n')
    hook(target).run("bot1", RECORD, CTX)
    assert target.read_text() == f'exchange.key = "{KEY_ID}"\nexchange.secret = "{SECRET}"\n'


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may give a file to another user")
def test_owner_group_and_mode_are_kept(tmp_path):
    """A file of the bot's user (nobody) stays the bot's, with its mode (the rotator is root)."""
    nobody = pwd.getpwnam("nobody")
    target = write(tmp_path / "config.json", FREQTRADE, 0o640)
    os.chown(target, nobody.pw_uid, nobody.pw_gid)
    hook(target).run("bot1", RECORD, CTX)
    info = target.stat()
    assert (info.st_uid, info.st_gid, mode_of(target)) == (nobody.pw_uid, nobody.pw_gid, 0o640)
    assert json.loads(target.read_text())["exchange"]["key"] == KEY_ID


def test_owner_that_cannot_be_kept_is_a_clear_failure(tmp_path, monkeypatch):
    """A file of another user, and a service without CAP_CHOWN (simulated: fchown refused):
    the hand-off fails with the fix, the file is untouched, no temp file is left."""
    target = write(tmp_path / "config.json", FREQTRADE)
    real_lstat = os.lstat

    def foreign(path, *a, **kw):
        values = list(real_lstat(path, *a, **kw))
        values[4] = values[4] + 4242  # st_uid: someone else's file
        return os.stat_result(values)

    def refused(fd, uid, gid):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(bot_config.os, "lstat", foreign)
    monkeypatch.setattr(bot_config.os, "fchown", refused)
    with pytest.raises(HandOffFailed, match=r"CAP_CHOWN.*mode 0640"):
        hook(target).run("bot1", RECORD, CTX)
    assert target.read_text() == FREQTRADE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_temp_file_is_0600_from_the_start_whatever_the_umask(tmp_path, monkeypatch):
    """The only file that ever holds the new secret before the rename is created 0600 with
    O_EXCL|O_NOFOLLOW, even under umask 000; it takes the target's mode only once written."""
    target = write(tmp_path / "config.json", FREQTRADE, 0o640)
    seen = []
    real_open = os.open

    def spy(path, flags, mode=0o777, **kw):
        if str(path).endswith(".tmp"):
            seen.append((bool(flags & os.O_CREAT), flags & os.O_EXCL, flags & os.O_NOFOLLOW, mode))
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(bot_config.os, "open", spy)
    old = os.umask(0)
    try:
        hook(target).run("bot1", RECORD, CTX)
    finally:
        os.umask(old)
    assert seen == [(True, os.O_EXCL, os.O_NOFOLLOW, 0o600)]
    assert mode_of(target) == 0o640


def test_an_edit_by_the_bot_meanwhile_is_kept(tmp_path, monkeypatch):
    """The bot saves its file between our read and our rename: we start again from its version
    instead of overwriting its change."""
    target = write(tmp_path / "config.json", FREQTRADE)
    real_read = bot_config.read_config_file
    calls = []

    def read_then_bot_saves(path):
        result = real_read(path)
        calls.append(1)
        if len(calls) == 1:
            target.write_text(FREQTRADE.replace('"max_open_trades": 3', '"max_open_trades": 5'))
        return result

    monkeypatch.setattr(bot_config, "read_config_file", read_then_bot_saves)
    hook(target).run("bot1", RECORD, CTX)
    saved = json.loads(target.read_text())
    assert len(calls) == 2
    assert saved["max_open_trades"] == 5
    assert saved["exchange"]["key"] == KEY_ID


def test_a_second_run_with_the_same_key_leaves_the_file_alone(tmp_path):
    target = write(tmp_path / "config.json", FREQTRADE)
    hook(target).run("bot1", RECORD, CTX)
    inode = target.stat().st_ino
    with capture_logs() as logs:
        hook(target).run("bot1", RECORD, CTX)
    assert target.stat().st_ino == inode
    assert [e["event"] for e in logs] == ["handoff.config_file_unchanged"]


REFUSALS = [
    ("missing", None, "exchange.key", "does not exist"),
    (
        "json",
        '{"exchange": {"key": "a", "secret": "' + OLD_SECRET + '",}}',
        "exchange.key",
        r"not valid JSON \(line 1, column",
    ),
    ("json", '// comment\n{"exchange": {}}', "exchange.key", "not valid JSON"),
    ("json", '{"exchange": "bybit", "secret": "x"}', "exchange.key", "exchange is not an object"),
    (
        "json",
        '{"exchange": {"key": "a"}, "exchange": {"key": "b"}}',
        "exchange.key",
        "repeats a key",
    ),
    ("json", '["not", "an", "object"]', "exchange.key", "the top level is not an object"),
    ("json", '{"exchange": {"secret": "a"}}', "exchange.key", "has no field exchange.key"),
    ("json", '{"other": {"key": "a"}}', "exchange.key", "has no exchange"),
    (
        "json",
        '{"exchange": {"key": {"id": 1}, "secret": ""}}',
        "exchange.key",
        "holds an object or a list",
    ),
    (
        "yaml",
        f"exchange:\n  key: a\n  secret: '{OLD_SECRET}\n",
        "exchange.key",
        r"not valid YAML \(line",
    ),
    ("yaml", "- a\n- b\n", "exchange.key", "top level is not a YAML mapping"),
    ("yaml", "exchange:\n  key: [a, b]\n  secret: x\n", "exchange.key", "object or a list"),
    (
        "toml",
        f'[exchange]\nkey = "a"\nsecret = "{OLD_SECRET}\n',
        "exchange.key",
        r"not valid TOML \(line",
    ),
    ("toml", 'exchange = "bybit"\n', "exchange.key", "exchange is not an object"),
]


@pytest.mark.parametrize(("fmt", "content", "field", "message"), REFUSALS)
def test_refusals_are_clear_and_leave_the_file_untouched(tmp_path, fmt, content, field, message):
    """Each refusal names the file and the problem, changes nothing, and quotes no value."""
    suffix = "json" if fmt == "missing" else fmt
    target = tmp_path / f"bot.{suffix}"
    if content is not None:
        write(target, content)
    before = target.read_bytes() if content is not None else None
    with capture_logs() as logs, pytest.raises(HandOffFailed, match=message) as err:
        hook(target, field, "exchange.secret").run("bot1", RECORD, CTX)
    assert str(target) in err.value.message
    if before is not None:
        assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ([target.name] if content else [])
    for secret in (SECRET, KEY_ID, OLD_SECRET):
        assert secret not in err.value.message
        assert secret not in json.dumps(logs, default=str)


def test_symlink_and_loose_mode_are_refused(tmp_path):
    real = write(tmp_path / "real.json", FREQTRADE)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    with pytest.raises(HandOffFailed, match="symbolic link; set path to the file it points to"):
        hook(link).run("bot1", RECORD, CTX)
    real.chmod(0o644)
    with pytest.raises(HandOffFailed, match=r"mode 0o644: other users may read it.*chmod o-rwx"):
        hook(real).run("bot1", RECORD, CTX)
    assert real.read_text() == FREQTRADE


CONFIG = """
[[accounts]]
name = "main"
[[keys]]
name = "bot1"
account = "main"
sub_uid = 2001
permissions = {{ ContractTrade = ["Order"] }}
[[keys.hooks]]
type = "config_file"
path = "{path}"
{fields}
"""


def test_config_file_hook_through_the_chain_leaks_nothing(tmp_path):
    """Built from the config like the daemon builds it; logs name the file and the fields only."""
    target = write(tmp_path / "config.json", FREQTRADE)
    fields = 'api_key_field = "exchange.key"\napi_secret_field = "exchange.secret"'
    cfg = parse(CONFIG.format(path=target, fields=fields), source="t.toml")
    failures = []
    chains = build_hooks(cfg, on_failure=lambda key, kind: failures.append((key, kind)))
    with capture_logs() as logs:
        chains.deliver("bot1", dict(RECORD))
        target.write_text("{broken " + OLD_SECRET)
        with pytest.raises(HandOffFailed):
            chains.deliver("bot1", dict(RECORD))
    assert failures == [("bot1", "config_file")]
    events = [e["event"] for e in logs]
    assert events == ["handoff.config_file_written", "handoff.hook_failed"]
    assert logs[0]["fields"] == ["exchange.key", "exchange.secret"]
    dumped = json.dumps(logs, default=str)
    for secret in (SECRET, KEY_ID, OLD_SECRET):
        assert secret not in dumped


@pytest.mark.parametrize(
    ("path", "fields", "message"),
    [
        ("bot.json", 'api_key_field = "a"\napi_secret_field = "b"', "must be absolute"),
        (
            "/etc/bot/config.ini",
            'api_key_field = "a"\napi_secret_field = "b"',
            "cannot tell the format",
        ),
        ("/etc/bot/c.json", 'api_key_field = "a..b"\napi_secret_field = "b"', "not a field path"),
        ("/etc/bot/c.json", 'api_key_field = "a"\napi_secret_field = "a"', "two different"),
        ("/etc/bot/c.json", 'api_key_field = "ex"\napi_secret_field = "ex.s"', "neither inside"),
        ("/etc/bot/c.json", 'api_key_field = "a"', "'api_secret_field' is missing"),
        ("/etc/bot/c.json", 'api_key_field = "a"\napi_secret_field = "b"\nmode = 1', "unknown"),
    ],
)
def test_config_validation(path, fields, message):
    with pytest.raises(ConfigError) as err:
        parse(CONFIG.format(path=path, fields=fields), source="t.toml")
    text = str(err.value).replace("\n", " ")
    assert "t.toml:" in text
    assert "keys[0].hooks[0]" in text
    assert message.replace("\n", " ") in text.replace('"', "").replace("format = ", "format ")


def test_format_given_or_from_the_suffix():
    cfg = parse(
        CONFIG.format(
            path="/etc/bot/settings.conf",
            fields='format = "yaml"\napi_key_field = "k"\napi_secret_field = "s"',
        )
    )
    assert cfg.keys[0].hooks[0].file_format == "yaml"
    cfg = parse(
        CONFIG.format(path="/etc/bot/x.YML", fields='api_key_field = "k"\napi_secret_field = "s"')
    )
    assert cfg.keys[0].hooks[0].file_format == "yaml"


def test_rotator_check_dry_runs_the_edit(tmp_path, capsys):
    """`rotator check` makes the edit in memory only: a typo in a field path or a loose mode
    shows at install time, not at the first rotation; nothing is written."""
    from rotator.cli.check import Checklist, check_hooks  # noqa: PLC0415 (the CLI's own module)

    good = write(tmp_path / "config.json", FREQTRADE)
    typo = write(tmp_path / "typo.json", FREQTRADE)
    loose = write(tmp_path / "loose.toml", TOML_FILE, 0o644)
    hooks = "".join(
        f'[[keys.hooks]]\ntype = "config_file"\npath = "{path}"\napi_key_field = "{k}"\n'
        f'api_secret_field = "{s}"\n'
        for path, k, s in (
            (good, "exchange.key", "exchange.secret"),
            (typo, "exchange.api_key", "exchange.secret"),
            (loose, "exchange.api_key", "exchange.api_secret"),
        )
    )
    cfg = parse(CONFIG.split("[[keys.hooks]]", maxsplit=1)[0].format() + hooks)
    before = {p: p.read_bytes() for p in (good, typo, loose)}
    out = Checklist()
    check_hooks(cfg, out)
    assert [i.status for i in out.items] == ["ok", "FAIL", "FAIL"]
    assert "holds exchange.key and exchange.secret" in out.items[0].text
    assert "has no field exchange.api_key" in out.items[1].text
    assert "mode 0o644" in out.items[2].text
    assert {p: p.read_bytes() for p in before} == before
    assert OLD_SECRET not in capsys.readouterr().out
