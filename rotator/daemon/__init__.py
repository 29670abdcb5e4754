"""`rotator run`: the long-running service around the engine.

What runs when (APScheduler, rotator/adapters/scheduler.py):
- `reconcile:<account>` every `policy.reconcile_interval` (plus jitter), one job per master
  account, so accounts rotate in parallel on the thread pool while one account's runs never
  overlap (a per-account lock; the engine is thread-safe per account only);
- `due:<account>` at the earliest next due moment of the account's keys (`KeyReport.next_at`),
  re-planned after every reconcile: a rotation step happens when it is due, not up to an interval
  later; when it fires, every key of the account due by then runs in one reconcile (one job per
  account, not per key: at 10,000 keys the scheduler holds a handful of jobs, and the account's
  own work - master key, account state - is done once for all due keys);
- `probe` pings Vault and Bybit (rotator_vault_up / rotator_bybit_up, /readyz);
- `heartbeat` proves the scheduler works; the systemd watchdog is fed only while it does.

Start-up waits for Vault and Bybit with backoff (logging why, /readyz and metrics saying so,
EXTEND_TIMEOUT_USEC keeping systemd patient) instead of crash-looping, then sends READY=1.
SIGTERM/SIGINT: no new step starts (Engine.should_stop), the step in flight finishes, exit 0
within STOP_TIMEOUT. SIGHUP: re-read the config; an invalid one is rejected and the old one keeps
running; a valid one rebuilds the engines and drops the metric series of keys that left it.

Tests drive it without a scheduler: `tick()` is one periodic reconcile of every account,
`run_due(now)` what the date jobs would run; the clock is injected.

The modules, one concept each (`Daemon` in `service.py` is the wiring that owns the threads):

    service.py     Daemon: builds the engines, owns the scheduler, the threads and the jobs
    accounts.py    AccountRuntime: one master account's engine, lease, lock and intent queue
    jobs.py        what runs when: the periodic jobs as data, the account's own thread pool
    due.py         DuePlan: when each key is next due, the back-off of a key that did not move
    leadership.py  elections (spread, stuck accounts), the lease loop, followers' snapshots
    intents.py     the runner side of `rotator rotate` & co: polling and carrying out intents
    discovery.py   `sub_uids = "all"` key sets: joining the sub-accounts Bybit lists
    probes.py      Vault/Bybit probes, the start-up wait, /healthz and /readyz, the watchdog
    phase.py       Phase: starting | running | stopping
    signals.py     SIGTERM/SIGINT/SIGHUP, interruptible sleeps
    reload.py      SIGHUP's new config and what left it
    status.py      the sd_notify STATUS= line and the /status rows of tracked keys
"""

from __future__ import annotations

from rotator.daemon.service import EXIT_FAILURE, EXIT_OK, STOP_TIMEOUT, Daemon

__all__ = ["EXIT_FAILURE", "EXIT_OK", "STOP_TIMEOUT", "Daemon"]
