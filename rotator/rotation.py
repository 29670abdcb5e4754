"""The rotation engine: level-triggered reconcile and the crash-safe rotation protocol.

`Engine.reconcile()` reads Bybit (one sub-apikeys listing per sub UID) and Vault, compares them with
the configured keys, and moves every key that has something due by as many protocol steps as it
can, each step recorded with check-and-set *before* the next side effect:

    idle ─due─▶ PLANNED ─create─▶ CREATED ─verify─▶ VERIFIED ─promote─▶ PROMOTED
                                                                       │ hand off
                                  idle ◀─revoke old key (grace over)─ HANDED_OFF

A crash anywhere leaves a record from which the next reconcile resumes: a create whose reply was
lost is found by the rotation id in its Bybit note and deleted (its secret is unknowable), then
created again. Two replicas never act on the same step: each side effect is preceded by a CAS
"claim" write; the loser gets StoreConflict and backs off. See docs/rotation.md.
"""

from __future__ import annotations

import contextlib
import enum
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from rotator.clock import Clock
from rotator.clock_offset import planning_expiry
from rotator.drift import DRIFT_ROTATION_MIN_GAP, OnDrift, spec_mismatches
from rotator.errors import (
    ConfigError,
    ExchangeAuthFailed,
    KeyLimitReached,
    LeaseLost,
    PermanentError,
    RotatorError,
    StateCorrupt,
    StoreConflict,
    StoreDenied,
    StoreUnavailable,
    TemporaryError,
    VerificationFailed,
)
from rotator.failures import failure_class
from rotator.model import (
    Credentials,
    ExchangeKey,
    KeyKind,
    KeySpec,
    ListedStatus,
    Secret,
    fingerprint,
    permissions_as_dict,
)
from rotator.orphans import (
    ORPHAN_MIN_AGE,
    AccountRecords,
    Orphan,
    OrphanKind,
    judge_orphans,
    referenced_key_ids,
    sweep,
)
from rotator.password_change import awaits_forced_rotation, signalled_change
from rotator.policy import (
    RotationPolicy,
    due_for_rotation,
    effective_expiry,
    grace_end,
    is_escalated,
    latest_safe_moment,
    next_retry,
    renewal_moment,
)
from rotator.ports import Authority, Exchange, HandOff, KeyStore, NoHandOff, SoleActor
from rotator.progress import Observer, Progress, ProgressKind, ignore, shield
from rotator.state import AccountState, KeyRef, KeyState, PendingKey, Rotation, Step, parse_note

log = structlog.get_logger(__name__)

MAX_KEYS_PER_ACCOUNT = 20
CLAIM_TTL = timedelta(minutes=5)  # another replica's claim younger than this is left alone
MAX_STEPS_PER_RUN = 16  # a full rotation takes about 10 record writes
PENDING_WRITE_TRIES = 4  # storing a fresh secret: tries before the new key is deleted again
_SOLE = SoleActor()


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagedAccount:
    name: str
    master_path: str  # Vault record {api_key, api_secret[, kind]}
    state_path: str


class AckMode(enum.StrEnum):
    VAULT = "vault"  # the bot writes the new key id to the key's ack record
    HOOK = "hook"  # the key's hand-off hooks succeeding counts


@dataclass(frozen=True, slots=True, kw_only=True)
class AckPolicy:
    mode: AckMode
    max_wait: timedelta  # after the grace period; never past the old key's expiry
    path: str  # the ack record: {"api_key": <the new key id>}


ACK_RECHECK = timedelta(minutes=5)  # how often a missing ack is looked for again


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagedKey:
    name: str
    account: str
    spec: KeySpec
    consumer_path: str
    state_path: str
    policy: RotationPolicy = field(default_factory=RotationPolicy)
    ack: AckPolicy | None = None  # revoke only once the consumer acknowledged the new key


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyReport:
    """One key after a reconcile (or an inspection): what it is, what is next and why."""

    name: str
    account: str
    sub_uid: int
    state: str  # idle | planned | created | verified | promoted | handed_off | awaiting_ack |
    #              failed | escalated
    key_id: str | None = None  # active key id (callers shorten it; never logged in full)
    expires_at: datetime | None = None
    renewal_at: datetime | None = None
    next_action: str = ""  # what happens next: "rotate", "verify new key", "revoke old key", ...
    next_at: datetime | None = None
    reason: str = ""  # why: "expires 2026-03-01, renew 14d before", "retrying after: ..."
    last_error: str | None = None
    escalated: bool = False
    completed: bool = False  # a rotation completed during this run
    failure: str | None = None  # class of failure during this run (metrics label), or None
    step_attempted: bool = False
    rotations: int = 0
    last_rotation_at: datetime | None = None
    rotation_reason: str | None = (
        None  # why the rotation in flight started (initial, expiring, ...)
    )
    active_created_at: datetime | None = None  # when the active key was created, if known
    # How the active key differs from its spec (rotator/drift.py); () none; None not known.
    drift: tuple[str, ...] | None = None
    # The active key must still be replaced because of a password change; None: not known.
    password_change_pending: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountReport:
    name: str
    master_expires_at: datetime | None = None
    master_ok: bool = False
    password_changed_at: datetime | None = None
    password_change_detected_now: bool = False
    password_change_pending_keys: int = 0  # keys of this run still awaiting the forced rotation
    # Fingerprints of tagged keys no record of the account refers to, left on Bybit after this run
    # (docs/rotation.md, "Orphans"); None: not judged (a run that looked at some keys only).
    orphans: tuple[str, ...] | None = None
    orphans_kept: tuple[str, ...] = ()  # of those, the ones never deleted (unknown name, no age)
    orphans_deleted: tuple[str, ...] = ()  # deleted during this run
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileResult:
    started_at: datetime
    finished_at: datetime
    keys: tuple[KeyReport, ...]
    accounts: tuple[AccountReport, ...]

    @property
    def next_due(self) -> datetime | None:
        moments = [k.next_at for k in self.keys if k.next_at is not None]
        return min(moments) if moments else None

    @property
    def ok(self) -> bool:
        return all(a.error is None for a in self.accounts)


class _Stop(Exception):
    def __init__(self, report: KeyReport) -> None:
        self.report = report


@dataclass
class _Ctx:
    """What one account's run shares between its keys."""

    account: ManagedAccount
    authority: Authority
    master: Credentials
    account_state: AccountState
    listings: dict[int, tuple[ExchangeKey, ...]] = field(default_factory=dict)
    force: frozenset[str] = frozenset()
    known: set[str] = field(default_factory=set)  # key ids some state record refers to
    read_keys: set[str] = field(default_factory=set)  # keys whose state record was read this run
    key_signal: datetime | None = None  # a password change inferred from a managed key


