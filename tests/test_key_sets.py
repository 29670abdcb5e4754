"""Key sets (issue 13 item 1): one `[[key_sets]]` table describes many keys. An explicit list of
sub UIDs expands at load into ordinary keys, checked as strictly as `[[keys]]` tables: every
problem is one ConfigError line naming the file, the set, the field and the sub UID."""

from __future__ import annotations

from pathlib import Path

import pytest
from rotator import config
from rotator.config import CommandHook, FileHook
from rotator.errors import ConfigError

ACCOUNT = """\
[[accounts]]
name = "main"
"""

FLEET = (
    ACCOUNT
    + """
[[key_sets]]
name = "bots"
name_template = "bot-{sub_uid}"
account = "main"
sub_uids = [2001, 2002, 2003]
permissions = { ContractTrade = ["Order", "Position"] }
ips = ["203.0.113.7"]
policy = { renew_before = "10d" }

[[key_sets.hooks]]
type = "file"
path = "/run/bots/{sub_uid}/bybit.env"

[[key_sets.hooks]]
type = "command"
argv = ["/usr/bin/systemctl", "restart", "bot@{sub_uid}"]

[key_sets.ack]
mode = "hook"
"""
)


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        config.parse(text, source="rot.toml")
    message = info.value.message
    assert len(message.splitlines()) == 1, message
    assert message.startswith("rot.toml:"), message
    return message


def test_a_set_expands_into_ordinary_keys():
    """Each sub UID becomes a key: name and hook texts from the template, the shared spec,
    policy override and ack; the daemon, plan and check see ordinary keys."""
    cfg = config.parse(FLEET, source="rot.toml")
    assert [k.name for k in cfg.keys] == ["bot-2001", "bot-2002", "bot-2003"]
    key = cfg.key("bot-2002")
    assert key.sub_uid == 2002
    assert key.account == "main"
    assert key.key_set == "bots"
    assert key.ips == ["203.0.113.7"]
    assert cfg.policy_for(key).renew_before.days == 10
    assert cfg.vault_path(key) == "rotator/keys/bot-2002"
    file_hook, command = key.hooks
    assert isinstance(file_hook, FileHook)
    assert file_hook.path == Path("/run/bots/2002/bybit.env")
    assert isinstance(command, CommandHook)
    assert command.argv == ["/usr/bin/systemctl", "restart", "bot@2002"]
    assert key.ack is not None
    managed = config.managed_keys(cfg)
    assert [m.spec.sub_uid for m in managed] == [2001, 2002, 2003]
    assert all(m.ack is not None for m in managed)


