"""The parts of the rotation engine, one concept per module (`rotator.rotation.Engine` wires them).

- `parts`: what one account's run acts through (Bybit, Vault, clock, lease) and what it learnt.
- `records`: every state record read and write: fenced, token-stamped, check-and-set.
- `claims`: a replica records that it is about to cause a step's side effect.
- `key_run`: the reconcile loop of one key: plan, then step after step, until it waits.
- `reasons`: whether (and why) a key without a rotation in flight must rotate now (pure).
- `steps`: the protocol steps, each a function over the rotation it acts on.
- `guarded_delete`: the one way a key is deleted on Bybit (never one a record points at).
- `step_failure`: a failed step recorded with backoff, and reported.
- `orphan_sweep`: the account's orphans judged from the whole picture, and deleted.
- `adopt`: an existing key taken under management.
"""
