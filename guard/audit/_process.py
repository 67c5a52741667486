"""Process-level care for audit logs: flush at interpreter exit and on SIGTERM, and give
a forked child writers of its own (pre-fork servers)."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["pin", "register"]


class _Log(Protocol):
    def close(self) -> None: ...

    def _after_fork(self) -> None: ...


_live: weakref.WeakSet[Any] = weakref.WeakSet()
_hooks_installed = False


def register(log: _Log) -> None:
    """Track `log` so exit, SIGTERM and fork handle it; installs the hooks once."""
    _live.add(log)
    _install_exit_hooks()


def forget(log: object) -> None:
    _live.discard(log)


def pin(obj: Any) -> None:
    """Keep `obj` alive until the process ends, interpreter shutdown included."""
    import ctypes

    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


def _reinit_in_child() -> None:
    for log in list(_live):  # (closed ones too, until their writer thread is done)
        log._after_fork()
    if _live:
        _flush_at_thread_shutdown()


def _flush_at_thread_shutdown() -> None:
    """Also flush when the threads shut down: a `multiprocessing` child (fork, forkserver)
    ends with `os._exit` right after that, and never runs `atexit`."""
    register_atexit = getattr(threading, "_register_atexit", None)
    if register_atexit is not None:
        with contextlib.suppress(Exception):  # shutting down already: atexit will do
            register_atexit(_close_all)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_in_child)


def _close_all() -> None:
    for log in list(_live):
        with contextlib.suppress(Exception):
            log.close()


def _on_sigterm(signum: int, frame: Any) -> None:
    _close_all()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _closing_before(handler: Callable[[int, Any], Any]) -> Callable[[int, Any], Any]:
    """A SIGTERM handler that closes the logs, then hands the signal to `handler`."""

    def on_sigterm(signum: int, frame: Any) -> Any:
        _close_all()
        return handler(signum, frame)

    return on_sigterm


def _install_exit_hooks() -> None:
    """Flush at interpreter exit, and on SIGTERM.

    A server that took SIGTERM over before the first log was made (uvicorn imports the
    app inside its signal capture with `--workers` or `--reload`) keeps its handler, after
    the logs are closed: at shutdown uvicorn puts back the handler it found (the default)
    and raises SIGTERM again, which ends the process with no `atexit` and nothing of
    what was queued. Records of requests still running then are spilled, for the next
    writer to adopt."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_close_all)
    _flush_at_thread_shutdown()
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError):
            current = signal.getsignal(signal.SIGTERM)
            if current is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _on_sigterm)
            elif callable(current):
                signal.signal(signal.SIGTERM, _closing_before(current))