class Engine:
    """Reconciles managed keys. Thread-safe per account only: run one account from one thread."""

    def __init__(
        self,
        *,
        exchange: Exchange,
        store: KeyStore,
        clock: Clock,
        accounts: Sequence[ManagedAccount],
        keys: Sequence[ManagedKey],
        handoff: HandOff | None = None,
        owner: str = "rotator",
        sleep: Callable[[float], None] = time.sleep,
        should_stop: Callable[[], bool] | None = None,
        authorities: Mapping[str, Authority] | None = None,
        observer: Observer = ignore,
    ) -> None:
        self.exchange = exchange
        self.store = store
        self.clock = clock
        self.accounts = tuple(accounts)
        self.keys = tuple(keys)
        self.handoff = handoff or NoHandOff()
        self.owner = owner
        self._sleep = sleep
        # Asked before every protocol step: True (the daemon is stopping) finishes the step in
        # flight and starts no other; the record says where the next run resumes.
        self.should_stop: Callable[[], bool] = should_stop or (lambda: False)
        # The right to act, per account (its lease); an account not named here has a sole actor.
        self.authorities: dict[str, Authority] = dict(authorities or {})
        # The last (state, version) this engine read or wrote per key: a failure is recorded
        # with check-and-set on it, so it can never overwrite another writer's record.
        self._last: dict[str, tuple[KeyState, int]] = {}
        self._observer = shield(observer)  # told of each milestone (rotator/progress.py)

    def master_credentials(self, account: str) -> Credentials:
        """The account's master key from Vault (the daemon lists its sub-accounts with it)."""
        return self._master(next(a for a in self.accounts if a.name == account))

    def authority(self, account: str) -> Authority:
        return self.authorities.get(account) or _SOLE

    # ================================================================== public
    def reconcile(
        self, *, only: Iterable[str] | None = None, force: Iterable[str] = ()
    ) -> ReconcileResult:
        """Bring every (or `only` the named) key a step closer to healthy; one key's failure
        never stops the others."""
        return self._run(only, frozenset(force), act=True)

    def inspect(self, *, only: Iterable[str] | None = None) -> ReconcileResult:
        """What reconcile would see and do, with no side effect at all (reads only)."""
        return self._run(only, frozenset(), act=False)

    def _run(
        self, only: Iterable[str] | None, forced: frozenset[str], *, act: bool
    ) -> ReconcileResult:
        started = self.clock.now()
        wanted = set(only) if only is not None else None
        key_reports: list[KeyReport] = []
        account_reports: list[AccountReport] = []
        for account in self.accounts:
            keys = [
                k
                for k in self.keys
                if k.account == account.name and (wanted is None or k.name in wanted)
            ]
            if wanted is not None and not keys:
                continue
            areport, kreports = self._reconcile_account(account, keys, forced, act=act)
            account_reports.append(areport)
            key_reports.extend(kreports)
        return ReconcileResult(
            started_at=started,
            finished_at=self.clock.now(),
            keys=tuple(key_reports),
            accounts=tuple(account_reports),
        )

    def declare_password_change(self, account_name: str, at: datetime) -> AccountState:
        """Record that the account's login password changed at `at` (rotator password-changed)."""
        account = next(a for a in self.accounts if a.name == account_name)
        for attempt in range(3):  # the daemon may write the same record: re-read and re-apply
            self.authority(account_name).fence()
            current = self.store.read(account.state_path)
            state = AccountState.from_record(current.data) if current else AccountState()
            if state.password_changed_at is None or at > state.password_changed_at:
                state = replace(state, password_changed_at=at)
            try:
                self.store.write(
                    account.state_path, state.to_record(), cas=current.version if current else 0
                )
                break
            except StoreConflict:
                if attempt == 2:
                    raise
        log.warning("password_change.declared", account=account_name, at=at.isoformat())
        return state

    def adopt(self, name: str, key_id: str, secret: Secret) -> KeyReport:
        """Take an existing key (e.g. made by hand in the web UI) under management.

        The key must answer query-api signed with `secret`, belong to the configured sub UID and
        match the spec. It becomes the active key; the key managed before is kept as `previous`
        (bots may still use it), so it stays on Bybit until the next rotation replaces that
        record, and is then deleted as an orphan. Refused while a rotation is in flight.
        """
        key = next((k for k in self.keys if k.name == name), None)
        if key is None:
            raise ConfigError(f"no key named {name!r} in the config")
        state, version = self._read_state(key)
        if state.rotation is not None:
            raise PermanentError(
                f"key {name} has rotation {state.rotation.id} in flight "
                f"({state.rotation.step.value}); let it finish (rotator status) and adopt after"
            )
        now = self.clock.now()
        info = self.exchange.query_key(Credentials(api_key=key_id, secret=secret))
        if info.key_id != key_id:
            raise VerificationFailed("Bybit describes a different key than the one given")
        problems = verification_problems(key.spec, info, key.policy, now)
        if problems:
            raise VerificationFailed(
                "the key does not match the config: "
                + "; ".join(problems)
                + " (fix the config or the key, then adopt again)"
            )
        pending = PendingKey(
            key_id=key_id,
            secret=secret,
            created_at=info.created_at or now,
            expires_at=info.expires_at,
        )
        consumer = self.store.read(key.consumer_path)
        self.authority(key.account).fence_strict()
        consumer_version = self.store.write(
            key.consumer_path,
            consumer_record(key, pending, "adopted"),
            cas=consumer.version if consumer else 0,
        )
        adopted = replace(
            state,
            active=KeyRef(
                key_id=key_id,
                created_at=pending.created_at,
                expires_at=info.expires_at,
                consumer_version=consumer_version,
            ),
            previous=state.active,  # still referenced: never an orphan while kept
        )
        self._write(key, adopted, version)
        log.info(
            "key.adopted", key=name, key_fp=fingerprint(key_id), vault_version=consumer_version
        )
        return self._idle_report(key, adopted, info.expires_at, now, completed=False)

    # ================================================================== accounts
    def _reconcile_account(
        self,
        account: ManagedAccount,
        keys: Sequence[ManagedKey],
        forced: frozenset[str],
        *,
        act: bool,
    ) -> tuple[AccountReport, list[KeyReport]]:
        authority = self.authority(account.name)
        try:
            if act:
                authority.fence()
            master = self._master(account)
            astate_v = self.store.read(account.state_path)
            astate = AccountState.from_record(astate_v.data) if astate_v else AccountState()
            info = self.exchange.query_key(master)
        except RotatorError as exc:
            error = f"account {account.name}: {exc.message}"
            log.error("account.reconcile.failed", account=account.name, error=exc.message)
            reports = [self._unknown_report(k, error) for k in keys]
            return AccountReport(name=account.name, error=error), reports
        except Exception as exc:  # a bug or an adapter letting something through
            log.exception("account.reconcile.crashed", account=account.name)
            error = f"account {account.name}: internal error {type(exc).__name__} (a bug)"
            reports = [self._unknown_report(k, error, failure="bug") for k in keys]
            return AccountReport(name=account.name, error=error), reports
        if info.is_master is False:
            error = (
                f"account {account.name}: the key at {account.master_path} is a sub-account key; "
                "store the MASTER account's key there"
            )
            return AccountReport(name=account.name, error=error), [
                self._unknown_report(k, error) for k in keys
            ]

        ctx = _Ctx(
            account=account,
            authority=authority,
            master=master,
            account_state=astate,
            force=forced,
        )
        detected = self._detect_password_change(ctx, info)

        reports = [self._reconcile_key_isolated(k, ctx, act=act) for k in keys]
        if ctx.key_signal is not None and (
            ctx.account_state.password_changed_at is None
            or ctx.key_signal > ctx.account_state.password_changed_at
        ):
            # Some managed key's expiry moved earlier: a change the master key did not show
            # (Bybit may expire only unbound keys, and the master may be IP-bound).
            detected = True
            ctx.account_state = replace(ctx.account_state, password_changed_at=ctx.key_signal)
            log.critical(
                "password_change.detected",
                account=account.name,
                source="managed key expiry moved earlier",
                action="rotating the affected keys now; check the master key",
            )
        if act and ctx.account_state != astate:
            # On a conflict another writer recorded the same facts; the next run re-reads.
            with contextlib.suppress(StoreConflict, LeaseLost):
                authority.fence()
                self.store.write(
                    account.state_path,
                    ctx.account_state.to_record(),
                    cas=astate_v.version if astate_v else 0,
                )
        reports = [self._with_signals(k, r, ctx) for k, r in zip(keys, reports, strict=True)]
        orphans = self._orphans(ctx, keys, act=act)
        return (
            replace(
                orphans,
                name=account.name,
                master_expires_at=info.expires_at,
                master_ok=True,
                password_changed_at=ctx.account_state.password_changed_at,
                password_change_detected_now=detected,
                password_change_pending_keys=sum(1 for r in reports if r.password_change_pending),
            ),
            reports,
        )

    def _master(self, account: ManagedAccount) -> Credentials:
        record = self.store.read(account.master_path)
        if record is None:
            raise StoreDenied(
                f"no master key at Vault path {account.master_path}; store it with "
                f"`bao kv put <mount>/{account.master_path} api_key=... api_secret=-` "
                "(the secret from stdin)"
            )
        api_key, api_secret = record.data.get("api_key"), record.data.get("api_secret")
        if not isinstance(api_key, str) or not isinstance(api_secret, str) or not api_key:
            raise StateCorrupt(
                f"the master key record at {account.master_path} needs string fields "
                "api_key and api_secret"
            )
        kind = KeyKind.RSA if record.data.get("kind") == "rsa" else KeyKind.HMAC
        return Credentials(api_key=api_key, secret=Secret(api_secret), kind=kind)

    def _detect_password_change(self, ctx: _Ctx, master_info: ExchangeKey) -> bool:
        """An expiry that appears or moves earlier, to within the grace, on the same master key
        means the account's password changed (rotator/password_change.py decides)."""
        old = ctx.account_state
        fp = fingerprint(master_info.key_id)
        new_expiry = master_info.expires_at
        changed_at: datetime | None = None
        if old.master_key_fp == fp:
            grace = max(
                (k.policy.password_change_grace for k in self.keys), default=timedelta(days=7)
            )
            changed_at = signalled_change(
                old.master_expires_at, new_expiry, self.clock.now(), grace
            )
            if old.password_changed_at is not None and (
                changed_at is None or changed_at <= old.password_changed_at
            ):
                changed_at = None
        new_state = replace(
            old,
            master_key_fp=fp,
            master_expires_at=new_expiry,
            password_changed_at=changed_at or old.password_changed_at,
        )
        if changed_at is not None:
            log.critical(
                "password_change.detected",
                account=ctx.account.name,
                keys_die_at=(new_expiry.isoformat() if new_expiry else None),
                action="rotating the keys the policy's password_change_scope names now; "
                "replace the master key by hand",
            )
        ctx.account_state = new_state
        return changed_at is not None

    def _account_keys(self, account: str) -> tuple[ManagedKey, ...]:
        return tuple(k for k in self.keys if k.account == account)

    def _orphans(self, ctx: _Ctx, keys: Sequence[ManagedKey], *, act: bool) -> AccountReport:
        """Judge (and, when acting, delete) the account's orphans: only from the whole picture.

        A run that looked at some keys only, or failed to read some key's state record, judges
        nothing (orphans=None): a key unknown to a partial view may be another key's live key.
        """
        names = frozenset(k.name for k in self._account_keys(ctx.account.name))
        if {k.name for k in keys} != names or not names <= ctx.read_keys:
            return AccountReport(name=ctx.account.name)
        for sub_uid in sorted({k.spec.sub_uid for k in keys} - set(ctx.listings)):
            with contextlib.suppress(RotatorError):  # unlisted: judged next run, nothing lost
                self._listing(ctx, sub_uid)
        to_delete, to_report = judge_orphans(
            ctx.listings,
            AccountRecords(key_ids=frozenset(ctx.known), names=names),
            self._bybit_now(),
            ORPHAN_MIN_AGE,
        )
        deleted: tuple[Orphan, ...] = ()
        if act and to_delete:
            deleted = self._sweep_orphans(ctx, to_delete)
        gone = {o.key_id for o in deleted}
        left = [o for o in (*to_delete, *to_report) if o.key_id not in gone]
        kept = [o for o in left if o.kind is not OrphanKind.DELETABLE]
        fps = tuple(sorted(fingerprint(o.key_id) for o in left))
        if left:
            log.warning(
                "orphans.found",
                account=ctx.account.name,
                count=len(left),
                key_fps=fps,
                kept=len(kept),
                action="kept: unknown key names are never deleted"
                if len(kept) == len(left)
                else "a full reconcile deletes keys of configured names",
            )
        return AccountReport(
            name=ctx.account.name,
            orphans=fps,
            orphans_kept=tuple(sorted(fingerprint(o.key_id) for o in kept)),
            orphans_deleted=tuple(sorted(fingerprint(k) for k in gone)),
        )

    def _sweep_orphans(self, ctx: _Ctx, to_delete: Sequence[Orphan]) -> tuple[Orphan, ...]:
        """Delete orphans whose secret never reached Vault, re-reading every record first."""
        keys = self._account_keys(ctx.account.name)

        def referenced() -> frozenset[str]:
            states = [self._read_state(k)[0] for k in keys]
            consumers = [self.store.read(k.consumer_path) for k in keys]
            ids = [c.data.get("api_key") if c else None for c in consumers]
            return referenced_key_ids(states, [i for i in ids if isinstance(i, str)])

        def delete(key_id: str) -> None:
            ctx.authority.fence_strict()  # LeaseLost: another actor holds the account now
            self.exchange.delete_sub_key(ctx.master, key_id)  # the one orphan delete on Bybit

        deleted: list[Orphan] = []
        for candidate in to_delete:
            try:
                done, _ = sweep([candidate], referenced=referenced, delete=delete)
            except LeaseLost as exc:
                log.info("orphans.sweep.fenced", reason=exc.message)
                break
            except RotatorError as exc:
                ctx.listings.pop(candidate.sub_uid, None)  # deleted or not: list again
                log.error(
                    "orphan.delete_failed",
                    key_fp=fingerprint(candidate.key_id),
                    error=exc.message,
                    action="judged again at the next full reconcile",
                )
                continue
            deleted.extend(done)
        for orphan in deleted:
            self._unlist(ctx, orphan.sub_uid, orphan.key_id)
            log.warning(
                "orphan.deleted",
                key_fp=fingerprint(orphan.key_id),
                rotation_id=orphan.rotation_id,
                key=orphan.key_name,
            )
            self._observer(
                Progress(
                    kind=ProgressKind.ORPHAN_DELETED,
                    key=orphan.key_name,
                    account=ctx.account.name,
                    rotation_id=orphan.rotation_id,
                    key_fp=fingerprint(orphan.key_id),
                )
            )
        return tuple(deleted)

    def _clock_offset(self) -> timedelta:
        """Bybit's clock minus ours, as the client last measured it (zero if it cannot say)."""
        offset = getattr(self.exchange, "clock_offset", None)
        return offset if isinstance(offset, timedelta) else timedelta(0)

    def _bybit_now(self) -> datetime:
        """The host clock corrected by the measured offset: the clock `createdAt` is on."""
        return self.clock.now() + self._clock_offset()

    # ================================================================== keys
    def _reconcile_key_isolated(self, key: ManagedKey, ctx: _Ctx, *, act: bool) -> KeyReport:
        with structlog.contextvars.bound_contextvars(key=key.name, account=key.account):
            try:
                return self._reconcile_key(key, ctx, act=act)
            except _Stop as stop:
                return stop.report
            except LeaseLost as exc:
                log.info("key.fenced", reason=exc.message)
                return replace(
                    self._unknown_report(key, exc.message),
                    state="idle",
                    next_action="none here",
                    last_error=None,
                )
            except RotatorError as exc:
                log.error("key.reconcile.failed", error=exc.message, kind=type(exc).__name__)
                return self._unknown_report(key, exc.message, failure=_failure_class(exc))
            except Exception as exc:
                log.exception("key.reconcile.crashed", error=type(exc).__name__)
                return self._unknown_report(
                    key, f"internal error: {type(exc).__name__}", failure="bug"
                )

    def _listing(self, ctx: _Ctx, sub_uid: int, *, fresh: bool = False) -> tuple[ExchangeKey, ...]:
        """The sub UID's keys as Bybit lists them, fetched once per run: this run's own changes
        are applied to the cached copy (a delete removes its key, a verified key joins with what
        query-api said), and a change whose outcome is unknown drops the copy, so the next use
        lists again. The create step always lists afresh."""
        if fresh or sub_uid not in ctx.listings:
            ctx.listings[sub_uid] = self.exchange.list_sub_keys(ctx.master, sub_uid)
        return ctx.listings[sub_uid]

    @staticmethod
    def _unlist(ctx: _Ctx, sub_uid: int, key_id: str) -> None:
        if sub_uid in ctx.listings:
            ctx.listings[sub_uid] = tuple(k for k in ctx.listings[sub_uid] if k.key_id != key_id)

    @staticmethod
    def _relist(ctx: _Ctx, sub_uid: int, item: ExchangeKey) -> None:
        if sub_uid in ctx.listings:
            others = tuple(k for k in ctx.listings[sub_uid] if k.key_id != item.key_id)
            ctx.listings[sub_uid] = (*others, item)

    def _read_state(self, key: ManagedKey, ctx: _Ctx | None = None) -> tuple[KeyState, int]:
        record = self.store.read(key.state_path)
        if record is None:
            self._last[key.name] = (KeyState(), 0)
            if ctx is not None:
                ctx.read_keys.add(key.name)  # read, and it refers to no key
            return KeyState(), 0
        try:
            state = KeyState.from_record(record.data, f"state record {key.state_path}")
        except StateCorrupt as exc:
            raise StateCorrupt(
                f"{exc.message}; fix the record or delete it (then `rotator adopt` the live key)"
            ) from None
        self._last[key.name] = (state, record.version)
        if ctx is not None:
            ctx.read_keys.add(key.name)
            self._remember_refs(state, ctx)
        return state, record.version

    @staticmethod
    def _remember_refs(state: KeyState, ctx: _Ctx) -> None:
        """Key ids a state record refers to: not orphans."""
        ctx.known.update(referenced_key_ids([state]))

    def _expiry_of_active(
        self, key: ManagedKey, state: KeyState, ctx: _Ctx
    ) -> tuple[datetime | None, ExchangeKey | None]:
        if state.active is None:
            return None, None
        listed = next(
            (k for k in self._listing(ctx, key.spec.sub_uid) if k.key_id == state.active.key_id),
            None,
        )
        reported = (
            planning_expiry(listed.expires_at, self._clock_offset())
            if listed
            else state.active.expires_at
        )
        created = state.active.created_at or (listed.created_at if listed else None)
        expiry = effective_expiry(
            reported=reported,
            created_at=created,
            ip_bound=key.spec.is_ip_bound,
            password_changed_at=ctx.account_state.password_changed_at,
            policy=key.policy,
        )
        return expiry, listed

    def _reconcile_key(self, key: ManagedKey, ctx: _Ctx, *, act: bool) -> KeyReport:
        completed = False
        attempted = False
        for round_no in range(MAX_STEPS_PER_RUN):
            if self.should_stop():
                break
            now = self.clock.now()
            if round_no == 0 or key.name not in self._last:
                state, version = self._read_state(key, ctx)
            else:
                # What our own last check-and-set wrote: if anyone wrote since, the next write
                # of this run fails and the run stops, so no re-read is needed to be safe.
                state, version = self._last[key.name]
                self._remember_refs(state, ctx)
            expiry, listed = self._expiry_of_active(key, state, ctx)
            rot = state.rotation
            if rot is None:
                reason = self._rotation_reason(key, state, expiry, listed, ctx, now)
                if reason is None or completed:  # at most one rotation per key per run
                    return self._idle_report(key, state, expiry, now, completed=completed)
                if not act:
                    return self._report(
                        key,
                        state,
                        expiry,
                        now,
                        state="idle",
                        next_action="rotate",
                        next_at=now,
                        reason=reason,
                    )
                rotation = Rotation(
                    id=secrets.token_hex(6), reason=reason, step=Step.PLANNED, started_at=now
                )
                self._write(key, state.with_rotation(rotation), version)
                log.info("rotation.planned", rotation_id=rotation.id, reason=reason)
                self._observer(
                    Progress(
                        kind=ProgressKind.PLANNED,
                        key=key.name,
                        account=key.account,
                        rotation_id=rotation.id,
                        reason=reason,
                    )
                )
                continue

            # -------- a rotation is in flight
            deadline = latest_safe_moment(expiry, key.policy) if expiry else None
            if not act:
                return self._inflight_report(key, state, expiry, now)
            if rot.next_try is not None and now < rot.next_try and key.name not in ctx.force:
                return self._inflight_report(key, state, expiry, now)
            if self._claimed_by_other(ctx, key, state, now):
                return self._inflight_report(
                    key, state, expiry, now, note=f"step claimed by replica {rot.claimed_by}"
                )
            attempted = True
            done = self._guarded_step(key, ctx, state, version, expiry, deadline=deadline, now=now)
            if done:
                completed = True
        state, _ = self._read_state(key)
        expiry, _ = self._expiry_of_active(key, state, ctx)
        if state.rotation is None:
            return self._idle_report(key, state, expiry, self.clock.now(), completed=completed)
        return self._inflight_report(key, state, expiry, self.clock.now(), attempted=attempted)

    def _guarded_step(
        self,
        key: ManagedKey,
        ctx: _Ctx,
        state: KeyState,
        version: int,
        expiry: datetime | None,
        *,
        deadline: datetime | None,
        now: datetime,
    ) -> bool:
        """`_step`, with every way it can fail turned into the report that ends this key's run
        (`_Stop`): fenced out, lost a race, failed (recorded with backoff), or crashed."""
        rot = state.rotation
        assert rot is not None  # noqa: S101 (caller checked; narrows the type)
        try:
            return self._step(key, ctx, state, version, expiry, now)
        except _Stop:
            raise
        except LeaseLost as exc:
            log.info("rotation.step.fenced", step=rot.step.value, reason=exc.message)
            raise _Stop(
                self._inflight_report(
                    key, state, expiry, now, note="another actor holds the account's lease"
                )
            ) from None
        except StoreConflict:
            log.info("rotation.step.conflict", step=rot.step.value, action="backing off")
            self._observer(
                Progress(
                    kind=ProgressKind.CONFLICT,
                    key=key.name,
                    account=key.account,
                    step=rot.step.value,
                    rotation_id=rot.id,
                )
            )
            raise _Stop(
                self._inflight_report(
                    key,
                    state,
                    expiry,
                    now,
                    note="another writer changed the state record; re-reading next run",
                )
            ) from None
        except RotatorError as exc:
            report = self._record_failure(key, state, exc, expiry, deadline)
            raise _Stop(report) from None
        except Exception as exc:
            # A bug or an adapter letting something through: recorded with backoff like any
            # temporary failure, so the key is never stuck silently.
            log.exception("rotation.step.crashed", step=rot.step.value)
            unexpected = TemporaryError(
                f"internal error at step {rot.step.value}: {type(exc).__name__} "
                "(a bug: please report it with the log)"
            )
            report = self._record_failure(key, state, unexpected, expiry, deadline)
            raise _Stop(replace(report, failure="bug")) from None

    @staticmethod
    def _token_ahead(authority: Authority, key: ManagedKey, theirs: int, ours: int) -> None:
        """The record was written under a newer token than ours: normally another actor took the
        account over and we are stale (LeaseLost). Only if the lease in Vault still names us with
        our token (its history was reset by hand) do we go on, keeping the higher token. A sole
        actor (token 0) proves nothing, so it never acts on an account run under leases."""
        stale = LeaseLost(
            f"state record {key.state_path} was written under fencing token {theirs}, newer "
            f"than ours ({ours}): another actor holds the account"
        )
        if ours == 0:
            raise stale
        try:
            authority.fence_strict()
        except LeaseLost:
            raise stale from None
        log.warning(
            "state.token_ahead",
            state_token=theirs,
            lease_token=ours,
            action="the lease names this process: its history was reset; carrying on",
        )

    def _claimed_by_other(self, ctx: _Ctx, key: ManagedKey, state: KeyState, now: datetime) -> bool:
        """Whether another actor's claim on the current step must be respected.

        With leases, never: a record written under a newer token than ours fences *us* out
        (LeaseLost), and a claim under an older token belongs to an actor that has been fenced
        out. Only sole actors (token 0: tests, records from before leases) fall back to the old
        rule: a claim younger than CLAIM_TTL is left alone.
        """
        rot = state.rotation
        token = ctx.authority.token
        if token is None:
            raise LeaseLost("this process no longer holds the account's lease")
        if state.token > token:
            self._token_ahead(ctx.authority, key, state.token, token)
        if token > 0 or rot is None:
            return False
        return (
            rot.claimed_by not in (None, self.owner)
            and rot.claimed_at is not None
            and now - rot.claimed_at < CLAIM_TTL
        )

    def _rotation_reason(
        self,
        key: ManagedKey,
        state: KeyState,
        expiry: datetime | None,
        listed: ExchangeKey | None,
        ctx: _Ctx,
        now: datetime,
    ) -> str | None:
        if state.active is None:
            return "initial"
        if listed is None or listed.status == ListedStatus.EXPIRED:
            return "active_missing"
        if key.name in ctx.force:
            return "forced"
        signal = signalled_change(
            state.active.expires_at, listed.expires_at, now, key.policy.password_change_grace
        )
        if signal is not None:
            # Bybit says this very key dies within the grace: it rotates whatever the scope.
            ctx.key_signal = signal if ctx.key_signal is None else max(ctx.key_signal, signal)
            return "password_change"
        seed = f"{key.name}:{state.active.key_id}"
        if due_for_rotation(expiry, seed, key.policy, now):
            forced = awaits_forced_rotation(
                created_at=state.active.created_at,
                ip_bound=key.spec.is_ip_bound,
                changed_at=ctx.account_state.password_changed_at,
                scope=key.policy.password_change_scope,
            )
            return "password_change" if forced else "expiring"
        if (
            key.policy.on_drift is OnDrift.ROTATE
            and spec_mismatches(key.spec, listed)
            and (
                state.last_rotation_at is None
                or now - state.last_rotation_at >= DRIFT_ROTATION_MIN_GAP
            )
        ):
            return "spec_changed"
        return None

    def _with_signals(self, key: ManagedKey, report: KeyReport, ctx: _Ctx) -> KeyReport:
        """Add what the account's view says about one key: drift, a pending forced rotation."""
        if report.key_id is None:
            return report
        listed = next(
            (
                item
                for item in ctx.listings.get(key.spec.sub_uid, ())
                if item.key_id == report.key_id
            ),
            None,
        )
        drift = None if listed is None else tuple(spec_mismatches(key.spec, listed))
        # Until promotion the active key is the old one; a key out of scope that Bybit itself
        # reported dying rotates with reason password_change and counts too.
        pending = awaits_forced_rotation(
            created_at=report.active_created_at,
            ip_bound=key.spec.is_ip_bound and report.rotation_reason != "password_change",
            changed_at=ctx.account_state.password_changed_at,
            scope=key.policy.password_change_scope,
        )
        return replace(report, drift=drift, password_change_pending=pending)

    # ================================================================== steps
    def _step(
        self,
        key: ManagedKey,
        ctx: _Ctx,
        state: KeyState,
        version: int,
        expiry: datetime | None,
        now: datetime,
    ) -> bool:
        """Run the next step of the rotation in flight. Returns True when the rotation completed."""
        rot = state.rotation
        assert rot is not None  # noqa: S101 (caller checked; narrows the type)
        if rot.step is Step.PLANNED:
            self._create(key, ctx, state, version)
        elif rot.step is Step.CREATED:
            self._verify(key, ctx, state, version)
        elif rot.step is Step.VERIFIED:
            self._promote(key, state, version)
        elif rot.step is Step.PROMOTED:
            self._hand_off(key, state, version, now)
        elif rot.step is Step.HANDED_OFF:
            if rot.grace_until is not None and now < rot.grace_until:
                raise _Stop(self._inflight_report(key, state, expiry, now))
            if self._ack_arrived(key, state):
                self._write(key, state.with_rotation(replace(rot, acked_at=now)), version)
                return False  # re-read: the next round revokes
            ack_until = self._ack_deadline(key, state, now)
            if ack_until is not None:
                raise _Stop(self._awaiting_ack_report(key, state, expiry, now, ack_until))
            self._revoke(key, ctx, state, version)
            return True
        return False

    def _claim(self, key: ManagedKey, state: KeyState, version: int) -> tuple[KeyState, int]:
        """Record that this replica is about to cause the current step's side effect."""
        rot = state.rotation
        assert rot is not None  # noqa: S101
        claimed = state.with_rotation(
            replace(
                rot, attempts=rot.attempts + 1, claimed_by=self.owner, claimed_at=self.clock.now()
            )
        )
        return claimed, self._write(key, claimed, version)

    def _create(self, key: ManagedKey, ctx: _Ctx, state: KeyState, version: int) -> None:
        state, version = self._claim(key, state, version)
        rot = state.rotation
        assert rot is not None  # noqa: S101
        listing = self._listing(ctx, key.spec.sub_uid, fresh=True)
        consumer = self.store.read(key.consumer_path)
        keep = {ref.key_id for ref in (state.active, state.previous) if ref is not None}
        if consumer is not None and isinstance(consumer.data.get("api_key"), str):
            keep.add(consumer.data["api_key"])
        remaining = []
        for item in listing:
            tag = parse_note(item.note)
            stale = tag is not None and (
                tag.rotation_id == rot.id or (tag.key_name == key.name and item.key_id not in keep)
            )
            # A key we created whose secret never reached Vault (lost reply, crash): nobody can
            # hold its secret, so it is deleted before we create another.
            if stale and self._guarded_delete(ctx, key, item.key_id, why="unstored create"):
                log.warning(
                    "orphan.deleted",
                    key_fp=fingerprint(item.key_id),
                    rotation_id=tag.rotation_id if tag else None,
                )
                self._observer(
                    Progress(
                        kind=ProgressKind.ORPHAN_DELETED,
                        key=key.name,
                        account=key.account,
                        rotation_id=tag.rotation_id if tag else None,
                        key_fp=fingerprint(item.key_id),
                    )
                )
            else:
                remaining.append(item)
        if len(remaining) >= MAX_KEYS_PER_ACCOUNT:
            raise KeyLimitReached(
                f"sub UID {key.spec.sub_uid} already holds {len(remaining)} API keys, Bybit's "
                f"limit is {MAX_KEYS_PER_ACCOUNT}: delete keys nobody uses (Bybit web UI: API "
                "management) and the rotation will continue"
            )
        ctx.listings.pop(key.spec.sub_uid, None)
        ctx.authority.fence_strict()
        created = self.exchange.create_sub_key(ctx.master, key.spec, note=rot.note(key.name))
        pending = PendingKey(
            key_id=created.key_id, secret=created.secret, created_at=self.clock.now()
        )
        log.info("rotation.key_created", rotation_id=rot.id, key_fp=fingerprint(created.key_id))
        self._observer(
            Progress(
                kind=ProgressKind.KEY_CREATED,
                key=key.name,
                account=key.account,
                rotation_id=rot.id,
                key_fp=fingerprint(created.key_id),
            )
        )
        listed = tuple(remaining)
        new_state = state.with_rotation(
            replace(
                rot,
                step=Step.CREATED,
                pending=pending,
                attempts=0,
                failures=0,
                next_try=None,
                last_error=None,
                secret_since=version + 1,
            )
        )
        self._store_pending(key, ctx, new_state, version, created.key_id)
        # Bybit's listing now is the fresh one minus the stale keys deleted above, plus the new
        # key; the new key joins the cached copy once verified (until then it is not judged).
        ctx.listings[key.spec.sub_uid] = listed

    def _store_pending(
        self, key: ManagedKey, ctx: _Ctx, new_state: KeyState, version: int, key_id: str
    ) -> None:
        """The secret exists only in memory now: get it into Vault, or delete the key on Bybit."""
        delay = 1.0
        for attempt in range(PENDING_WRITE_TRIES):
            try:
                self._write(key, new_state, version)
            except StoreUnavailable as exc:
                log.warning(
                    "rotation.pending_write.retried", attempt=attempt + 1, error=exc.message
                )
                if attempt + 1 < PENDING_WRITE_TRIES:
                    self._sleep(delay)
                    delay *= 2
                continue
            except (StoreConflict, StoreDenied):
                self._delete_unstored(ctx, key, key_id)
                raise
            else:
                return
        self._delete_unstored(ctx, key, key_id)
        raise StoreUnavailable(
            "the new key's secret could not be written to Vault; the key was deleted on Bybit "
            "and the rotation will be retried"
        )

    def _delete_unstored(self, ctx: _Ctx, key: ManagedKey, key_id: str) -> None:
        # Not fenced by the lease: nobody else can hold this key's secret, so deleting it is
        # right whoever holds the account now. The guard still re-reads the records.
        try:
            if self._guarded_delete(ctx, key, key_id, why="unstored secret", strict=False):
                log.warning("rotation.unstored_key_deleted", key_fp=fingerprint(key_id))
                self._observer(
                    Progress(
                        kind=ProgressKind.ROLLED_BACK,
                        key=key.name,
                        account=key.account,
                        key_fp=fingerprint(key_id),
                    )
                )
        except RotatorError as exc:
            # Its note still carries the rotation id: the next create step sweeps it.
            log.error(
                "rotation.unstored_key_delete_failed", key_fp=fingerprint(key_id), error=exc.message
            )

    def _guarded_delete(
        self,
        ctx: _Ctx,
        key: ManagedKey,
        key_id: str,
        *,
        why: str,
        strict: bool = True,
        allow_previous: bool = False,
        allow_pending: bool = False,
    ) -> bool:
        """Delete `key_id` on Bybit unless a record still points at it. False: refused.

        Independent of every other fence: the consumer record and the state's active and previous
        keys (pending too) are re-read right before the delete, and a key any of them names is
        never deleted (revoke may delete the previous key, a failed verify its own pending).
        """
        if strict:
            ctx.authority.fence_strict()
        live: set[str] = set()
        consumer = self.store.read(key.consumer_path)
        if consumer is not None and isinstance(consumer.data.get("api_key"), str):
            live.add(consumer.data["api_key"])
        record = self.store.read(key.state_path)
        if record is not None:
            state = KeyState.from_record(record.data, f"state record {key.state_path}")
            refs: list[KeyRef | PendingKey | None] = [state.active]
            if not allow_previous:
                refs.append(state.previous)
            if not allow_pending and state.rotation is not None:
                refs.append(state.rotation.pending)
            live.update(ref.key_id for ref in refs if ref is not None)
        if key_id in live:
            log.critical(
                "delete.refused",
                key_fp=fingerprint(key_id),
                why=why,
                reason="a Vault record points at this key; it stays on Bybit",
            )
            return False
        try:
            self.exchange.delete_sub_key(ctx.master, key_id)
        except BaseException:
            ctx.listings.pop(key.spec.sub_uid, None)  # deleted or not: list again when needed
            raise
        self._unlist(ctx, key.spec.sub_uid, key_id)
        return True

    def _verify(self, key: ManagedKey, ctx: _Ctx, state: KeyState, version: int) -> None:
        state, version = self._claim(key, state, version)
        rot = state.rotation
        assert rot is not None and rot.pending is not None  # noqa: S101
        pending = rot.pending
        problem: RotatorError | None = None
        try:
            info = self.exchange.query_key(
                Credentials(api_key=pending.key_id, secret=pending.secret)
            )
        except ExchangeAuthFailed as exc:
            problem = exc
        else:
            problems = verification_problems(key.spec, info, key.policy, self.clock.now())
            if problems:
                problem = VerificationFailed(
                    "new key does not match the spec: " + "; ".join(problems)
                )
        if problem is not None:
            # The new key is unusable: delete it, and plan a fresh create (same rotation id).
            if not self._guarded_delete(
                ctx, key, pending.key_id, why="failed verification", allow_pending=True
            ):
                raise LeaseLost(
                    "the key that failed verification here is live in Vault: another actor "
                    "verified and promoted it meanwhile; this process stands down"
                )
            log.error("rotation.verify_failed", error=problem.message, action="new key deleted")
            self._observer(
                Progress(
                    kind=ProgressKind.VERIFY_FAILED,
                    key=key.name,
                    account=key.account,
                    rotation_id=rot.id,
                    key_fp=fingerprint(pending.key_id),
                    detail=problem.message,
                )
            )
            back = state.with_rotation(replace(rot, step=Step.PLANNED, pending=None))
            version = self._write(key, back, version)
            self._destroy_secret_versions(key, rot.secret_since, version)
            raise problem
        verified = replace(pending, expires_at=info.expires_at)
        self._relist(
            ctx,
            key.spec.sub_uid,
            replace(
                info,
                note=info.note or rot.note(key.name),
                created_at=info.created_at or pending.created_at,
            ),
        )
        self._write(
            key,
            state.with_rotation(replace(rot, step=Step.VERIFIED, pending=verified, attempts=0)),
            version,
        )
        log.info("rotation.verified", rotation_id=rot.id, key_fp=fingerprint(pending.key_id))
        self._observer(
            Progress(
                kind=ProgressKind.VERIFIED,
                key=key.name,
                account=key.account,
                rotation_id=rot.id,
                key_fp=fingerprint(pending.key_id),
            )
        )

    def _promote(self, key: ManagedKey, state: KeyState, version: int) -> None:
        rot = state.rotation
        assert rot is not None and rot.pending is not None  # noqa: S101
        pending = rot.pending
        consumer = self.store.read(key.consumer_path)
        if consumer is not None and consumer.data.get("api_key") == pending.key_id:
            consumer_version = consumer.version  # written before a crash: promotion is idempotent
        else:
            record = consumer_record(key, pending, rot.id)
            self.authority(key.account).fence_strict()
            consumer_version = self.store.write(
                key.consumer_path, record, cas=consumer.version if consumer else 0
            )
        active = KeyRef(
            key_id=pending.key_id,
            created_at=pending.created_at,
            expires_at=pending.expires_at,
            consumer_version=consumer_version,
        )
        promoted = replace(
            state,
            active=active,
            previous=state.active,
            rotation=replace(rot, step=Step.PROMOTED, pending=None, attempts=0),
        )
        new_version = self._write(key, promoted, version)
        self._destroy_secret_versions(key, rot.secret_since, new_version)
        log.info(
            "rotation.promoted",
            rotation_id=rot.id,
            key_fp=fingerprint(pending.key_id),
            vault_version=consumer_version,
        )
        self._observer(
            Progress(
                kind=ProgressKind.PROMOTED,
                key=key.name,
                account=key.account,
                rotation_id=rot.id,
                key_fp=fingerprint(pending.key_id),
                vault_version=consumer_version,
            )
        )

    def _destroy_secret_versions(self, key: ManagedKey, since: int | None, upto: int) -> None:
        """Drop the state versions that held the pending secret: it now lives only where consumers
        read it. Best effort: a failure leaves them readable only under the state path's policy."""
        if since is None or since >= upto:
            return
        try:
            self.store.destroy_versions(key.state_path, list(range(since, upto)))
        except RotatorError as exc:
            log.warning("state.secret_versions.destroy_failed", error=exc.message)

    def _hand_off(self, key: ManagedKey, state: KeyState, version: int, now: datetime) -> None:
        rot = state.rotation
        assert rot is not None  # noqa: S101
        previous = state.previous
        forced = False
        state, version = self._claim(key, state, version)
        consumer = self.store.read(key.consumer_path)
        if consumer is None:
            raise StoreUnavailable(f"consumer record {key.consumer_path} vanished after promotion")
        try:
            self.handoff.deliver(
                key.name, consumer.data, fence=self.authority(key.account).fence_strict
            )
        except TemporaryError as exc:
            old_expiry = previous.expires_at if previous else None
            if old_expiry is None or now < old_expiry:
                raise
            # The old key is dead anyway: nothing is gained by keeping the rotation open.
            forced = True
            log.critical(
                "handoff.forced",
                error=exc.message,
                action="old key expired before hand-off succeeded; revoking it anyway",
            )
            self._observer(
                Progress(
                    kind=ProgressKind.HANDOFF_FORCED,
                    key=key.name,
                    account=key.account,
                    rotation_id=rot.id,
                    detail=exc.message,
                )
            )
        rot = state.rotation
        assert rot is not None  # noqa: S101
        until = grace_end(self.clock.now(), previous.expires_at if previous else None, key.policy)
        if previous is None:
            until = self.clock.now()
        self._write(
            key,
            state.with_rotation(
                replace(
                    rot,
                    step=Step.HANDED_OFF,
                    grace_until=until,
                    handoff_forced=forced,
                    acked_at=self.clock.now()
                    if key.ack is not None and key.ack.mode is AckMode.HOOK and not forced
                    else None,
                    attempts=0,
                    failures=0,
                    next_try=None,
                    last_error=None,
                )
            ),
            version,
        )
        log.info("rotation.handed_off", rotation_id=rot.id, revoke_after=until.isoformat())
        self._observer(
            Progress(
                kind=ProgressKind.HANDED_OFF,
                key=key.name,
                account=key.account,
                rotation_id=rot.id,
                at=until,
            )
        )

    def _ack_arrived(self, key: ManagedKey, state: KeyState) -> bool:
        """The bot wrote the NEW key's id to the key's ack record (and it is not recorded yet)."""
        rot, active = state.rotation, state.active
        if key.ack is None or key.ack.mode is not AckMode.VAULT or rot is None or active is None:
            return False
        if rot.acked_at is not None or state.previous is None:
            return False
        record = self.store.read(key.ack.path)
        if record is None or record.data.get("api_key") != active.key_id:
            return False
        log.info("ack.received", key_fp=fingerprint(active.key_id), via="vault")
        return True

    @staticmethod
    def _ack_deadline(key: ManagedKey, state: KeyState, now: datetime) -> datetime | None:
        """Until when the revoke waits for the consumer's acknowledgement; None: go ahead."""
        rot, previous, active = state.rotation, state.previous, state.active
        if key.ack is None or rot is None or previous is None or active is None:
            return None
        if rot.acked_at is not None:
            return None
        start = rot.grace_until or now
        until = start + key.ack.max_wait
        if previous.expires_at is not None:
            until = min(until, previous.expires_at)
        if now >= until:
            log.warning(
                "ack.missing",
                key_fp=fingerprint(active.key_id),
                action="revoking the old key without an acknowledgement (ack max_wait over)",
            )
            return None
        return until

    def _awaiting_ack_report(
        self,
        key: ManagedKey,
        state: KeyState,
        expiry: datetime | None,
        now: datetime,
        until: datetime,
    ) -> KeyReport:
        report = self._inflight_report(key, state, expiry, now)
        return replace(
            report,
            state="awaiting_ack",
            next_action="revoke old key",
            next_at=min(until, now + ACK_RECHECK),
            reason=(
                f"waiting for the consumer to acknowledge the new key (ack "
                f"{key.ack.mode.value if key.ack else '-'}); the old key is revoked anyway at "
                f"{until:%Y-%m-%d %H:%M}Z"
            ),
        )

    def _revoke(self, key: ManagedKey, ctx: _Ctx, state: KeyState, version: int) -> None:
        rot = state.rotation
        assert rot is not None  # noqa: S101
        previous = state.previous
        if previous is not None:
            state, version = self._claim(key, state, version)
            if not self._guarded_delete(
                ctx, key, previous.key_id, why="revoke the old key", allow_previous=True
            ):
                raise StateCorrupt(
                    f"refusing to revoke the old key {fingerprint(previous.key_id)}: the consumer "
                    f"record or the active key at {key.state_path} points at it; fix the records "
                    "by hand (rotator status shows them)"
                )
        done = replace(
            state,
            previous=None,
            rotation=None,
            last_rotation_at=self.clock.now(),
            rotations=state.rotations + (0 if rot.reason == "initial" else 1),
        )
        self._write(key, done, version)
        if previous is not None and previous.consumer_version is not None:
            try:
                self.store.destroy_versions(key.consumer_path, [previous.consumer_version])
            except RotatorError as exc:
                log.warning("consumer.old_version.destroy_failed", error=exc.message)
        log.info(
            "rotation.completed",
            rotation_id=rot.id,
            reason=rot.reason,
            key_fp=fingerprint(state.active.key_id) if state.active else None,
            old_key_fp=fingerprint(previous.key_id) if previous else None,
            duration_s=round((self.clock.now() - rot.started_at).total_seconds(), 3),
        )
        self._observer(
            Progress(
                kind=ProgressKind.COMPLETED,
                key=key.name,
                account=key.account,
                rotation_id=rot.id,
                reason=rot.reason,
                key_fp=fingerprint(state.active.key_id) if state.active else None,
                old_key_fp=fingerprint(previous.key_id) if previous else None,
            )
        )

    # ================================================================== records
    def _write(self, key: ManagedKey, state: KeyState, version: int) -> int:
        """Every state write: fenced by the lease, stamped with our token, check-and-set on the
        version we read or wrote last (so never over another writer's record)."""
        authority = self.authority(key.account)
        authority.fence()
        token = authority.token or 0
        if state.token > token:
            self._token_ahead(authority, key, state.token, token)
        stamped = replace(state, token=max(token, state.token))
        new_version = self.store.write(key.state_path, stamped.to_record(), cas=version)
        self._last[key.name] = (stamped, new_version)
        return new_version

    def _record_failure(
        self,
        key: ManagedKey,
        state: KeyState,
        exc: RotatorError,
        expiry: datetime | None,
        deadline: datetime | None,
    ) -> KeyReport:
        now = self.clock.now()
        # What this engine last read or wrote for the key (the failing step may have written a
        # claim or a rollback first): the failure is recorded with check-and-set on exactly that
        # version, so a record someone else wrote since is never overwritten.
        state, version = self._last.get(key.name, (state, -1))
        rot = state.rotation
        failure = _failure_class(exc)
        if rot is not None and version >= 0:
            failures = rot.failures + 1
            retry_at = next_retry(failures, f"{key.name}:{rot.id}", now, deadline)
            if isinstance(exc, TemporaryError) and exc.retry_after is not None:
                retry_at = max(retry_at, now + exc.retry_after)
            updated = state.with_rotation(
                replace(
                    rot,
                    failures=failures,
                    next_try=retry_at,
                    last_error=_short(exc.message),
                    claimed_by=None,
                    claimed_at=None,
                )
            )
            try:
                self._write(key, updated, version)
                state = updated
            except (StoreConflict, LeaseLost) as write_exc:
                # Someone else moved the rotation on meanwhile: our failure is not the truth
                # any more, so it is neither recorded nor reported as one.
                log.info(
                    "rotation.step.superseded",
                    step=rot.step.value,
                    error=exc.message,
                    reason=write_exc.message,
                )
                return self._inflight_report(
                    key, state, expiry, now, note="another writer changed the state record"
                )
            except RotatorError as write_exc:
                log.error("rotation.failure_record.failed", error=write_exc.message)
        level = "error" if isinstance(exc, PermanentError) else "warning"
        getattr(log, level)(
            "rotation.step.failed",
            step=rot.step.value if rot else None,
            error=exc.message,
            failure=failure,
            retry_at=state.rotation.next_try.isoformat()
            if state.rotation and state.rotation.next_try
            else None,
        )
        self._observer(
            Progress(
                kind=ProgressKind.STEP_FAILED,
                key=key.name,
                account=key.account,
                step=rot.step.value if rot else None,
                rotation_id=rot.id if rot else None,
                at=state.rotation.next_try if state.rotation else None,
                detail=exc.message,
            )
        )
        report = self._inflight_report(key, state, expiry, now, attempted=True)
        return replace(report, failure=failure)

    # ================================================================== reports
    def _report(
        self,
        key: ManagedKey,
        record: KeyState,
        expiry: datetime | None,
        now: datetime,
        **fields: Any,
    ) -> KeyReport:
        renewal = None
        if expiry is not None and record.active is not None:
            renewal = renewal_moment(expiry, f"{key.name}:{record.active.key_id}", key.policy)
        base: dict[str, Any] = {
            "name": key.name,
            "account": key.account,
            "sub_uid": key.spec.sub_uid,
            "key_id": record.active.key_id if record.active else None,
            "expires_at": expiry,
            "renewal_at": renewal,
            "rotations": record.rotations,
            "last_rotation_at": record.last_rotation_at,
            "active_created_at": record.active.created_at if record.active else None,
            "escalated": is_escalated(expiry, key.policy, now) and record.rotation is not None,
        }
        base.update(fields)
        return KeyReport(**base)

    def _idle_report(
        self,
        key: ManagedKey,
        state: KeyState,
        expiry: datetime | None,
        now: datetime,
        *,
        completed: bool,
    ) -> KeyReport:
        if expiry is None:
            return self._report(
                key,
                state,
                expiry,
                now,
                state="idle",
                next_action="none",
                reason="the key never expires (IP-bound)",
                completed=completed,
            )
        report = self._report(
            key,
            state,
            expiry,
            now,
            state="idle",
            next_action="rotate",
            reason=f"expires {expiry:%Y-%m-%d %H:%M}Z; rotation starts before then",
            completed=completed,
        )
        return replace(report, next_at=report.renewal_at)

    def _inflight_report(
        self,
        key: ManagedKey,
        state: KeyState,
        expiry: datetime | None,
        now: datetime,
        *,
        note: str | None = None,
        attempted: bool = False,
    ) -> KeyReport:
        rot = state.rotation
        if rot is None:
            return self._idle_report(key, state, expiry, now, completed=False)
        action = {
            Step.PLANNED: "create new key",
            Step.CREATED: "verify new key",
            Step.VERIFIED: "promote new key",
            Step.PROMOTED: "hand off new key",
            Step.HANDED_OFF: "revoke old key",
        }[rot.step]
        when = rot.next_try or now
        if rot.step is Step.HANDED_OFF and rot.grace_until is not None and rot.next_try is None:
            when = rot.grace_until
        escalated = is_escalated(expiry, key.policy, now) and rot.step in (
            Step.PLANNED,
            Step.CREATED,
            Step.VERIFIED,
        )
        state_name = rot.step.value
        if rot.last_error and rot.next_try is not None:
            state_name = "failed"
        if escalated:
            state_name = "escalated"
        reason = note or (
            f"retrying after: {rot.last_error}"
            if rot.last_error
            else f"rotation {rot.id} ({rot.reason})"
        )
        if rot.step is Step.HANDED_OFF and not rot.last_error:
            reason = "grace period for consumers of the old key"
            if (
                key.ack is not None
                and rot.acked_at is None
                and state.previous is not None
                and rot.grace_until is not None
                and now >= rot.grace_until
            ):
                state_name = "awaiting_ack"
                reason = "waiting for the consumer to acknowledge the new key"
        return self._report(
            key,
            state,
            expiry,
            now,
            state=state_name,
            next_action=action,
            next_at=when,
            reason=reason,
            rotation_reason=rot.reason,
            last_error=rot.last_error,
            escalated=escalated,
            step_attempted=attempted,
        )

    def _unknown_report(self, key: ManagedKey, error: str, failure: str | None = None) -> KeyReport:
        return KeyReport(
            name=key.name,
            account=key.account,
            sub_uid=key.spec.sub_uid,
            state="failed",
            next_action="retry",
            reason=error,
            last_error=error,
            failure=failure,
        )


