"""What numba compiles for fastknn in this process: a notice on first use, and a record.

Numba compiles a kernel the first time it is called with new argument types,
unless its on-disk cache already holds it, and emits a ``numba:compile``
event around each compilation (never for a kernel loaded from the cache).
fastknn listens to those events for two things:

- the first time one of its kernels compiles in a process, one line on
  stderr says so, so that a pause of seconds is not taken for a hang
  (``FASTKNN_COMPILE_NOTICE=0`` turns it off);
- every compilation of a fastknn kernel is recorded (name, seconds of CPU,
  whether it was compiled for another kernel), for ``fastknn warmup
  --profile`` and for the tests that check what a call compiles.
"""

import os
import sys
import threading
import time
from typing import NamedTuple

from numba.core import event

NOTICE = (
    "fastknn: compiling its numba kernels for first use (seconds, once: they are cached on disk; "
    "`python -m fastknn warmup` compiles them ahead)"
)


class Compilation(NamedTuple):
    """One compilation of a fastknn kernel.

    Attributes
    ----------
    kernel : str
        ``module.qualified_name`` of the kernel, e.g. ``topk._scan_values``.
    signature : str
        The argument types it was compiled for.
    cpu_seconds : float
        CPU time of the compilation, the callees compiled for it included.
    own_seconds : float
        The same less the fastknn kernels compiled for it (numba's own
        helpers, such as ``np.empty``'s implementation, stay included), so
        that the ``own_seconds`` of all compilations add up to the whole.
    nested : bool
        Whether it was compiled because another kernel being compiled calls it.
    """

    kernel: str
    signature: str
    cpu_seconds: float
    own_seconds: float
    nested: bool


class _Recorder(event.Listener):
    """Listens to ``numba:compile`` and keeps the fastknn kernels' compilations."""

    def __init__(self):
        self.compilations = []
        self.notice_shown = False
        self.callbacks = []
        self._starts = threading.local()

    def on_start(self, ev):
        stack = getattr(self._starts, "stack", None)
        if stack is None:
            stack = self._starts.stack = []
        stack.append([time.thread_time(), 0.0])  # start, fastknn callees' seconds
        if not _is_fastknn(ev):
            return
        if not self.notice_shown and os.environ.get("FASTKNN_COMPILE_NOTICE", "1") != "0":
            self.notice_shown = True
            print(NOTICE, file=sys.stderr, flush=True)
        for callback in tuple(self.callbacks):
            callback()

    def on_end(self, ev):
        stack = self._starts.stack
        started, callees = stack.pop()
        if _is_fastknn(ev):
            seconds = time.thread_time() - started
            self.compilations.append(
                Compilation(_kernel_name(ev), str(ev.data["args"]), seconds, seconds - callees, bool(stack))
            )
            if stack:
                stack[-1][1] += seconds


def _is_fastknn(ev):
    module = getattr(ev.data["dispatcher"].py_func, "__module__", "") or ""
    return module.startswith("fastknn.")


def _kernel_name(ev):
    function = ev.data["dispatcher"].py_func
    module = function.__module__.removeprefix("fastknn.").removeprefix("_kernels.")
    return f"{module}.{function.__qualname__}"


_recorder = None
_lock = threading.Lock()


def listen():
    """Start listening to numba's compile events (once per process; cheap)."""
    global _recorder
    with _lock:
        if _recorder is None:
            _recorder = _Recorder()
            event.register("numba:compile", _recorder)


def quiet():
    """No first-use notice in this process (for callers that report progress themselves)."""
    listen()
    _recorder.notice_shown = True


def when_compiling(callback):
    """Call ``callback()`` each time a fastknn kernel starts compiling in this process.

    It runs in the compiling thread, inside numba's compiler lock: it must
    be quick and must not call a kernel.

    Returns
    -------
    stop : callable
        Stops the calls.
    """
    listen()
    with _lock:
        _recorder.callbacks.append(callback)

    def stop():
        with _lock:
            if callback in _recorder.callbacks:
                _recorder.callbacks.remove(callback)

    return stop


def compilations():
    """The fastknn kernels compiled in this process so far, in order of completion.

    Returns
    -------
    list of Compilation
        Empty when every kernel called so far came from the on-disk cache.
    """
    listen()
    return list(_recorder.compilations)
