"""The policy set in force and how it changes while the server runs.

`PolicyHolder` keeps the live (and shadow) `PolicySet` and swaps the live one by replacing
one reference: `add`, `remove` and `reload` compile the new set first, off the request path,
and a set that does not load never replaces the one in force (the failure is logged and
reported either way). `PolicyWatcher` polls a policy file or directory in a daemon thread:
polling (each file's identity, mtime, ctime and size, then a content hash) needs no
platform file-notification API, survives editors that replace files by rename and
directories swapped behind a symlink, and costs one `stat` per file per interval. A
change is loaded once the files have stayed the same for `SETTLE_SECONDS` (and put in
force only if they still have once loaded), so a file being written in pieces is not put
in force half-written (a prefix of a policy can be a valid, more permissive policy);
writing policies atomically (a temporary file renamed over the old one) makes that
certain.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard._settings import MAX_WAIT, MIN_WAIT, seconds
from guard.audit.redact import scrub, traceback_text
from guard.errors import GuardClosedError, PolicyError

if TYPE_CHECKING:
    from guard.policy.policyset import PolicySet

__all__ = [
    "RETRY_SECONDS",
    "SETTLE_SECONDS",
    "PolicyHolder",
    "PolicyWatcher",
    "load_policy_set",
    "policy_files",
]

logger = logging.getLogger("guard.reload")

SETTLE_SECONDS = 1.0  # a change is loaded once the files stayed the same this long
# a change that could not be read (an I/O error) is read again this long after
RETRY_SECONDS = 5.0

Signature = tuple[tuple[str, int, int, int, int, int], ...]

# The watchers whose thread runs, and the holders: a forked child (a pre-fork server's
# worker, gunicorn --preload) has neither a thread nor the lock a thread held at the fork.
_watchers: weakref.WeakSet[PolicyWatcher] = weakref.WeakSet()
_holders: weakref.WeakSet[PolicyHolder] = weakref.WeakSet()


def _watch_again_in_child() -> None:
    """Without this a worker decided with the policies of the moment it was forked
    forever: an edit revoking access never reached the processes that serve."""
    for holder in list(_holders):
        holder._lock = threading.Lock()  # (a parent's reload may have held it)
    for watcher in list(_watchers):
        watcher._after_fork()


os.register_at_fork(after_in_child=_watch_again_in_child)


def policy_files(path: Path) -> list[Path]:
    """The files a policy path stands for: itself, or the files the loader reads from a
    directory (`*.yaml` / `*.yml` directly in it, no dotfiles)."""
    from guard.policy.loader import directory_files

    try:
        if path.is_dir():
            return directory_files(path)
    except OSError:  # unlisted: the signature is empty, a change like a deletion
        return []
    return [path]


def _signature(path: Path) -> Signature:
    out = []
    files = policy_files(path)
    if files != [path]:
        # a directory: its own times too, which change when a file goes (the other files'
        # say nothing of it, and a deletion would be loaded without settling: a deploy
        # that replaces one file by another would run without its rules in between)
        files = [path, *files]
    for file in files:
        try:
            st = file.stat()
        except OSError:  # deleted between listing and stat: counts as a change
            continue
        # inode and device: a directory swapped behind a symlink keeps names, sizes and
        # (reproducible builds) mtimes; ctime cannot be set back from user space
        out.append((str(file), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size))
    return tuple(out)


def _digest(path: Path) -> str:
    from guard.policy.loader import read_policy_file

    h = hashlib.sha256()
    for file in policy_files(path):
        try:
            h.update(str(file).encode())
            h.update(b"\0")
            h.update(read_policy_file(file, regular_only=True))
            h.update(b"\0")
        except OSError:  # (a FIFO or a device named like a policy, too: never read)
            h.update(b"<unreadable>")
    return h.hexdigest()


class PolicyWatcher:
    """Calls `on_change()` when the policies under `path` change.

    Args:
        path: a policy file or a directory of policy files.
        on_change: called in the watcher thread; exceptions are logged, never raised.
        interval: seconds between polls.
        settle: seconds the files must stay unchanged before a change is acted on (0: at
            the first poll that sees it).

    Example:
        ```python
        watcher = PolicyWatcher(Path("policies/"), middleware.reload_policies, interval=1.0)
        watcher.start()
        ...
        watcher.stop()
        ```
    """

    def __init__(
        self,
        path: Path,
        on_change: Callable[[], object],
        interval: float,
        *,
        settle: float = SETTLE_SECONDS,
    ) -> None:
        self.path = path
        # the thread dies at its first wait on NaN, infinity or more than it can wait, and
        # spins below a millisecond
        self.interval = seconds(
            "watch interval", interval, positive=True, minimum=MIN_WAIT, maximum=MAX_WAIT
        )
        self.settle = settle
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._signature = _signature(path)
        self._digest = _digest(path)
        self._seen = self._signature  # the last signature a poll saw ...
        self._seen_at = time.monotonic()  # ... and when it first saw it
        self._retry_at: float | None = None  # when to read again what could not be read

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"guard-policy-watch:{self.path.name}", daemon=True
        )
        self._thread.start()
        _watchers.add(self)

    def stop(self) -> None:
        _watchers.discard(self)
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _after_fork(self) -> None:
        """In a forked child: the thread did not survive the fork; start one of its own."""
        if self._thread is None or self._stop.is_set():
            return
        self._stop, self._thread = threading.Event(), None
        self.start()

    def check(self) -> bool:
        """Poll once; call back and return True if the content changed and has stayed
        the same for `settle` seconds."""
        signature = _signature(self.path)
        now = time.monotonic()
        if signature != self._seen:  # still changing, maybe: wait for it to settle
            self._seen, self._seen_at = signature, now
        if signature == self._signature:
            if self._retry_at is None or now < self._retry_at:
                return False
        else:
            # settled: unchanged for `settle` seconds, by the files' last change (mtime or
            # ctime, which cannot be set back: a change seen late loads at once) or by this
            # watcher's polls (file times in the future; a path that is gone has no times:
            # an editor's rename-and-write or `rm && cp` leaves it missing for a moment)
            newest = max((max(f[3], f[4]) for f in signature), default=None)
            dated = newest is not None and (time.time_ns() - newest) / 1e9 >= self.settle
            if not dated and now - self._seen_at < self.settle:
                return False
            self._signature = signature
        self._retry_at = None
        digest = _digest(self.path)
        if digest == self._digest:  # touched, not changed
            return False
        self._digest = digest
        try:
            self._on_change()
        except Exception as exc:
            # The callback reports its own failures (a broken policy); this only keeps
            # the watcher alive whatever happens.
            logger.debug("policy reload callback failed\n%s", traceback_text(exc))
        return True

    def retry(self) -> None:
        """The change last acted on could not be read (an I/O error, not its content):
        act on it again at the first poll `RETRY_SECONDS` from now, though the files' times
        and sizes will say nothing new once they read again."""
        self._digest = ""
        self._retry_at = time.monotonic() + RETRY_SECONDS

    def changed_since(self) -> bool:
        """Whether the files changed since the change last acted on was seen: a load that
        read them since may have read a write that had only begun. That change is then
        acted on again once it has settled, whatever its content."""
        if _signature(self.path) == self._signature:
            return False
        self._digest = ""
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # never let a filesystem hiccup kill hot reload
                logger.warning(
                    "policy watcher poll failed for %s\n%s", self.path, traceback_text(exc)
                )


def _read_failed(exc: PolicyError) -> bool:
    """Whether loading failed on a policy file that is there but could not be read."""
    return any(
        p.code == "unreadable" and p.source is not None and os.path.lexists(p.source)
        for p in exc.problems
    )


def load_policy_set(source: Any) -> PolicySet:
    """`load_policies(source)`, passing through a compiled set (or one shaped like it)
    whose texts say what its policies hold."""
    from guard.policy.loader import load_policies, text_matches
    from guard.policy.policyset import PolicySet

    if isinstance(source, PolicySet):
        if all(map(text_matches, source.policies)):
            return source
        # Compiled from specs edited after loading (`dataclasses.replace` keeps the old
        # text): its hash is that of the set it was edited from, which decides otherwise,
        # and replay would load that one. Loaded again, each spec gets a text of its own.
        return load_policies(list(source.policies))
    if callable(getattr(source, "decide", None)) and isinstance(getattr(source, "hash", None), str):
        return source  # type: ignore[no-any-return]
    return load_policies(source)


def _specs(policy: Any) -> tuple[Any, ...]:
    """The validated specs of `policy` (any policy source), each with a text that says
    what it holds: the content hash and replay depend on it."""
    if callable(getattr(policy, "decide", None)) and isinstance(getattr(policy, "hash", None), str):
        return tuple(load_policy_set(policy).policies)
    from guard.policy.loader import parse_policies

    return tuple(parse_policies(policy))


def _watch_path(source: Any) -> Path:
    try:
        if isinstance(source, Path | str) and "\n" not in str(source):
            # the file the loader reads: a string's `~` is the home directory there
            path = Path(source).expanduser() if isinstance(source, str) else source
            if path.exists():
                return path
    except (OSError, RuntimeError):  # one-line policy text too long for a file name;
        pass  # `~nosuchuser/...`, a home directory that cannot be found
    raise ValueError("watch= needs `policies` to be a policy file or directory path")


class PolicyHolder:
    """The live policy set, an optional shadow set, and every way the live one changes.

    Args:
        source: what `load_policies` accepts; `None` starts with an empty set (deny all).
        shadow: a draft source decided next to the live set, never enforced.
        on_change: called with each set put in force, the first one included.
        on_failure: called with the set kept in force when a reload fails.
        on_loaded: called with each set, live or shadow, the first ones included, before
            it decides anything (so its texts are recorded before any record names it).
        on_shadow_failure: called when a draft does not load (the shadow set stays).
        watch: poll interval in seconds for `source` (a file or directory), or `None`.
            `reload(new_source)` moves the watch to the new source (or stops it, with a
            warning, when the new source is not a file or directory). A shadow draft
            that is a file or directory is watched too (and `set_shadow` moves that watch):
            an edit that does not load keeps the draft decided so far.

    After `close()` the policy sets stay as they are: `add`, `remove`, `reload` and
    `set_shadow` raise `GuardClosedError`, and a watcher poll still running changes nothing.

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
        on_loaded: Callable[[PolicySet], object] | None = None,
        on_shadow_failure: Callable[[], object] | None = None,
        watch: float | None = None,
    ) -> None:
        self.source = source
        self._interval = watch
        # Take the files' signature before loading them: an edit landing in between is
        # then seen by the first poll instead of being missed.
        self._watcher: PolicyWatcher | None = None
        if watch is not None:
            self._watcher = PolicyWatcher(_watch_path(source), self._reload_quietly, watch)
        self._shadow_source = shadow
        self._shadow_watcher = self._shadow_watcher_for(shadow)
        self._on_loaded = on_loaded
        self._on_shadow_failure = on_shadow_failure
        self._runtime: set[str] = set()  # policies put in force by `add`, not by the source
        self._closed = False
        if source is None:
            from guard.policy.policyset import PolicySet

            self.live: PolicySet = PolicySet.empty()
        else:
            self.live = load_policy_set(source)
        self._loaded = self.live.hash  # the set last loaded from the source
        self.shadow: PolicySet | None = None if shadow is None else load_policy_set(shadow)
        self._on_change = on_change
        self._on_failure = on_failure
        self._lock = threading.Lock()  # serializes edits; requests only read `live`
        _holders.add(self)
        if on_loaded is not None:
            on_loaded(self.live)
            if self.shadow is not None:
                on_loaded(self.shadow)
        if on_change is not None:
            on_change(self.live)
        for watcher in (self._watcher, self._shadow_watcher):
            if watcher is not None:
                watcher.start()

    def add(self, policy: Any) -> PolicySet:
        """Put `policy` in force next to the others (replacing one of the same name)."""
        from guard.policy.policyset import PolicySet

        with self._lock:
            self._check_open("add a policy")
            try:
                specs = _specs(policy)
                names = {s.name for s in specs}
                kept = [p for p in self.live.policies if p.name not in names]
                new = PolicySet.from_specs([*kept, *specs])
            except PolicyError as exc:
                self._failed("adding a policy failed", exc)
                raise
            self._runtime |= names
            return self._install(new)

    def remove(self, name: str) -> bool:
        """Take the policy called `name` out of force; return whether there was one."""
        from guard.policy.policyset import PolicySet

        with self._lock:
            self._check_open(f"remove policy {name!r}")
            kept = [p for p in self.live.policies if p.name != name]
            if len(kept) == len(self.live.policies):
                return False
            try:
                new = PolicySet.from_specs(kept)
            except PolicyError as exc:
                self._failed(f"removing policy {name!r} failed", exc)
                raise
            self._runtime.discard(name)
            self._install(new)
            return True

    def set_shadow(self, source: Any) -> PolicySet | None:
        """Decide `source` in shadow from now on (`None`: no shadow), watching it if it is
        a file or directory and policies are watched. A draft that does not load raises
        `PolicyError` and leaves the shadow set (and its watch) as it was."""
        new: PolicySet | None = None
        retired = started = None
        with self._lock:
            self._check_open("change the shadow draft")
            current = self._shadow_watcher
            # the new path's signature before loading it, as for the live source
            watcher = None if source is None else self._shadow_watcher_for(source, current)
            if source is not None:
                try:
                    new = load_policy_set(source)
                except PolicyError as exc:
                    kept = "none" if self.shadow is None else self.shadow.hash[:12]
                    logger.warning(
                        "shadow policy load failed; keeping shadow set %s: %s",
                        kept, scrub(str(exc)),
                    )  # fmt: skip
                    self._shadow_failed()
                    raise
                logger.info("shadow policy set %s decided from now on", new.hash[:12])
                self._loaded_now(new)
            self.shadow = new  # one reference swap, as for the live set
            self._shadow_source = source
            if watcher is not current:
                retired, self._shadow_watcher = current, watcher
                if watcher is not None and not self._closed:
                    started = watcher
        if started is not None:
            started.start()
        if retired is not None:  # outside the lock: its thread may be waiting for it
            retired.stop()
        return new

    def _shadow_watcher_for(
        self, source: Any, current: PolicyWatcher | None = None
    ) -> PolicyWatcher | None:
        """The watcher a shadow `source` needs: none unless policies are watched and it is
        a file or directory (`current` if it watches the same path)."""
        if self._interval is None or source is None:
            return None
        try:
            path = _watch_path(source)
        except ValueError:  # a draft given as text or a compiled set: nothing to watch
            return None
        if current is not None and current.path == path:
            return current
        return PolicyWatcher(path, self._reload_shadow_quietly, self._interval)

    def _reload_shadow_quietly(self) -> None:
        """The watched draft changed: decide its new content in shadow, or keep the draft
        decided so far if it does not load (logged)."""
        with self._lock:
            source, kept = self._shadow_source, self.shadow
            if source is None or kept is None or self._closed:  # (a poll running at close)
                return
            try:
                new = load_policy_set(source)
            except Exception as exc:
                logger.warning(
                    "shadow policy reload failed; keeping shadow set %s: %s",
                    kept.hash[:12], scrub(str(exc)),
                )  # fmt: skip
                self._shadow_failed()
                watcher = self._shadow_watcher
                if watcher is not None and isinstance(exc, PolicyError) and _read_failed(exc):
                    watcher.retry()
                return
            watcher = self._shadow_watcher
            if watcher is not None and watcher.changed_since():
                return  # read while being written, maybe: loaded once settled
            self._loaded_now(new)
            self.shadow = new
            logger.info("shadow policy set %s decided from now on", new.hash[:12])

    def _shadow_failed(self) -> None:
        if self._on_shadow_failure is not None:
            self._on_shadow_failure()

    def reload(self, source: Any = None) -> PolicySet:
        """Load `source` (default: the current source) and put it in force, or raise
        `PolicyError` and keep the set in force. Policies put in force by `add` and not
        in the source are dropped, with a warning naming them."""
        return self._reload(source)

    def _reload(self, source: Any = None, *, changed_only: bool = False) -> PolicySet:
        """`reload`; with `changed_only`, a source that loads to the set last loaded from
        it changes nothing: what `add` and `remove` did since stays in force."""
        retired: PolicyWatcher | None = None
        with self._lock:
            self._check_open("reload policies")
            src = self.source if source is None else source
            if src is None:
                raise PolicyError("no policy source to reload from")
            watcher = self._watcher
            if source is not None and self._interval is not None:
                # the new source's signature before loading it, as at construction (also
                # when a reload to a source that is no path stopped the watch)
                watcher = self._watcher_for(source)
            try:
                new = load_policy_set(src)
            except PolicyError as exc:
                if watcher is not self._watcher and watcher is not None:
                    watcher.stop()
                self._failed("policy reload failed", exc)
                raise
            if changed_only and source is None:
                if watcher is not None and watcher.changed_since():
                    return self.live  # read while being written, maybe: loaded once settled
                if new.hash == self._loaded:
                    return self.live
            if source is not None:
                self.source = source
                if watcher is not self._watcher:
                    retired, self._watcher = self._watcher, watcher
                    if watcher is not None and not self._closed:
                        watcher.start()
            dropped = sorted(self._runtime - set(new.names))
            if dropped:
                logger.warning(
                    "policy reload from the source drops policies added at runtime: %s",
                    ", ".join(dropped),
                )
            self._runtime.clear()
            self._loaded = new.hash
            installed = self._install(new)
        if retired is not None:  # outside the lock: its thread may be waiting for it
            retired.stop()
        return installed

    def _watcher_for(self, source: Any) -> PolicyWatcher | None:
        """The watcher `source` needs (the current one if it watches the same path)."""
        current = self._watcher
        try:
            path = _watch_path(source)
        except ValueError:
            if current is not None:
                logger.warning("policies are no longer watched: the new source is not a path")
            return None
        if current is not None and current.path == path:
            return current
        assert self._interval is not None  # policies are watched
        return PolicyWatcher(path, self._reload_quietly, self._interval)

    def _check_open(self, what: str) -> None:
        """Raise `GuardClosedError` once closed: the server is stopping, its watchers are
        stopped and its set is no longer reported, so a set put in force now would decide
        requests unreported (and unwatched)."""
        if self._closed:
            raise GuardClosedError(f"cannot {what}: the guard is closed")

    def _failed(self, what: str, exc: PolicyError) -> None:
        # the error may quote a value of the policy file: no credential in a log line
        shown = scrub(str(exc))
        logger.warning("%s; keeping policy set %s in force: %s", what, self.live.hash[:12], shown)
        if self._on_failure is not None:
            self._on_failure(self.live)

    def _loaded_now(self, new: PolicySet) -> None:
        """`new` is about to decide: its texts are recorded first (`on_loaded`)."""
        if self._on_loaded is not None:
            self._on_loaded(new)

    def _install(self, new: PolicySet) -> PolicySet:
        self._loaded_now(new)
        self.live = new  # one reference swap: a request sees the old set or the new one
        logger.info("policy set %s in force (%d policies)", new.hash[:12], len(new.policies))
        if self._on_change is not None:
            self._on_change(new)
        return new

    def _reload_quietly(self) -> None:
        # The watcher saw the files change; an explicit `reload` may already have put that
        # content in force, and runtime edits made since must not be undone by reloading it.
        try:
            self._reload(changed_only=True)
        except GuardClosedError:
            pass  # a poll that was running when the guard closed
        except PolicyError as exc:  # logged and reported; the old set stays in force
            watcher = self._watcher
            if watcher is not None and _read_failed(exc):
                watcher.retry()
        except Exception as exc:
            logger.warning(
                "policy reload failed; keeping the set in force\n%s", traceback_text(exc)
            )
            if self._on_failure is not None:
                self._on_failure(self.live)

    def close(self) -> None:
        """Stop watching; the policy sets no longer change. Idempotent."""
        with self._lock:  # a reload moving the watch finishes first, or starts none
            self._closed = True
            watchers = (self._watcher, self._shadow_watcher)
            self._watcher = self._shadow_watcher = None
        for watcher in watchers:
            if watcher is not None:
                watcher.stop()