# ====================================================================== pure helpers
def verification_problems(
    spec: KeySpec, info: ExchangeKey, policy: RotationPolicy, now: datetime
) -> list[str]:
    """What differs between the spec and what query-api (signed by the new key) reports."""
    problems = spec_mismatches(spec, info)
    if info.is_master:
        problems.append("the new key is a master key")
    if info.user_id is not None and info.user_id != spec.sub_uid:
        problems.append(f"the new key belongs to UID {info.user_id}, wanted {spec.sub_uid}")
    if spec.is_ip_bound:
        if info.expires_at is not None and info.expires_at < now + policy.renew_before:
            problems.append("the IP-bound key expires soon (password change pending?)")
    elif info.expires_at is None:
        problems.append("the unbound key reports no expiry")
    elif info.expires_at <= now + policy.renew_before:
        problems.append(
            f"the new key expires at {info.expires_at:%Y-%m-%d %H:%M}Z, before it would be due "
            "for renewal: lower renew_before or check the account"
        )
    return problems


def consumer_record(key: ManagedKey, pending: PendingKey, rotation_id: str) -> dict[str, Any]:
    """What bots read at the key's Vault path."""
    return {
        "api_key": pending.key_id,
        "api_secret": pending.secret.reveal(),
        "created_at": pending.created_at.isoformat(),
        "expires_at": pending.expires_at.isoformat() if pending.expires_at else None,
        "rotation_id": rotation_id,
        "account": key.account,
        "sub_uid": key.spec.sub_uid,
        "read_only": key.spec.read_only,
        "ips": list(key.spec.ips) or ["*"],
        "permissions": permissions_as_dict(key.spec.permissions),
    }


def _failure_class(exc: RotatorError) -> str:
    """A bounded label for metrics (rotator/failures.py)."""
    return failure_class(exc).value


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"
