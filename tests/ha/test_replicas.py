"""Three `rotator run` replicas on one OpenBao and one simulator, real processes, real signals.

Each interruption round catches the actor at one protocol step (a held Vault write or a blocking
hook; see cluster.py), SIGSTOPs it past the lease (or SIGKILLs it), lets the others take over and
move on, then SIGCONTs it (or starts a fresh replica) and lets the request it had in flight reach
Vault late. The history checker (history.py) then proves over the simulator's key log, Vault's
versions, the hand-off log and the notifications: no key deleted while the consumer pointed at it,
every hand-off delivered a live key, one create per rotation, no false failure or notification.

Lease settings are short (3 s / 2 s / 500 ms) and keys live 40 s, so a rotation starts about every
12 s; every wait is bounded, and the whole file stays within the tests/ha budget.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cluster import (
    KEY_NAME,
    MASTER_SECRET,
    SLACK_S,
    TOKEN_ENV,
    Cluster,
    Hold,
    Timing,
    collect,
    pid_of,
    replica_logs,
    socket_owner,
    takeover_once,
    wait_for,
)
from history import check

STEPS = ("create", "verify", "promote", "hand_off", "revoke")


def _rot(data: dict[str, Any]) -> dict[str, Any]:
    return data.get("rotation") or {}


# Which Vault write to hold for each step: (path suffix, predicate on the written data).
HOLDS: dict[str, tuple[str, Callable[[dict[str, Any]], bool]]] = {
    # the new key exists on Bybit; its secret is on the way to Vault (pending)
    "create": (
        f"/state/{KEY_NAME}",
        lambda d: _rot(d).get("step") == "created" and not _rot(d).get("attempts"),
    ),
    # query-api with the new key answered; the result is on the way to Vault
    "verify": (f"/state/{KEY_NAME}", lambda d: _rot(d).get("step") == "verified"),
    # the consumer record write of a promotion
    "promote": (f"/keys/{KEY_NAME}", lambda d: bool(d.get("api_key"))),
    # the completion write after the old key was deleted on Bybit (not the initial rotation)
    "revoke": (
        f"/state/{KEY_NAME}",
        lambda d: d.get("rotation") is None and d.get("previous") is None and d.get("rotations"),
    ),
}


def actor_pid(cluster: Cluster, hold: Hold) -> int:
    """The replica that sent the held write: the owner of its socket (the truth), else its claim,
    else the state's claim, else the lease holder."""
    held = hold.body
    owner = (
        socket_owner(hold.client_port, [r.pid for r in cluster.replicas if r.alive()])
        if hold.client_port
        else None
    )
    candidates = [
        owner,
        pid_of(_rot(held or {}).get("claimed_by")),
        pid_of(_rot(cluster.state() or {}).get("claimed_by")),
        cluster.holder_pid(),
    ]
    for pid in candidates:
        if pid is not None and cluster.by_pid(pid) is not None:
            return pid
    raise AssertionError(
        "cannot tell which replica acts: claimed_by is "
        f"{_rot(cluster.state() or {}).get('claimed_by')!r} and the lease is {cluster.lease()!r} "
        "(the identity must be host:pid:random)"
    )


def catch(
    cluster: Cluster, step: str, sig: signal.Signals, timeout_s: float
) -> tuple[int, Callable[[], None]]:
    """Wait for the actor to reach `step`; return its pid and how to let it go on. At hand-off
    the gate hook itself signals its daemon (see cluster.GATE_HOOK): no race with the hook."""
    if step == "hand_off":
        marker, started = cluster.tmp / "gate.marker", cluster.tmp / "gate.started"
        before = len(started.read_text().splitlines()) if started.exists() else 0
        marker.write_text("stop" if sig == signal.SIGSTOP else "kill")
        lines = wait_for(
            lambda: started.exists() and started.read_text().splitlines()[before:],
            timeout_s,
            "a hand-off to start",
        )
        marker.unlink()  # only this hand-off: the successor's must run through
        return int(lines[0].split()[0]), lambda: None
    suffix, match = HOLDS[step]
    hold = cluster.proxy.arm(suffix, match)
    wait_for(hold.caught.is_set, timeout_s, f"the actor at step {step}")
    return actor_pid(cluster, hold), cluster.proxy.disarm


def interrupt(cluster: Cluster, step: str, sig: signal.Signals) -> None:
    """One round: catch the actor at `step`, signal it, let the others move on, let it go."""
    lease_s = cluster.timing.lease_s
    pid, let_go = catch(cluster, step, sig, timeout_s=30)
    victim = cluster.by_pid(pid)
    assert victim is not None
    done_before = cluster.completed()
    victim.signal(sig)  # at hand-off the gate hook has done so already: a no-op
    # The others take over within the lease and finish this rotation (and, for the hand-off, the
    # next one too: the stale actor then holds a key that has been revoked meanwhile).
    rounds = 2 if step == "hand_off" else 1
    try:
        wait_for(
            lambda: cluster.completed() >= done_before + rounds,
            lease_s + 30 * rounds,
            f"the other replicas to finish {rounds} rotation(s) after the {step} actor stopped",
            every=0.2,
        )
    finally:
        let_go()  # the held request reaches Vault now: a stale actor's late write
        if sig == signal.SIGSTOP:
            victim.signal(signal.SIGCONT)
    if sig == signal.SIGSTOP:
        # The woken actor runs on with stale beliefs until it learns it lost the lease: wait for
        # that (its leader gauge drops to 0), so whatever it does meanwhile is in the history.
        wait_for(
            lambda: victim.metric("rotator_leader", 'account="main"') == 0.0,
            lease_s + 10,
            f"the woken replica (pid {victim.pid}) to know it no longer leads",
            every=0.1,
        )
    else:
        victim.p.wait(5)
        cluster.start_replica()


