"""SIGTERM and Ctrl-C end a run in progress as KILLED: both raise in the main thread, and neither can be swallowed
by a finaliser."""

from __future__ import annotations

import signal
import sys


class Terminated(KeyboardInterrupt):
    """SIGTERM (SLURM time limits, ``timeout``, ``docker stop``), raised like Ctrl-C so a run in progress is
    marked KILLED by the tracker instead of being left RUNNING."""


def _on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _redeliver_swallowed_interrupt(unraisable) -> None:
    """``sys.unraisablehook``: a signal that arrives while Python runs a finaliser or a weakref callback (a
    SQLAlchemy or MLflow object being collected) raises inside it, and Python only prints "Exception ignored"
    and goes on -- the run would finish with exit 0 as if never interrupted. Such an interrupt is raised again:
    another thread marks the signal pending 50 ms later, and its handler runs in the main thread's own code."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        import _thread
        import threading

        # from another thread, a moment later: tripped now, the handler would run inside this hook (swallowed again)
        signum = signal.SIGTERM if isinstance(unraisable.exc_value, Terminated) else signal.SIGINT
        try:
            timer = threading.Timer(0.05, _thread.interrupt_main, args=(signum,))
            timer.daemon = True
            timer.start()
        except RuntimeError:  # the interpreter is shutting down: nothing is left to stop
            pass
        return
    sys.__unraisablehook__(unraisable)


def install_signal_handlers() -> None:
    """SIGTERM raises ``Terminated``, SIGINT ``KeyboardInterrupt``, and neither can be swallowed by a finaliser."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sys.unraisablehook = _redeliver_swallowed_interrupt
