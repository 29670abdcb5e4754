"""Daemon: the wiring of the service (engines per account, scheduler, threads, jobs).

See the package docstring (rotator/daemon/__init__.py) for what runs when, and the modules this
one wires together: the decisions live there, the threads and the shared state here.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from rotator import config as config_mod
from rotator import logs
from rotator.adapters.health import Endpoints, HealthServer
from rotator.adapters.hooks import build_hooks, kill_running_hooks
from rotator.adapters.metrics import Metrics
from rotator.adapters.notify import Notifier, reminder_notice
from rotator.adapters.scheduler import Scheduler
from rotator.adapters.scheduler import now as wall_now
from rotator.adapters.sdnotify import SdNotify
from rotator.adapters.status_page import StatusView
from rotator.adapters.status_page import render as render_status
from rotator.adapters.vault import VaultStore
from rotator.clock import Clock, SystemClock
from rotator.config import Config, tracked_keys
from rotator.daemon import discovery, jobs, leadership, probes
from rotator.daemon import intents as intent_runner
from rotator.daemon import reload as reloading
from rotator.daemon.accounts import AccountRuntime, account_of
from rotator.daemon.due import DuePlan
from rotator.daemon.phase import Phase
from rotator.daemon.probes import READY_FACTOR, Probe
from rotator.daemon.signals import Signals
from rotator.daemon.status import status_line, tracked_row
from rotator.errors import ConfigError, LeaseLost, RotatorError
from rotator.intents import IntentQueue
from rotator.key_report import AccountReport, KeyReport, ReconcileResult
from rotator.lease import AccountLease, new_identity
from rotator.ports import Fence
from rotator.reminders import Reminder, Reminders, TrackedReport
from rotator.rotation import Engine
from rotator.wiring import Runtime, build

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1

STOP_TIMEOUT = timedelta(seconds=90)  # < systemd's TimeoutStopSec=2min in deploy/systemd


class Daemon:
    """The service: engines per account, scheduler, HTTP listener, signals, sd_notify."""

    def __init__(
        self,
        cfg: Config,
        *,
        config_path: Path | None = None,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        sd: SdNotify | None = None,
        telegram_api_base: str | None = None,
        builder: Callable[..., Runtime] = build,
        stop_timeout: timedelta = STOP_TIMEOUT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = cfg
        self.config_path = config_path
        self.clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self.sd = sd or SdNotify()
        self.stop_timeout = stop_timeout
        self._telegram_api_base = telegram_api_base
        self._builder = builder
        self._monotonic = monotonic
        # Who this process is in every lease and claim: unique even where host names repeat.
        self.identity = new_identity(cfg.leader_election.identity)
        self.leases: dict[str, AccountLease] = {}
        self._lease_store: VaultStore | None = None
        self._elected = False  # one election round done: this replica knows what it holds
        self._found: dict[str, list[int]] = {}  # "all" key set -> the sub UIDs it manages
        self.missing_subs: dict[str, list[int]] = {}  # "all" key set -> listed no more
        self.signals = Signals()
        self._inflight = 0
        self._inflight_cv = threading.Condition()
        self.phase = Phase.STARTING
        self._heartbeat = time.monotonic()
        self.vault = Probe()
        self.bybit = Probe()
        self.reports: dict[str, KeyReport] = {}
        self.account_reports: dict[str, AccountReport] = {}
        self.tracked_reports: dict[str, TrackedReport] = {}
        self.last_ok: dict[str, datetime] = {}  # account -> last reconcile without global failure
        self.due_plan = DuePlan()
        self.scheduler: Scheduler | None = None
        self.http: HealthServer | None = None
        self._status = ""
        self.runtime, self.accounts = self._build(cfg)
        self.leases = {name: a.lease for name, a in self.accounts.items()}
        self.notifier = self._notifier(cfg)
        self.metrics.vault_up.set(0)
        self.metrics.bybit_up.set(0)
        self._declare_series(cfg)

    @property
    def due(self) -> dict[str, datetime]:
        """Each key's next due moment (clock time); see rotator/daemon/due.py."""
        return self.due_plan.moments

    @property
    def reconcile_interval(self) -> timedelta:
        return self.config.policy.reconcile_interval

    # ================================================================== wiring
    def _build(self, cfg: Config) -> tuple[Runtime, dict[str, AccountRuntime]]:
        hooks = build_hooks(cfg, on_failure=self._handoff_failed)
        runtime = self._builder(
            cfg,
            clock=self.clock,
            handoff=hooks,
            on_vault_error=self.metrics.observe_vault_error,
            on_bybit_request=self.metrics.observe_request,
        )
        base = runtime.engine
        accounts: dict[str, AccountRuntime] = {}
        for account in base.accounts:
            keys = [k for k in base.keys if k.account == account.name]
            acfg = cfg.account(account.name)
            # A lease survives a reload: the account's work goes on under the same token.
            lease = self.leases.get(account.name) or AccountLease(
                store=self._leases_store(cfg),
                path=cfg.lease_path(acfg),
                identity=self.identity,
                settings=config_mod.lease_settings(cfg),
                clock=self.clock,
                monotonic=self._monotonic,
            )
            engine = Engine(
                exchange=base.exchange,
                store=base.store,
                clock=self.clock,
                accounts=[account],
                keys=keys,
                handoff=hooks,
                owner=self.identity,
                should_stop=self.signals.stop.is_set,
                authorities={account.name: lease},
            )
            accounts[account.name] = AccountRuntime(
                name=account.name,
                engine=engine,
                keys=tuple(k.name for k in keys),
                lease=lease,
                intents=IntentQueue(base.store, cfg.intent_path(acfg)),
                snapshot_path=cfg.snapshot_path(acfg),
            )
        return runtime, accounts

    def _declare_series(self, cfg: Config) -> None:
        """Every key's and account's series at 0 from the start (the first failure alerts)."""
        self.metrics.declare(
            ((k.name, k.account, k.sub_uid) for k in cfg.keys), (a.name for a in cfg.accounts)
        )

    def _leases_store(self, cfg: Config) -> VaultStore:
        """A Vault client of the leases' own: renewals never wait behind the engine's calls."""
        if self._lease_store is None:
            self._lease_store = VaultStore.from_config(
                cfg.vault, clock=self.clock, on_error=self.metrics.observe_vault_error
            )
        return self._lease_store

    def _notifier(self, cfg: Config) -> Notifier:
        def outcome(channel: str, kind: str, result: str) -> None:
            self.metrics.notifications.labels(channel, kind, result).inc()

        notifier = Notifier.from_config(
            cfg.notify,
            clock=self.clock,
            on_outcome=outcome,
            telegram_api_base=self._telegram_api_base,
        )
        notifier.tracked_masters = frozenset(t.account for t in cfg.tracked if t.kind == "master")
        return notifier

    def _handoff_failed(self, key_name: str, hook: str) -> None:
        with contextlib.suppress(KeyError):
            key = self.config.key(key_name)
            self.metrics.observe_handoff_failure(key.name, key.account, key.sub_uid, hook)

    # ================================================================== the work
    def reconcile_account(
        self, name: str, only: tuple[str, ...] | None = None
    ) -> ReconcileResult | None:
        """One account's reconcile (all its keys, or `only` those): what every job calls."""
        if self.signals.stop.is_set():
            return None
        if only is None:
            self.discover(name)  # before the lock: a grown key set rebuilds the engines
        with self._running():
            while True:
                account = self.accounts.get(name)
                if account is None:  # left the config on a reload
                    return None
                with account.lock:
                    if self.accounts.get(name) is not account:
                        continue  # swapped by a reload while we waited: use the new engine
                    if self.signals.stop.is_set():
                        return None
                    wanted = None if only is None else [k for k in only if k in account.keys]
                    if wanted is not None and not wanted:
                        return None
                    if not account.lease.holds():
                        self._follow(account)
                        return None
                    return self._lead(account, wanted, partial=only is not None)

    def _lead(
        self, account: AccountRuntime, wanted: list[str] | None, *, partial: bool
    ) -> ReconcileResult | None:
        """The holder's run (caller holds the account's lock): reconcile, then absorb it."""
        with structlog.contextvars.bound_contextvars(account=account.name):
            account.busy_since = self._monotonic()
            try:
                result = account.engine.reconcile(only=wanted)
            except Exception as exc:
                # The engine isolates keys; this is a bug or an adapter escaping.
                log.exception("reconcile.crashed", error=type(exc).__name__)
                raise
            finally:
                account.busy_since = None
        if not account.lease.holds():
            # Fenced out during the run: the new holder's view is the truth, and only the
            # holder notifies and counts.
            log.info("reconcile.discarded", reason="the lease moved during the run")
            return None
        self._absorb(account.name, result, partial=partial)
        if not partial:
            leadership.write_snapshot(self.runtime.store, account, result, holder=self.identity)
        return result

    def tick(self) -> list[ReconcileResult]:
        """One election round, then one periodic reconcile of every account, one after the
        other (tests; the running service has a lease thread and jobs for this)."""
        self.elect(spread=False)
        results = []
        for name in list(self.accounts):
            result = self.reconcile_account(name)
            if result is not None:
                results.append(result)
        self.check_reminders()
        return results

    def run_due(self, now: datetime) -> list[ReconcileResult]:
        """Run what the date jobs would run by `now`: every key whose due moment has come."""
        self.elect(spread=False)
        by_account: dict[str, list[str]] = {}
        for key in self.due_plan.due_by(sorted(self.due_plan.moments), now):
            account = account_of(self.accounts.values(), key)
            if account is not None:
                by_account.setdefault(account, []).append(key)
        results = []
        for account, keys in by_account.items():
            result = self.reconcile_account(account, tuple(keys))
            if result is not None:
                results.append(result)
        return results

    def _absorb(self, account: str, result: ReconcileResult, *, partial: bool) -> None:
        """Metrics, notifications, plans and status from one result."""
        now = self.clock.now()
        self.metrics.observe(result)
        for report in result.keys:
            self.reports[report.name] = report
            _log_report(report)
        for areport in result.accounts:
            self.account_reports[areport.name] = areport
        if result.ok:
            self.last_ok[account] = result.finished_at
            self._set_last_reconcile_success()
        self.notifier.observe(result, now)
        for name in self.due_plan.plan(result.keys, now, self.reconcile_interval):
            self._schedule_due(name, now)
        log.info(
            "reconcile.completed",
            scope="due" if partial else "all",
            keys=len(result.keys),
            ok=result.ok,
            duration_s=round((result.finished_at - result.started_at).total_seconds(), 3),
            next_due=result.next_due.isoformat() if result.next_due else None,
        )
        self._update_status()

    def _set_last_reconcile_success(self) -> None:
        if not self.accounts:
            self.metrics.last_reconcile_success.set(self.clock.now().timestamp())
            return
        if all(name in self.last_ok for name in self.accounts):
            oldest = min(self.last_ok[name] for name in self.accounts)
            self.metrics.last_reconcile_success.set(oldest.timestamp())

    # ================================================================== reminders
    def check_reminders(self) -> list[TrackedReport]:
        """Read every [[tracked]] key's expiry and send the reminders that are due (the
        `reminders` job, after each tick in tests). See rotator/reminders.py."""
        if not self.config.tracked or self.signals.stop.is_set():
            return []
        with self._running():
            runtime = self.runtime
            reminders = Reminders(
                keys=tracked_keys(runtime.config), store=runtime.store, exchange=runtime.exchange
            )
            reports = reminders.run(
                self.clock.now(),
                dict(self.account_reports),
                send=self.send_reminder,
                fence_for=self.reminder_fence,
            )
        self.tracked_reports = {r.name: r for r in reports}
        return reports

    def reminder_fence(self, account: str) -> Fence:
        """Who may send an account's reminders: the holder of its lease, proven against Vault
        (LeaseLost otherwise: the holder sends). A tracked key of an account that is no
        [[accounts]] entry has no lease: the replica that notifies sends it."""
        managed = self.accounts.get(account)
        if managed is not None:
            return managed.lease.fence_strict

        def notifying_replica() -> None:
            if not self._may_notify():
                raise LeaseLost("this replica holds no lease: the one that does sends")

        return notifying_replica

    def send_reminder(self, reminder: Reminder) -> None:
        """The one way a reminder goes out (after its record in Vault claimed it)."""
        self.notifier.notify(reminder_notice(reminder))

    # ================================================================== leadership
    def elect(self, *, spread: bool = True) -> list[str]:
        """One election round for every account (rotator/daemon/leadership.py); returns the
        accounts newly acquired."""
        round_ = leadership.elect(
            self.accounts.values(),
            spread=spread,
            may_acquire=not self.signals.stop.is_set(),
            retry_s=self.config.leader_election.retry_period.total_seconds(),
            now=self.clock.now(),
            mono=self._monotonic(),
        )
        for name, leading in round_.leading.items():
            self.metrics.leader.labels(name).set(1 if leading else 0)
        self._elected = True
        return list(round_.newly)

    def _lease_loop(self) -> None:
        """The election loop's thread; a lease newly won starts its account's reconcile."""
        leadership.lease_loop(
            self.elect,
            acquired=self._took_over,
            stop=self.signals.stop,
            period_s=self.config.leader_election.retry_period.total_seconds(),
        )

    def _took_over(self, name: str) -> None:
        log.info("leader.acquired", account=name, identity=self.identity)
        if self.scheduler is not None:
            self.scheduler.at(
                f"takeover:{name}",
                self._reconcile_job(name),
                wall_now(),
                executor=self._executor(name),
            )

    def _follow(self, account: AccountRuntime) -> None:
        """A follower's view: the holder's last snapshot, for metrics, status and /status."""
        snap = leadership.read_snapshot(self.runtime.store, account)
        if snap is None:
            return
        self.metrics.observe_state(leadership.as_result(snap))
        for report in snap.keys:
            self.reports[report.name] = report
        self.account_reports[account.name] = snap.account
        if snap.account.error is None:
            # The holder's last good reconcile is the account's: a follower's
            # rotator_last_reconcile_success_timestamp_seconds says the same as the holder's.
            self.last_ok[account.name] = snap.written_at
            self._set_last_reconcile_success()
        self._update_status()

    def _may_notify(self) -> bool:
        return leadership.may_notify(self.accounts.values(), self.identity)

    # ================================================================== intents
    def poll_intents(self) -> int:
        """What operators asked for (`rotator rotate`, ...): each held account with pending
        intents gets a run on its own executor. Returns how many accounts have some."""
        return intent_runner.poll(list(self.accounts.values()), self._start_intents)

    def _start_intents(self, name: str) -> None:
        if self.scheduler is None:
            self.run_intents(name)
        else:
            self.scheduler.at(
                f"intents:{name}",
                self._intents_job(name),
                wall_now(),
                executor=self._executor(name),
            )

    def run_intents(self, name: str) -> None:
        """Carry out an account's pending intents, one by one, under its lock and lease."""
        with self._running():
            account = self.accounts.get(name)
            if account is None:
                return
            with account.lock, structlog.contextvars.bound_contextvars(account=name):
                intent_runner.run(
                    account,
                    by=self.identity,
                    stopped=self.signals.stop.is_set,
                    now=self.clock.now,
                    monotonic=self._monotonic,
                    reports=lambda reports: self._absorb_intent(name, reports),
                )

    def _absorb_intent(self, name: str, reports: tuple[KeyReport, ...]) -> None:
        now = self.clock.now()
        self._absorb(
            name,
            ReconcileResult(started_at=now, finished_at=now, keys=reports, accounts=()),
            partial=True,
        )

    # ================================================================== key sets from Bybit
    def discover(self, name: str) -> bool:
        """Join the sub-accounts Bybit lists to the account's `sub_uids = "all"` sets (the lease
        holder, at each full reconcile; rotator/daemon/discovery.py). Returns whether the
        managed keys changed."""
        account = self.accounts.get(name)
        if account is None or not account.lease.holds():
            return False
        if not any(s.account == name for s in self.config.discovering_sets):
            return False
        found = discovery.discover(
            self.config,
            account,
            exchange=self.runtime.exchange,
            store=self.runtime.store,
            before=self._found,
        )
        if found is None:
            return False
        for membership in found.memberships:
            self._found[membership.key_set] = list(membership.sub_uids)
            self.missing_subs[membership.key_set] = list(membership.missing)
        if not found.changed:
            return False
        try:
            self._apply(self.config.with_discovered(self._found))
        except (ConfigError, RotatorError) as exc:
            log.error("key_set.discovery_failed", account=name, error=exc.message)
            return False
        return True

    # ================================================================== probes and health
    def probe(self) -> bool:
        """Ping Vault (reachable, unsealed, authenticated) and Bybit. True if both answered."""
        now = self.clock.now()
        results = []
        for name, probe, call, gauge in (
            ("vault", self.vault, self.runtime.store.ping, self.metrics.vault_up),
            ("bybit", self.bybit, self._probe_bybit, self.metrics.bybit_up),
        ):
            ok = probes.ping(name, probe, call, now)
            gauge.set(1 if ok else 0)
            if not ok and self._may_notify():
                self.notifier.unreachable(name, probe.error or "unknown error")
            results.append(ok)
        return all(results)

    def _probe_bybit(self) -> None:
        """Bybit answers market/time; the offset to its clock is measured and exported."""
        self.metrics.observe_clock_offset(self.runtime.exchange.resync_clock())

    def healthy(self) -> tuple[bool, dict[str, Any]]:
        """/healthz (rotator/daemon/probes.py `health`)."""
        return probes.health(
            phase=self.phase,
            heartbeat_age_s=time.monotonic() - self._heartbeat,
            scheduler_running=self.scheduler is not None and self.scheduler.running,
        )

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """/readyz (rotator/daemon/probes.py `readiness`): Vault reachable and authenticated;
        every account this replica holds was reconciled recently and none is stuck."""
        return probes.readiness(
            phase=self.phase,
            identity=self.identity,
            vault=self.vault,
            bybit=self.bybit,
            elected=self._elected,
            accounts=self.accounts,
            last_ok=self.last_ok,
            missing_subs=self.missing_subs,
            now=self.clock.now(),
            mono=self._monotonic(),
            limit=self.reconcile_interval * READY_FACTOR,
        )

    def status_page(self) -> str:
        """/status: the last reports as a read-only HTML page; asks neither Vault nor Bybit."""
        return render_status(
            StatusView(
                now=self.clock.now(),
                phase=self.phase,
                vault_ok=self.vault.ok,
                bybit_ok=self.bybit.ok,
                keys=tuple(dict(self.reports).values()),
                accounts=tuple(dict(self.account_reports).values()),
                last_reconcile=dict(self.last_ok),
                tracked=tuple(tracked_row(r) for r in dict(self.tracked_reports).values()),
            )
        )

    def _beat(self) -> None:
        self._heartbeat = time.monotonic()
        mono = self._monotonic()
        for name, account in list(self.accounts.items()):
            since = account.busy_since
            self.metrics.account_run_seconds.labels(name).set(
                0.0 if since is None else max(mono - since, 0.0)
            )

    def _update_status(self) -> None:
        status = status_line(self.reports.values(), self.due_plan.next())
        if status != self._status:
            self._status = status
            self.sd.status(status)

    # ================================================================== jobs
    def _executor(self, account: str) -> str:
        """One thread pool per account: one account's hang never delays another's step."""
        assert self.scheduler is not None  # noqa: S101 (only called while serving)
        return self.scheduler.ensure_executor(jobs.account_executor(account))

    def _schedule_due(self, account: str, now: datetime) -> None:
        """The account's one date job, at the earliest due moment of its keys (or none)."""
        if self.scheduler is None:
            return
        known = self.accounts.get(account)
        first = self.due_plan.earliest(known.keys if known else ())
        if first is None:
            self.scheduler.remove(f"due:{account}")
            return
        self.scheduler.at(
            f"due:{account}",
            self._due_job(account),
            wall_now() + (first - now),
            executor=self._executor(account),
        )

    def _run_due_account(self, account: str) -> None:
        """What `due:<account>` runs: every key of the account due by now, in one reconcile."""
        now = self.clock.now()
        known = self.accounts.get(account)
        keys = self.due_plan.due_by(known.keys if known else (), now)
        if keys:
            self._job(account, keys)
        else:  # fired early (clock adjustments): plan again
            self._schedule_due(account, now)

    def _due_job(self, account: str) -> Callable[[], None]:
        return lambda: self._run_due_account(account)

    def _reconcile_job(self, account: str) -> Callable[[], None]:
        return lambda: self._job(account)

    def _intents_job(self, name: str) -> Callable[[], None]:
        return lambda: self.run_intents(name)

    def _job(self, account: str, only: tuple[str, ...] | None = None) -> None:
        # Errors are caught here so the job's own logs carry context; the scheduler's listener
        # still counts anything that escapes.
        try:
            self.reconcile_account(account, only)
        except Exception:
            self.metrics.scheduler_job_errors.labels("due" if only else "reconcile", "error").inc()
            raise

    def _job_event(self, kind: str, event: str) -> None:
        if not (kind in ("due", "reconcile") and event == "error"):  # _job counted those
            self.metrics.scheduler_job_errors.labels(kind, event).inc()

    def _schedule_all(self, *, immediately: bool) -> None:
        """The periodic jobs (rotator/daemon/jobs.py), after a start or a reload."""
        sched = self.scheduler
        assert sched is not None  # noqa: S101 (called only once the scheduler exists)
        tracked = bool(self.config.tracked)
        for job_id in jobs.left_over(sched.job_ids(), self.accounts, tracked=tracked):
            sched.remove(job_id)
        shared: dict[str, Callable[[], object]] = {
            "probe": self.probe,
            "reminders": self.check_reminders,
            "intents": self.poll_intents,
            "heartbeat": self._beat,
        }
        for job in jobs.periodic(
            self.accounts,
            interval=self.reconcile_interval,
            retry_period=self.config.leader_election.retry_period,
            tracked=tracked,
            immediately=immediately,
        ):
            if job.account is not None:
                call: Callable[[], object] = self._reconcile_job(job.account)
                executor = self._executor(job.account)
            else:
                call, executor = shared[job.kind], job.executor or "default"
            sched.every(
                job.job_id,
                call,
                job.interval,
                jitter=job.jitter,
                first_run=None if job.first_run_in is None else wall_now() + job.first_run_in,
                executor=executor,
            )

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        with self._inflight_cv:
            self._inflight += 1
        try:
            yield
        finally:
            with self._inflight_cv:
                self._inflight -= 1
                self._inflight_cv.notify_all()

    # ================================================================== reload
    def reload(self) -> bool:
        """Re-read the config file (SIGHUP; rotator/daemon/reload.py). False, and the old config
        keeps running, if the new one is invalid."""
        if self.config_path is None:
            log.warning("config.reload_skipped", reason="no config file to re-read")
            return False
        return reloading.reload(
            self.config_path,
            self._found,
            apply=self._apply,
            outcome=lambda outcome: self.metrics.config_reloads.labels(outcome).inc(),
        )

    def _apply(self, cfg: Config) -> list[str]:
        """Run `cfg` from now on (a reload, or key sets that grew): engines rebuilt, in-flight
        runs finished first, series of keys that left dropped. Returns the keys removed."""
        runtime, accounts = self._build(cfg)
        old_cfg, old_runtime, old_accounts = self.config, self.runtime, self.accounts
        for account in old_accounts.values():  # in-flight runs finish first
            account.lock.acquire()
        try:
            self.config, self.runtime, self.accounts = cfg, runtime, accounts
            old_leases, self.leases = self.leases, {n: a.lease for n, a in accounts.items()}
            old_notifier, self.notifier = self.notifier, self._notifier(cfg)
        finally:
            for account in old_accounts.values():
                account.lock.release()
        old_notifier.close(timeout_s=1.0)
        for name, lease in old_leases.items():
            if name not in self.leases:  # the account left the config: let others have it
                lease.release()
        removed = self._forget_removed(old_cfg, cfg)
        self._declare_series(cfg)
        old_runtime.close()
        if cfg.logging != old_cfg.logging:
            logs.configure(cfg.logging.level, cfg.logging.format)
        if cfg.metrics != old_cfg.metrics:
            log.warning("config.metrics_changed", action="restart the daemon to move the listener")
        if self.scheduler is not None:
            self._schedule_all(immediately=True)
        if removed:
            log.info("config.keys_removed", keys=removed)
        return removed

    def _forget_removed(self, old: Config, new: Config) -> list[str]:
        """Drop the metric series, plans and reports of keys whose labels no longer exist."""
        gone = reloading.departed(old, new)
        for labels in gone.series:
            self.metrics.remove_key(*labels)
        for key in gone.keys:
            self.reports.pop(key, None)
            self.due_plan.forget(key)
        for account in gone.accounts:
            self.last_ok.pop(account, None)
            self.account_reports.pop(account, None)
            self.metrics.remove_account(account)
        return list(gone.keys)

    # ================================================================== lifecycle
    def request_stop(self) -> None:
        """Stop as SIGTERM does (the demo's --duration, tests)."""
        self.signals.request_stop()

    @property
    def stopping(self) -> bool:
        return self.signals.stop.is_set()

    def install_signal_handlers(self) -> None:
        self.signals.install()

    def start_http(self) -> bool:
        if not self.config.metrics.enabled:
            return True
        self.http = HealthServer(
            self.config.metrics.listen,
            Endpoints(
                registry=self.metrics.registry,
                exposition=self.metrics.exposition,
                healthz=self.healthy,
                readyz=self.ready,
                status=self.status_page,
            ),
        )
        try:
            self.http.start()
        except OSError as exc:
            log.error(
                "http.bind_failed",
                listen=self.config.metrics.listen,
                error=exc.strerror or str(exc),
                action="free the port or change [metrics] listen",
            )
            self.http = None
            return False
        return True

    def wait_for_dependencies(self) -> bool:
        """Probe Vault and Bybit until both answer, backing off; False if stopped meanwhile."""
        return probes.wait_for_dependencies(
            probe=self.probe,
            unreachable=lambda: [
                (name, probe.error)
                for name, probe in (("Vault", self.vault), ("Bybit", self.bybit))
                if not probe.ok
            ],
            sleep=lambda s: self.signals.sleep(s, tick=self._beat, reload=self.reload),
            stopped=self.signals.stop.is_set,
            beat=self._beat,
            sd=self.sd,
        )

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT. Returns the exit code."""
        self.install_signal_handlers()
        if not self.start_http():
            return EXIT_FAILURE
        log.info(
            "daemon.starting",
            accounts=len(self.config.accounts),
            keys=len(self.config.keys),
            metrics=self.http.url if self.http else None,
        )
        self.sd.status("starting: probing Vault and Bybit")
        threading.Thread(
            target=probes.watchdog_loop,
            args=(self.sd, self.healthy, self.signals.stop),
            name="rotator-watchdog",
            daemon=True,
        ).start()
        try:
            if self.wait_for_dependencies():
                self._serve()
        finally:
            code = self._shutdown()
        return code

    def _serve(self) -> None:
        workers = 4  # probes and the intent poll; each account has a pool of its own
        self.scheduler = Scheduler(workers=workers, on_job_event=self._job_event)
        self.elect()  # the first round before the first reconcile: it knows what it holds
        self._schedule_all(immediately=True)
        self.scheduler.start()
        threading.Thread(target=self._lease_loop, name="rotator-lease", daemon=True).start()
        self.phase = Phase.RUNNING
        self._beat()
        self.sd.ready(status="running: first reconcile under way")
        log.info(
            "daemon.ready", workers=workers, interval_s=self.reconcile_interval.total_seconds()
        )
        while not self.signals.stop.is_set():
            self.signals.wait(1.0)
            if self.signals.take_hup():
                self.reload()

    def _shutdown(self) -> int:
        self.phase = Phase.STOPPING
        self.signals.stop.set()
        self.sd.stopping(status="stopping: finishing the step in flight")
        log.info("daemon.stopping", in_flight=self._inflight)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + self.stop_timeout.total_seconds()
        with self._inflight_cv:
            while self._inflight > 0 and time.monotonic() < deadline:
                self._inflight_cv.wait(min(1.0, max(deadline - time.monotonic(), 0.01)))
            left = self._inflight
        killed = kill_running_hooks()  # a hook still running would outlive the daemon
        if killed:
            log.warning("daemon.hooks_killed", groups=killed, reason="stop timeout")
        if not left:
            for lease in self.leases.values():  # a clean stop hands over at once
                lease.release()
        self.notifier.flush(timeout_s=5.0)
        self.notifier.close(timeout_s=1.0)
        if self.http is not None:
            self.http.close()
        if left:
            log.error(
                "daemon.stop_timed_out",
                in_flight=left,
                timeout_s=self.stop_timeout.total_seconds(),
                action="exiting anyway; the next start resumes from the records in Vault",
            )
            os._exit(EXIT_FAILURE)  # worker threads still hold steps: do not wait for them
        self.runtime.close()
        log.info("daemon.stopped")
        return EXIT_OK


def _log_report(report: KeyReport) -> None:
    """The canonical line of a key whose run did something (or failed)."""
    if report.failure is not None or report.completed or report.step_attempted:
        log.info(
            "key.reconciled",
            key=report.name,
            state=report.state,
            next_action=report.next_action,
            next_at=report.next_at.isoformat() if report.next_at else None,
            completed=report.completed,
            failure=report.failure,
        )