def settle(cluster: Cluster) -> None:
    """Wait until no rotation is between create and hand-off (so the records are comparable)."""
    wait_for(
        lambda: _rot(cluster.state() or {}).get("step") in (None, "handed_off"),
        30,
        "the rotation in flight to reach a resting step",
        every=0.1,
    )


def assert_history_clean(cluster: Cluster) -> None:
    history = collect(cluster)
    violations = check(history)
    assert not violations, (
        "history checker:\n  "
        + "\n  ".join(violations)
        + f"\n\nhistory:\n{history.describe()}\n\nreplicas:\n{replica_logs(cluster)}"
    )


def assert_no_secret_leaked(cluster: Cluster) -> None:
    """No secret and no full key id in any replica's output, the hand-off log or a notification:
    the master secret, the Vault token, every secret Vault still holds, every key id Bybit made."""
    secrets = {MASTER_SECRET, cluster.bao.root_token}
    path = f"{cluster.prefix}/keys/{KEY_NAME}"
    meta = cluster.vault.secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret")
    for version in meta["data"]["versions"]:
        data = cluster.read_version(f"keys/{KEY_NAME}", int(version)) or {}
        secrets.add(str(data.get("api_secret") or ""))
    key_ids = {e.api_key for e in collect(cluster).events}
    texts = {f"replica{r.n}": r.out.read_text() + r.err.read_text() for r in cluster.replicas}
    handoffs = cluster.tmp / "handoffs.jsonl"
    texts["hand-off log"] = handoffs.read_text() if handoffs.exists() else ""
    texts["notifications"] = json.dumps(cluster.receiver.received)
    leaked = sorted(
        where
        for where, text in texts.items()
        if any(len(secret) >= 8 and secret in text for secret in secrets | key_ids)
    )
    assert not leaked, f"a secret or key id leaked into {leaked}"


def run_rounds(cluster: Cluster, steps: tuple[str, ...], sig: signal.Signals) -> None:
    wait_for(lambda: cluster.completed() >= 1, 40, "the first rotation", every=0.2)
    try:
        for step in steps:
            interrupt(cluster, step, sig)
        settle(cluster)
    except (TimeoutError, AssertionError) as exc:
        history = collect(cluster)
        found = "\n  ".join(check(history)) or "(none)"
        pytest.fail(
            f"{exc}\n\nhistory checker so far:\n  {found}\n\nhistory:\n{history.describe()}"
            f"\n\nreplicas:\n{replica_logs(cluster)}"
        )
    assert_history_clean(cluster)
    assert_no_secret_leaked(cluster)


@pytest.mark.timeout(170)
def test_sigstop_past_the_lease_at_verify_promote_and_hand_off(make_cluster):
    """A paused replica wakes at verify, at promote and at hand-off: it deletes nothing live,
    delivers nothing stale, and nobody reports a failure (the issue's two incidents)."""
    run_rounds(make_cluster(), ("verify", "promote", "hand_off"), signal.SIGSTOP)


