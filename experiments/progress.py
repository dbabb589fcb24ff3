"""A small progress bar on stderr: done/total, elapsed time and an estimate of the rest.

On a terminal the bar redraws in place (at most a few times per second); otherwise (CI logs,
files) it prints one line whenever another 10% of the cells is done or a minute has passed.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

__all__ = ["ProgressBar", "format_duration"]


def format_duration(s: float) -> str:
    """``1:02:03`` / ``2:03`` style; ``?`` when unknown."""
    if s is None or not math.isfinite(s) or s < 0:
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class ProgressBar:
    """Progress of a grid of cells.

    The estimate of the remaining time is the sum, over the cells left, of the mean time of
    finished cells with the same method (else the mean over all finished cells, else the
    cell's time limit), divided by the number of parallel workers.

    Parameters
    ----------
    total : int
        Number of cells to run.
    workers : int
        Cells running in parallel.
    stream : text stream, optional
        Defaults to ``sys.stderr``.
    enabled : bool
        False turns every call into a no-op.
    """

    def __init__(self, total: int, *, workers: int = 1, stream: TextIO | None = None,
                 enabled: bool = True, label: str = "cells") -> None:
        self.total = total
        self.workers = max(1, workers)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and total > 0
        self.label = label
        self.done = 0
        self.errors = 0
        self.t0 = time.monotonic()
        self._times: dict[str, list[float]] = {}
        self._left: dict[str, list[float]] = {}
        self._last_draw = 0.0
        self._last_line_frac = -1.0
        self._last_line_t = self.t0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.current = ""

    def plan(self, method: str, time_limit_s: float) -> None:
        """Register one pending cell (its method and time limit) for the estimate."""
        self._left.setdefault(method, []).append(time_limit_s)

    def eta(self) -> float:
        """Estimated seconds until every cell is done."""
        all_t = [t for ts in self._times.values() for t in ts]
        mean_all = sum(all_t) / len(all_t) if all_t else None
        rest = 0.0
        for m, limits in self._left.items():
            ts = self._times.get(m)
            if ts:
                rest += len(limits) * sum(ts) / len(ts)
            elif mean_all is not None:
                rest += len(limits) * min(mean_all, sum(limits) / len(limits))
            else:
                rest += sum(limits)
        return rest / self.workers

    def update(self, method: str, seconds: float, *, error: bool = False) -> None:
        """One cell of ``method`` finished after ``seconds``."""
        self.done += 1
        self.errors += int(error)
        self._times.setdefault(method, []).append(seconds)
        left = self._left.get(method)
        if left:
            left.pop()
        self.draw()

    def draw(self, force: bool = False) -> None:
        """Redraw (rate-limited on a terminal)."""
        if not self.enabled:
            return
        now = time.monotonic()
        frac = self.done / self.total if self.total else 1.0
        if self.tty:
            if not force and now - self._last_draw < 0.25 and self.done < self.total:
                return
            self._last_draw = now
            self.stream.write("\r" + self._line(now, frac, width=24)[: 150] + "\x1b[K")
            self.stream.flush()
        else:
            if (force or frac - self._last_line_frac >= 0.1 or now - self._last_line_t >= 60
                    or (self.done == self.total and self._last_line_frac < 1.0)):
                self._last_line_frac = frac
                self._last_line_t = now
                self.stream.write(self._line(now, frac, width=20) + "\n")
                self.stream.flush()

    def _line(self, now: float, frac: float, width: int) -> str:
        fill = int(round(frac * width))
        bar = "#" * fill + "." * (width - fill)
        err = f", {self.errors} errors" if self.errors else ""
        cur = f"  {self.current}" if self.current and self.tty else ""
        if self.done >= self.total:
            left = "0:00"
        elif self.done < min(3, self.total):
            left = "?"  # no measurement yet; the time limits alone would say days
        else:
            left = format_duration(self.eta())
        return (f"[{bar}] {self.done}/{self.total} {self.label}{err}  "
                f"elapsed {format_duration(now - self.t0)}  left ~{left}{cur}")

    def close(self) -> None:
        """Final redraw and newline."""
        if not self.enabled:
            return
        if self.tty or self._last_line_frac < 1.0:
            self.draw(force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