def test_keys_and_sets_together_and_vault_path_template():
    """[[keys]] come first, then each set in order; a set's vault_path takes the template."""
    text = (
        FLEET
        + """
[[keys]]
name = "solo"
account = "main"
sub_uid = 3000
permissions = { Spot = ["SpotTrade"] }

[[key_sets]]
name = "readers"
name_template = "reader.{sub_uid}"
account = "main"
sub_uids = [4001]
read_only = true
vault_path = "apps/{sub_uid}/bybit"
permissions = { Exchange = ["ExchangeHistory"] }
"""
    )
    cfg = config.parse(text)
    assert [k.name for k in cfg.keys] == ["solo", "bot-2001", "bot-2002", "bot-2003", "reader.4001"]
    reader = cfg.key("reader.4001")
    assert reader.read_only
    assert cfg.vault_path(reader) == "apps/4001/bybit"
    assert cfg.key("solo").key_set is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # the template
        (('"bot-{sub_uid}"', '"bot"'), "key_sets[0].name_template: write {sub_uid}"),
        (('"bot-{sub_uid}"', '"bot-{uid}"'), "key_sets[0].name_template: write {sub_uid}"),
        (('"bot-{sub_uid}"', '"Bot-{sub_uid}"'), "for sub UID 2001 (Bot-2001): use 1-64"),
        (('"bot-{sub_uid}"', '"{sub_uid}-' + "x" * 60 + '"'), "key_sets[0].name_template: for sub"),
        # the list
        (("[2001, 2002, 2003]", "[]"), "key_sets[0].sub_uids"),
        (("[2001, 2002, 2003]", "[2001, 2002, 2001]"), "sub UID 2001 is listed twice"),
        (("[2001, 2002, 2003]", '["2001"]'), "key_sets[0].sub_uids"),
        (("[2001, 2002, 2003]", "[0]"), "key_sets[0].sub_uids"),
        (("[2001, 2002, 2003]", '"most"'), "key_sets[0].sub_uids"),
        (("[2001, 2002, 2003]", '[2001]\ninclude = ["bot*"]'), "include and exclude filter"),
        (("[2001, 2002, 2003]", '"all"\nexclude = ["a b"]'), "key_sets[0].exclude[0]"),
        # the shared spec is checked as for [[keys]]
        (('["Order", "Position"]', '["Order", "Fly"]'), "key_sets[0].permissions"),
        (('["203.0.113.7"]', '["not-an-ip"]'), "key_sets[0].ips"),
        (('account = "main"\nsub_uids', 'account = "nope"\nsub_uids'), "key_sets[0].account"),
        (('mode = "hook"', 'mode = "later"'), "key_sets[0].ack.mode"),
        (('name_template = "bot-', 'name_template = "bot-'), None),  # unchanged: loads
        (('renew_before = "10d"', 'renew_before = "10d", colour = "red"'), "unknown option"),
    ],
)
def test_bad_sets_name_file_field_and_fix(change, expected):
    old, new = change
    assert old in FLEET
    text = FLEET.replace(old, new, 1)
    if expected is None:
        config.parse(text)
        return
    assert expected in _error(text)


def test_renew_before_against_the_key_lifetime():
    text = '[policy]\nkey_lifetime = "20d"\n' + FLEET.replace('"10d"', '"25d"')
    assert "key_sets[0].policy.renew_before: key 'bot-2001' (sub UID 2001): renew_before (25d)" in (
        _error(text)
    )


def test_ack_hook_needs_a_command_hook_in_the_set():
    text = FLEET.replace(
        'type = "command"\nargv = ["/usr/bin/systemctl", "restart", "bot@{sub_uid}"]',
        'type = "file"\npath = "/run/x/{sub_uid}"',
    )
    assert 'ack mode "hook"' in _error(text)


def test_names_and_paths_unique_across_keys_and_sets():
    """A set's key may not take a name or vault path another key has: the message names both."""
    clash = FLEET + '\n[[keys]]\nname = "bot-2002"\naccount = "main"\nsub_uid = 9\n'
    clash += 'permissions = { Spot = ["SpotTrade"] }\n'
    message = _error(clash)
    assert "key_sets[0].name_template" in message
    assert "key 'bot-2002' is used twice (keys[0] has it too)" in message
    same_path = FLEET.replace(
        'policy = { renew_before = "10d" }', 'vault_path = "shared/{sub_uid}"'
    ) + FLEET.split("\n", 3)[3].replace('"bots"', '"more"').replace(
        "bot-{sub_uid}", "b2-{sub_uid}"
    ).replace('policy = { renew_before = "10d" }', 'vault_path = "shared/{sub_uid}"')
    message = _error(same_path)
    assert "key_sets[1].vault_path" in message
    assert "'shared/2001' is used twice (key_sets[0], key 'b2-2001'" not in message
    assert "(key_sets[0], key 'bot-2001' (sub UID 2001) has it too)" in message


