"""An exchange or store that delegates to the real one and raises once in a chosen method: the
unexpected exception (a bug, a reply no parser foresaw) the engine must survive."""

from __future__ import annotations

from typing import Any

from fixtures.simulator import MASTER_KEY


class Injector:
    """Delegates to the real exchange/store; raises once in the chosen method, quoting secrets."""

    def __init__(self, inner: Any, method: str | None, secrets: list[str], when=None) -> None:
        self._inner = inner
        self._method = method
        self._secrets = secrets
        self._when = when or (lambda *_a, **_k: True)
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target):
            return target

        def call(*args, **kwargs):
            if name == self._method and not self.fired and self._when(*args, **kwargs):
                self.fired = True
                master = MASTER_KEY  # a local holding the full key id, like the engine's frames
                raise RuntimeError(f"injected in {name}: {master} " + " ".join(self._secrets))
            result = target(*args, **kwargs)
            secret = getattr(result, "secret", None)
            if secret is not None and hasattr(secret, "reveal"):
                self._secrets.append(secret.reveal())
                self._secrets.append(result.key_id)
            return result

        return call
