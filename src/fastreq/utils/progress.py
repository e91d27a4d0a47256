"""Progress of a batch: a live bar on the terminal and/or a callback for programs.

The bar (tqdm) shows done/total, rate and the error count; nothing is printed unless
``progress=True``. ``progress_callback(done, total)`` is called after every outcome
(``total`` is ``None`` for an input of unknown length).

Example::

    fastreq(urls, progress=True)
    fastreq(urls, progress_callback=lambda done, total: print(done, total))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["Progress", "ProgressCallback"]

ProgressCallback = Callable[[int, "int | None"], Any]


class Progress:
    """Counts outcomes and reports them to a bar and/or a callback."""

    __slots__ = ("_bar", "_callback", "_last_postfix", "done", "errors", "total")

    def __init__(
        self, total: int | None, *, bar: bool = False, callback: ProgressCallback | None = None
    ) -> None:
        self.total = total
        self.done = 0
        self.errors = 0
        self._callback = callback
        self._last_postfix = 0.0
        self._bar: Any = None
        if bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="req", desc="fastreq", dynamic_ncols=True,
                             smoothing=0.1)

    @property
    def active(self) -> bool:
        return self._bar is not None or self._callback is not None

    def advance(self, failed: bool) -> None:
        self.done += 1
        if failed:
            self.errors += 1
        bar = self._bar
        if bar is not None:
            bar.update(1)
            now = time.monotonic()
            if failed or now - self._last_postfix > 0.5:
                self._last_postfix = now
                bar.set_postfix(errors=self.errors, refresh=False)
        if self._callback is not None:
            self._callback(self.done, self.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix(errors=self.errors, refresh=False)
            self._bar.close()
            self._bar = None