def test_vault_path_in_the_rotators_folders_and_hook_time():
    """The [[keys]] checks apply per expanded key: own folders, hook time vs the lease."""
    inside = FLEET.replace(
        'policy = { renew_before = "10d" }', 'vault_path = "rotator/state/{sub_uid}"'
    )
    assert "key_sets[0].vault_path: key 'bot-2001' (sub UID 2001): 'rotator/state/2001'" in _error(
        inside
    )
    slow = FLEET.replace(
        'argv = ["/usr/bin/systemctl", "restart", "bot@{sub_uid}"]',
        'argv = ["/usr/bin/systemctl", "restart", "bot@{sub_uid}"]\ntimeout = "45s"',
    )
    assert "key_sets[0].hooks: key 'bot-2001' (sub UID 2001): the hooks' timeouts" in _error(slow)


def test_ten_managed_keys_per_sub_uid_counts_keys_and_sets():
    """Bybit allows 20 keys per sub UID and each rotation needs room for a new one: 10 managed
    keys per sub UID, [[keys]] and [[key_sets]] counted together, the error says so."""
    sets = "".join(
        f"""
[[key_sets]]
name = "s{n}"
name_template = "s{n}-{{sub_uid}}"
account = "main"
sub_uids = [7001, 7002]
permissions = {{ Spot = ["SpotTrade"] }}
"""
        for n in range(10)
    )
    config.parse(ACCOUNT + sets)
    one_more = ACCOUNT + sets + '\n[[keys]]\nname = "x"\naccount = "main"\nsub_uid = 7002\n'
    one_more += 'permissions = { Spot = ["SpotTrade"] }\n'
    message = _error(one_more)
    assert "sub UID 7002 has 11 managed keys" in message
    assert "manage at most 10 keys per sub UID" in message
    assert "key_sets[" in message


def test_a_thousand_keys_from_a_few_lines():
    """A fleet is a few lines of TOML, however many keys it has."""
    uids = ", ".join(str(10_000 + i) for i in range(1000))
    text = FLEET.replace("[2001, 2002, 2003]", f"[{uids}]")
    cfg = config.parse(text)
    assert len(cfg.keys) == 1000
    assert len({k.name for k in cfg.keys}) == 1000
    assert len(text.splitlines()) < 40


ALL = """
[[accounts]]
name = "main"

[[key_sets]]
name = "fleet"
name_template = "bot-{sub_uid}"
account = "main"
sub_uids = "all"
include = ["trader*", "3001"]
exclude = ["trader-old*"]
permissions = { ContractTrade = ["Order", "Position"] }
"""


def test_all_expands_only_from_what_the_daemon_found():
    """sub_uids = "all": no key at load (the template is still checked); the sub UIDs found on
    Bybit expand like a list, validated as strictly."""
    cfg = config.parse(ALL)
    assert cfg.keys == []
    assert [s.name for s in cfg.discovering_sets] == ["fleet"]
    grown = cfg.with_discovered({"fleet": [2001, 2005]})
    assert [k.name for k in grown.keys] == ["bot-2001", "bot-2005"]
    assert {k.key_set for k in grown.keys} == {"fleet"}
    assert grown.key("bot-2005").sub_uid == 2005
    assert "key_sets[0].name_template" in _error(ALL.replace("bot-{sub_uid}", "Bot-{sub_uid}"))


def test_all_filters_by_uid_and_username_glob():
    """include: a UID or a username glob; exclude wins over include."""
    [fleet] = config.parse(ALL).key_sets
    assert fleet.selects(2001, "trader-1")
    assert fleet.selects(3001, "someone")  # by UID
    assert not fleet.selects(2002, "viewer")
    assert not fleet.selects(2003, "trader-old-2")
    assert fleet.uid_of("bot-2001") == 2001
    assert fleet.uid_of("bot-x") is None
    assert fleet.uid_of("other-2001") is None


def test_discovered_keys_meet_the_same_limits():
    """Found sub UIDs that would break a rule (two sets on one name) are refused like a file."""
    text = ALL + ALL.split("[[key_sets]]")[1].join(["[[key_sets]]", ""]).replace(
        'name = "fleet"', 'name = "twin"'
    )
    cfg = config.parse(text)
    with pytest.raises(config.ConfigError, match="used twice"):
        cfg.with_discovered({"fleet": [2001], "twin": [2001]})
