"""The policy set in force and how it changes while the server runs.

`PolicyHolder` keeps the live (and shadow) `PolicySet` and swaps the live one by replacing
one reference: `add`, `remove` and `reload` compile the new set first, off the request path,
and a set that does not load never replaces the one in force. `PolicyWatcher` polls a
policy file or directory in a daemon thread: polling (mtime, size, then a content hash)
needs no platform file-notification API, survives editors that replace files by rename,
and costs one `stat` per file per interval.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard.errors import PolicyError

if TYPE_CHECKING:
    from guard.policy.policyset import PolicySet

__all__ = ["POLICY_SUFFIXES", "PolicyHolder", "PolicyWatcher", "load_policy_set", "policy_files"]

logger = logging.getLogger("guard.reload")

POLICY_SUFFIXES = (".yaml", ".yml", ".json")

Signature = tuple[tuple[str, int, int], ...]


def policy_files(path: Path) -> list[Path]:
    """The files a policy path stands for: itself, or the policy files under a directory."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in POLICY_SUFFIXES and p.is_file())
    return [path]


def _signature(path: Path) -> Signature:
    out = []
    for file in policy_files(path):
        try:
            st = file.stat()
        except OSError:  # deleted between listing and stat: counts as a change
            continue
        out.append((str(file), st.st_mtime_ns, st.st_size))
    return tuple(out)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    for file in policy_files(path):
        try:
            h.update(str(file).encode())
            h.update(b"\0")
            h.update(file.read_bytes())
            h.update(b"\0")
        except OSError:
            h.update(b"<missing>")
    return h.hexdigest()


class PolicyWatcher:
    """Calls `on_change()` when the policies under `path` change.

    Args:
        path: a policy file or a directory of policy files.
        on_change: called in the watcher thread; exceptions are logged, never raised.
        interval: seconds between polls.

    Example:
        ```python
        watcher = PolicyWatcher(Path("policies/"), middleware.reload_policies, interval=1.0)
        watcher.start()
        ...
        watcher.stop()
        ```
    """

    def __init__(self, path: Path, on_change: Callable[[], object], interval: float) -> None:
        if interval <= 0:
            raise ValueError(f"watch interval must be positive, got {interval!r}")
        self.path = path
        self.interval = interval
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._signature = _signature(path)
        self._digest = _digest(path)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"guard-policy-watch:{self.path.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def check(self) -> bool:
        """Poll once; call back and return True if the content changed."""
        signature = _signature(self.path)
        if signature == self._signature:
            return False
        self._signature = signature
        digest = _digest(self.path)
        if digest == self._digest:  # touched, not changed
            return False
        self._digest = digest
        try:
            self._on_change()
        except Exception:
            # The callback reports its own failures (a broken policy); this only keeps
            # the watcher alive whatever happens.
            logger.debug("policy reload callback failed", exc_info=True)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # never let a filesystem hiccup kill hot reload
                logger.warning("policy watcher poll failed for %s", self.path, exc_info=True)


def load_policy_set(source: Any) -> PolicySet:
    """`load_policies(source)`, passing through a compiled set (or one shaped like it)."""
    if callable(getattr(source, "decide", None)) and isinstance(getattr(source, "hash", None), str):
        return source  # type: ignore[no-any-return]
    from guard.policy.loader import load_policies

    return load_policies(source)


def _specs(policy: Any) -> tuple[Any, ...]:
    from guard.policy.spec import PolicySpec

    if isinstance(policy, PolicySpec):
        return (policy,)
    to_spec = getattr(policy, "to_spec", None)
    if callable(to_spec):
        return (to_spec(),)
    return tuple(load_policy_set(policy).policies)


def _watch_path(source: Any) -> Path:
    if isinstance(source, Path | str) and "\n" not in str(source) and Path(source).exists():
        return Path(source)
    raise ValueError("watch= needs `policies` to be a policy file or directory path")


class PolicyHolder:
    """The live policy set, an optional shadow set, and every way the live one changes.

    Args:
        source: what `load_policies` accepts; `None` starts with an empty set (deny all).
        shadow: a draft source decided next to the live set, never enforced.
        on_change: called with each set put in force, the first one included.
        on_failure: called with the set kept in force when a reload fails.
        watch: poll interval in seconds for `source` (a file or directory), or `None`.

    Example:
        ```python
        holder = PolicyHolder("policies.yaml", watch=1.0)
        decision = holder.live.decide(request)
        holder.close()
        ```
    """

    def __init__(
        self,
        source: Any,
        *,
        shadow: Any = None,
        on_change: Callable[[PolicySet], object] | None = None,
        on_failure: Callable[[PolicySet], object] | None = None,
        watch: float | None = None,
    ) -> None:
        self.source = source
        # Take the files' signature before loading them: an edit landing in between is
        # then seen by the first poll instead of being missed.
        self._watcher: PolicyWatcher | None = None
        if watch is not None:
            self._watcher = PolicyWatcher(_watch_path(source), self._reload_quietly, watch)
        if source is None:
            from guard.policy.policyset import PolicySet

            self.live: PolicySet = PolicySet.empty()
        else:
            self.live = load_policy_set(source)
        self.shadow: PolicySet | None = None if shadow is None else load_policy_set(shadow)
        self._on_change = on_change
        self._on_failure = on_failure
        self._lock = threading.Lock()  # serializes edits; requests only read `live`
        if on_change is not None:
            on_change(self.live)
        if self._watcher is not None:
            self._watcher.start()

    def add(self, policy: Any) -> PolicySet:
        """Put `policy` in force next to the others (replacing one of the same name)."""
        from guard.policy.policyset import PolicySet

        specs = _specs(policy)
        with self._lock:
            names = {s.name for s in specs}
            kept = [p for p in self.live.policies if p.name not in names]
            return self._install(PolicySet.from_specs([*kept, *specs]))

    def remove(self, name: str) -> bool:
        """Take the policy called `name` out of force; return whether there was one."""
        from guard.policy.policyset import PolicySet

        with self._lock:
            kept = [p for p in self.live.policies if p.name != name]
            if len(kept) == len(self.live.policies):
                return False
            self._install(PolicySet.from_specs(kept))
            return True

    def reload(self, source: Any = None) -> PolicySet:
        """Load `source` (default: the current source) and put it in force, or raise
        `PolicyError` and keep the set in force."""
        with self._lock:
            src = self.source if source is None else source
            if src is None:
                raise PolicyError("no policy source to reload from")
            try:
                new = load_policy_set(src)
            except PolicyError as exc:
                logger.warning(
                    "policy reload failed; keeping policy set %s in force: %s",
                    self.live.hash[:12],
                    exc,
                )
                if self._on_failure is not None:
                    self._on_failure(self.live)
                raise
            if source is not None:
                self.source = source
            return self._install(new)

    def _install(self, new: PolicySet) -> PolicySet:
        self.live = new  # one reference swap: a request sees the old set or the new one
        logger.info("policy set %s in force (%d policies)", new.hash[:12], len(new.policies))
        if self._on_change is not None:
            self._on_change(new)
        return new

    def _reload_quietly(self) -> None:
        try:
            self.reload()
        except PolicyError:
            pass  # logged and reported by `reload`; the old set stays in force
        except Exception:
            logger.warning("policy reload failed; keeping the set in force", exc_info=True)
            if self._on_failure is not None:
                self._on_failure(self.live)

    def close(self) -> None:
        """Stop watching. Idempotent."""
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
