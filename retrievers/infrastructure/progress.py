"""Progress for every long step, on a terminal and off it.

On a terminal: a tqdm bar. Otherwise (CI logs, cluster jobs, a pipe): a log line every
``$RBENCH_PROGRESS_EVERY`` seconds (default 10) with count, rate and ETA, and a closing line, for steps that
run longer than ``min_seconds`` (2): ``rbench: dense encode: 2,048/5,183 passages (61/s, ETA 51s)``.
Quick steps print nothing. ``RBENCH_PROGRESS=0`` silences both.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterable, Iterator


def fmt_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


class Progress:
    def __init__(self, total: int | None, desc: str, unit: str = "", *, min_seconds: float = 2.0,
                 every: float | None = None, stream: Any = None) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream or sys.stderr
        self.enabled = os.environ.get("RBENCH_PROGRESS", "1") not in ("0", "false", "no")
        self.every = float(every if every is not None else os.environ.get("RBENCH_PROGRESS_EVERY", 10))
        self.min_seconds = min_seconds
        self.done = 0
        self.start = self.last = time.monotonic()
        self.lines = 0
        self.bar = None
        if self.enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=f" {unit}" if unit else "it", leave=False, file=self.stream)

    def _line(self, final: bool = False) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.done / elapsed
        count = f"{self.done:,}" + (f"/{self.total:,}" if self.total else "")
        if final:
            return f"rbench: {self.desc}: {count} {self.unit} in {fmt_seconds(elapsed)} ({rate:,.1f}/s)"
        eta = f", ETA {fmt_seconds((self.total - self.done) / rate)}" if self.total and rate > 0 else ""
        return f"rbench: {self.desc}: {count} {self.unit} ({rate:,.1f}/s{eta})"

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.start >= self.min_seconds and now - self.last >= self.every:
            print(self._line(), file=self.stream, flush=True)
            self.last, self.lines = now, self.lines + 1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.enabled and time.monotonic() - self.start >= self.min_seconds:
            print(self._line(final=True), file=self.stream, flush=True)
            self.lines += 1
        self.enabled = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(items: Iterable[Any], desc: str, unit: str = "", total: int | None = None, **kw: Any) -> Iterator[Any]:
    """Iterate ``items`` with :class:`Progress` (one update per item)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit, **kw) as p:
        for item in items:
            yield item
            p.update(1)
