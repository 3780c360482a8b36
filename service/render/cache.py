"""A bounded cache of rendered blocks that counts its hits and misses.

A rendered block depends only on the bundle revision, the variant, the locale and
the values its template reads, and the key is exactly that (see ``reads.py``), so
two visitors who differ only in what the template ignores share one entry.
"""

from __future__ import annotations

from typing import Any

from cachetools import LRUCache

from service.core.rendering import Rendered

DEFAULT_ENTRIES = 10_000


class RenderCache:
    """An LRU of rendered blocks. Used from one event loop per worker, so it needs no lock."""

    def __init__(self, maxsize: int = DEFAULT_ENTRIES) -> None:
        self._entries: LRUCache[tuple[Any, ...], Rendered] | None = LRUCache(maxsize) if maxsize > 0 else None
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...]) -> Rendered | None:
        found = None if self._entries is None else self._entries.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: tuple[Any, ...], value: Rendered) -> None:
        if self._entries is not None:
            self._entries[key] = value

    def __len__(self) -> int:
        return 0 if self._entries is None else len(self._entries)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
