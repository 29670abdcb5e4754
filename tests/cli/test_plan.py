"""`rotator plan`: a dry run that reads only (Bybit GETs, no new Vault version), now or at TIME."""

from __future__ import annotations

from cli_env import Cli


def rows(stdout: str) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("KEY\t"))
    out = {}
    for line in lines[start + 1 :]:
        if "\t" not in line:
            break
        cells = line.split("\t")
        out[cells[0]] = cells
    return out


def test_plan_has_no_side_effect(cli: Cli):
    """plan and plan --at read Bybit with GETs only and leave every Vault record's version alone,
    including the records of a key that does not exist yet."""
    assert cli.run("rotate", "alpha").exit_code == 0
    before = cli.versions()
    bybit_keys = {k.api_key for uid in (2001, 2002) for k in cli.sim.keys_of(uid)}
    cli.sim.clear_request_log()
    for args in (("plan",), ("plan", "--at", "+85d"), ("plan", "--at", "+200d")):
        assert cli.run(*args).exit_code == 0
    methods = {(e.method, e.path) for e in cli.sim.request_log}
    assert methods, "plan must have read Bybit"
    assert {m for m, _ in methods} == {"GET"}, methods
    assert cli.versions() == before
    assert not any(path.endswith("/beta") for path in before)
    assert {k.api_key for uid in (2001, 2002) for k in cli.sim.keys_of(uid)} == bybit_keys


def test_plan_now(cli: Cli):
    """Now: the missing key would be created; the healthy one waits for its renewal, with why."""
    assert cli.run("rotate", "alpha").exit_code == 0
    result = cli.run("plan")
    assert result.exit_code == 0, result.output
    table = rows(result.stdout)
    assert table["beta"][1] == "NOW create the first key"
    assert table["alpha"][1] == "rotate"
    assert table["alpha"][3].startswith("in 7")
    assert "renewal starts" in table["alpha"][4]
    assert "would act on: beta" in result.stdout
    assert "nothing was changed" in result.stdout


def test_plan_at_later_times(cli: Cli):
    """At +85d alpha is due (renewal 14d before the 90-day expiry); at +89d escalated; at +100d
    expired. Each says why."""
    assert cli.run("rotate", "alpha").exit_code == 0
    assert cli.run("rotate", "beta").exit_code == 0
    soon = rows(cli.run("plan", "--at", "+30d").stdout)
    assert soon["alpha"][1] == "rotate"
    assert soon["alpha"][3].startswith("in 4")
    due = cli.run("plan", "--at", "+85d")
    assert rows(due.stdout)["alpha"][1] == "NOW rotate"
    assert "due since" in rows(due.stdout)["alpha"][4]
    assert "would act on: alpha, beta" in due.stdout
    escalated = rows(cli.run("plan", "--at", "+89d").stdout)
    assert escalated["alpha"][4].startswith("ESCALATED: past the latest safe moment")
    expired = rows(cli.run("plan", "--at", "+100d").stdout)
    assert expired["alpha"][4].startswith("EXPIRED at")


def test_plan_at_iso_time(cli: Cli):
    """An ISO 8601 time works too."""
    result = cli.run("plan", "--at", "2999-01-01T00:00:00Z")
    assert result.exit_code == 0
    assert result.stdout.startswith("plan at 2999-01-01 00:00:00Z")


def test_plan_bad_times_exit_2(cli: Cli):
    """Garbage and past times are usage errors."""
    assert cli.run("plan", "--at", "tomorrow-ish").exit_code == 2
    past = cli.run("plan", "--at", "-1d")
    assert past.exit_code == 2
    assert "looks forward" in past.stderr


def test_plan_vault_down_exit_1(cli: Cli, closed_port_url: str):
    """Vault unreachable: one line, exit 1."""
    result = cli.run("plan", config=cli.config(vault_address=closed_port_url))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: Vault at")
    assert result.stderr.count("\n") == 1


FLEET = """
[[key_sets]]
name = "bots"
name_template = "bot-{sub_uid}"
account = "main"
sub_uids = [2001, 2002]
permissions = { ContractTrade = ["Order", "Position"] }
"""


def test_plan_and_check_show_a_key_sets_keys(cli: Cli):
    """A [[key_sets]] table is planned key by key, and plan and check name the set, what it
    expanded to and the limit of 10 managed keys per sub UID; rotate creates a set's key."""
    config = cli.config(keys=FLEET)
    plan = cli.run("plan", config=config)
    assert plan.exit_code == 0, plan.output
    table = rows(plan.stdout)
    assert table["bot-2001"][1] == "NOW create the first key"
    assert table["bot-2002"][1] == "NOW create the first key"
    assert "key set bots: 2 key(s) of account main (bot-2001, bot-2002)" in plan.stdout
    assert "at most 10 managed keys per sub UID" in plan.stdout
    check = cli.run("check", "--offline", config=config)
    assert "key set bots: 2 key(s)" in check.stdout, check.output
    assert "key bot-2002: account main, sub UID 2002" in check.stdout
    assert cli.run("rotate", "bot-2002", config=config).exit_code == 0
    assert cli.consumer("bot-2002")["api_key"] in {k.api_key for k in cli.sim.keys_of(2002)}


def test_plan_expands_an_all_key_set_from_bybit(cli: Cli):
    """sub_uids = "all": plan asks Bybit (read only) which sub-accounts the set would join."""
    keys = """
[[key_sets]]
name = "fleet"
name_template = "fleet-{sub_uid}"
account = "main"
sub_uids = "all"
exclude = ["2002"]
permissions = { Spot = ["SpotTrade"] }
"""
    config = cli.config(keys=keys)
    before = cli.versions()
    result = cli.run("plan", config=config)
    assert result.exit_code == 0, result.output
    assert "fleet-2001" in result.stdout
    assert "fleet-2002" not in result.stdout
    assert cli.versions() == before  # nothing written