@pytest.mark.timeout(150)
def test_sigkill_at_create_and_revoke(make_cluster):
    """A replica killed between create and the Vault write, and between revoke and its record:
    the successor sweeps the orphan, the late request is fenced, no false failure."""
    run_rounds(make_cluster(), ("create", "revoke"), signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("sig", [signal.SIGSTOP, signal.SIGKILL], ids=["sigstop", "sigkill"])
def test_every_step_every_signal(make_cluster, sig):
    """The full matrix: SIGSTOP and SIGKILL at create, verify, promote, hand-off and revoke."""
    run_rounds(make_cluster(), STEPS, sig)


@pytest.mark.timeout(90)
def test_hook_child_dies_with_a_killed_daemon(make_cluster):
    """SIGKILL of the daemon while its hand-off command runs: the command does not outlive it."""
    cluster = make_cluster(replicas=1)
    marker, started = cluster.tmp / "gate.marker", cluster.tmp / "gate.started"
    marker.write_text("kill")  # the initial hand-off's gate SIGKILLs its daemon and lingers
    line = wait_for(lambda: started.exists() and started.read_text().split(), 40, "a hand-off")
    daemon, gate = cluster.replicas[0], int(line[1])
    assert int(line[0]) == daemon.pid, "the hand-off command is not a child of the daemon"
    daemon.p.wait(5)
    try:
        wait_for(lambda: not _alive(gate), 5, "the hook child to die with its daemon")
    finally:
        marker.unlink(missing_ok=True)


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# ---------------------------------------------------------------------------------- takeover
@pytest.mark.timeout(90)
def test_takeover_after_the_leader_is_killed_is_within_lease_plus_retry(make_cluster):
    """Kill the leader twice: another replica holds the lease and acts within lease_duration +
    retry_period (+ slack for two busy cores); the others report 0 on rotator_leader."""
    cluster = make_cluster()
    bound = cluster.timing.lease_s + cluster.timing.retry_s + SLACK_S
    for _ in range(2):
        held, acted = takeover_once(cluster)
        assert held <= bound, f"lease taken over after {held:.2f}s > {bound}s"
        assert acted <= bound + cluster.timing.retry_s, f"successor acted after {acted:.2f}s"
    leader = cluster.holder_pid()

    def gauges() -> dict[int, float | None]:
        return {r.pid: r.metric("rotator_leader", 'account="main"') for r in cluster.live()}

    wait_for(lambda: None not in gauges().values(), 20, "every replica's /metrics")
    assert sorted(gauges().values()) == [0.0, 0.0, 1.0], gauges()
    assert gauges()[leader] == 1.0


# ---------------------------------------------------------------------------------- the CLI
# The daemons rotate nothing on their own (due in 22 days), but a password change (keys die 7 days
# later) makes the key due at once.
QUIET = Timing(lifetime="30d", renew_before="8d")


def cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotator", *args, "--config", str(cluster.tmp / "rotator1.toml")],
        cwd=cluster.tmp,
        env={**cluster.env, TOKEN_ENV: cluster.bao.root_token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def creates(cluster: Cluster) -> int:
    history = collect(cluster)
    return sum(1 for e in history.key_events() if e.kind == "created" and e.note)


def assert_carried_out_by_a_daemon(cluster: Cluster, kind: str) -> None:
    """The CLI asked the actor: the intent in Vault was handled by a running replica, not by the
    CLI process (which would have had to take the lease)."""
    queue = cluster.read("intents/main") or {}
    done = [i for i in queue.get("intents", []) if i.get("kind") == kind]
    assert done, f"no {kind} intent in the queue: {queue}"
    last = done[-1]
    assert last.get("status") == "done", last
    handler = pid_of(last.get("handled_by"))
    assert handler is not None and cluster.by_pid(handler) is not None, last.get("handled_by")


def assert_clean_cli(result: subprocess.CompletedProcess[str], cluster: Cluster) -> None:
    text = result.stdout + result.stderr
    assert result.returncode == 0, text
    assert "Traceback" not in text
    assert "FAIL" not in text.upper()
    assert cluster.bao.root_token not in text


@pytest.mark.timeout(90)
def test_rotate_while_the_daemons_run_is_one_rotation(make_cluster):
    """`rotator rotate bot --force` beside three daemons: one rotation, a clean message, exit 0
    (and without --force, a key that is not due is left alone)."""
    cluster = make_cluster(timing=QUIET)
    wait_for(lambda: cluster.completed() >= 1, 40, "the initial rotation", every=0.2)
    settle(cluster)
    wait_for(lambda: _rot(cluster.state() or {}) == {}, 20, "the initial rotation to finish")
    done, made = cluster.completed(), creates(cluster)
    not_due = cli(cluster, "rotate", KEY_NAME)
    assert_clean_cli(not_due, cluster)
    assert "is not due" in not_due.stdout
    assert (cluster.completed(), creates(cluster)) == (done, made)
    result = cli(cluster, "rotate", KEY_NAME, "--force")
    assert_clean_cli(result, cluster)
    assert_carried_out_by_a_daemon(cluster, "rotate")
    assert KEY_NAME in result.stdout
    wait_for(
        lambda: cluster.completed() >= done + 1,
        30,
        f"the rotation to complete (CLI said: {result.stdout.strip()!r}; state: {cluster.state()})",
    )
    settle(cluster)
    assert cluster.completed() == done + 1
    assert creates(cluster) == made + 1
    settle(cluster)
    assert_history_clean(cluster)


@pytest.mark.timeout(90)
def test_password_changed_rotate_now_while_the_daemons_run_is_one_rotation(make_cluster):
    """`rotator password-changed --rotate-now` beside three daemons: one rotation, exit 0."""
    cluster = make_cluster(timing=QUIET)
    wait_for(lambda: cluster.completed() >= 1, 40, "the initial rotation", every=0.2)
    wait_for(lambda: _rot(cluster.state() or {}) == {}, 20, "the initial rotation to finish")
    done, made = cluster.completed(), creates(cluster)
    result = cli(cluster, "password-changed", "--account", "main", "--rotate-now")
    assert_clean_cli(result, cluster)
    assert_carried_out_by_a_daemon(cluster, "password_changed")
    wait_for(
        lambda: cluster.completed() >= done + 1,
        30,
        f"the rotation to complete (CLI said: {result.stdout.strip()!r}; state: {cluster.state()})",
    )
    settle(cluster)
    assert cluster.completed() == done + 1
    assert creates(cluster) == made + 1
    settle(cluster)
    assert_history_clean(cluster)
