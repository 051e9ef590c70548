"""Process-wide settings the embedded interpreter needs, applied by the
plugin on the host's main thread at start-up (never by the unit tests).

- ``enable_faulthandler``: a crash in C code (a segfault in an extension,
  ``abort()``) prints every Python thread's traceback on the host's stderr
  (fd 2) before the process dies.
- ``restore_sigint``: importing ``signal`` makes CPython take over SIGINT to
  raise ``KeyboardInterrupt``; the host handles SIGINT itself (like
  SIGTERM: graceful shutdown, hooks included), so the default comes back.
- ``hook_os_exit``: ``os._exit`` ends the process without shutdown or
  flushing; a line on stderr first names who called it.

What stays invisible: SIGKILL (the OOM killer included), and C code calling
``_exit``/``exit`` itself. The host's log shows neither.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import types
from collections.abc import Callable
from typing import Any, NoReturn

__all__ = ["enable_faulthandler", "hook_os_exit", "restore_sigint"]

_STDERR = 2


def enable_faulthandler() -> None:
    """Python tracebacks of all threads on fd 2 when the process crashes."""
    faulthandler.enable(file=_STDERR, all_threads=True)


def restore_sigint() -> None:
    """Gives SIGINT back to the default disposition if CPython took it, so
    the host's own handler (installed later) is the only one."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)


def hook_os_exit(describe: Callable[[types.FrameType | None], str]) -> None:
    """Wraps ``os._exit`` to write one line to fd 2 naming the caller
    (``describe(frame)``) first; in this process only, not in forked
    children, whose ``os._exit`` is routine."""
    real_exit = getattr(os._exit, "__wrapped__", os._exit)
    pid = os.getpid()

    def _exit(status: Any) -> NoReturn:
        if os.getpid() == pid:
            try:
                caller = describe(sys._getframe(1))
                line = (
                    f"spikard_python: os._exit({status!r}) called by {caller}: "
                    "the process ends now, without shutdown hooks or answers to requests in flight\n"
                )
                os.write(_STDERR, line.encode("utf-8", "replace"))
            except BaseException:  # noqa: BLE001, S110 - exiting anyway
                pass
        real_exit(status)
        raise AssertionError("os._exit returned")  # pragma: no cover

    _exit.__wrapped__ = real_exit  # type: ignore[attr-defined]
    os._exit = _exit
