"""Hot reload: notice that a policy file or directory changed, off the request path.

`PolicyWatcher` polls in a daemon thread. Polling (mtime, size, then a content hash)
needs no platform file-notification API, survives editors that replace files by rename,
and costs one `stat` per file per interval. When the content really changed it calls
back; the callback compiles the new `PolicySet` in this thread and swaps one reference,
so requests never wait for a reload.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["POLICY_SUFFIXES", "PolicyWatcher", "policy_files"]

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
