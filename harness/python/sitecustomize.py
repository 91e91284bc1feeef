"""Loaded by every Python process the lesson harness starts.

The harness runs a lesson's reference script as
``python3 -P lessons/reference/NAME.py`` with ``PYTHONPATH=harness/python``, so Python
imports this module at startup in the main process and in every spawned or
forkserver child (a forked child inherits what it did). It makes a Python run
comparable with the Rust lesson:

- stdout is line-buffered, as on a terminal and as Rust's stdout: lines from different
  processes interleave whole, and a killed process loses nothing it printed
  (``PYTHONUNBUFFERED`` would split lines; block buffering would lose them);
- ``MPCORE_START_METHOD`` becomes the default start method (a script that calls
  ``set_start_method`` or ``get_context`` itself still gets what it asks for);
- every child appends ``PID NAME`` to the file named by ``MPCORE_PID_LOG`` as it
  starts, exactly as mpcore's children do, so the harness can show Python's pids as
  ``<pid Process-1>`` too.
"""

import os
import sys


def _line_buffered_stdout():
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass  # replaced or closed stdout: leave it alone


def _default_start_method():
    method = os.environ.get("MPCORE_START_METHOD")
    if not method:
        return
    import multiprocessing.context as context

    try:
        # What set_start_method would choose, without fixing it: the script may
        # still call set_start_method() itself.
        context._default_context._default_context = context._concrete_contexts[method]
    except (AttributeError, KeyError):
        pass


def _log_children():
    import multiprocessing.process as process

    bootstrap = process.BaseProcess._bootstrap
    if getattr(bootstrap, "_harness_logs_pid", False):
        return

    def _bootstrap(self, *args, **kwargs):
        path = os.environ.get("MPCORE_PID_LOG")
        if path:
            line = f"{os.getpid()} {self.name}\n".encode()
            # One write on an O_APPEND file: concurrent children never mix lines.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        return bootstrap(self, *args, **kwargs)

    _bootstrap._harness_logs_pid = True
    process.BaseProcess._bootstrap = _bootstrap


_line_buffered_stdout()
_default_start_method()
_log_children()
