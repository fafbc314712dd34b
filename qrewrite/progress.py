"""Progress reports: a live bar where someone watches, plain lines in a log file.

A tqdm bar redraws itself with carriage returns; written to a log (``... 2>&1 | tee train.log``, a background
job) it leaves thousands of overwritten states on one line. Where stderr is not a terminal or a notebook, the
Trainer prints its loss logs as lines instead and :func:`progress_bar` prints a line per tenth of the work.
"""

from __future__ import annotations

import sys


def interactive() -> bool:
    """True in a terminal or a running Jupyter kernel (where a redrawn bar is shown as one bar)."""
    if sys.stderr.isatty():
        return True
    ipython = sys.modules.get("IPython")  # imported, not necessarily running: ask for the running shell
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


class LogProgress:
    """tqdm's ``update`` / context-manager interface, writing ``desc: done/total unit (pct %)`` every tenth (once
    for an update that crosses several)."""

    def __init__(self, total: int, desc: str, unit: str, file=None):
        self.total, self.desc, self.unit, self.done = total, desc, unit, 0
        self.file = file or sys.stderr
        self._next = 1

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.total or self._next > 10 or self.done * 10 < self._next * self.total:
            return
        print(f"{self.desc}: {self.done}/{self.total} {self.unit} ({100 * self.done // self.total} %)",
              file=self.file, flush=True)
        while self._next <= 10 and self.done * 10 >= self._next * self.total:
            self._next += 1

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(total: int, desc: str = "rewriting", unit: str = "q"):
    if interactive():
        from tqdm.auto import tqdm
        return tqdm(total=total, desc=desc, unit=unit)
    return LogProgress(total, desc, unit)
