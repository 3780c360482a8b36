"""A bounded cache of rendered blocks that counts its hits and misses.

A rendered block depends only on the bundle revision, the variant, the locale and
the values its template reads, and the key is exactly that (see ``reads.py``), so
two visitors who differ only in what the template ignores share one entry.
"""

from __future__ import annotations

from typing import Any

from cachetools import LRUCache

from service.core.rendering import Rendered

DEFAULT_BYTES = 32 * 1024 * 1024
ENTRY_OVERHEAD = 400  # the key, the Rendered object and the LRU's bookkeeping, roughly


def _size(rendered: Rendered) -> int:
    # An email block is kilobytes and a hero a few hundred bytes: bound the cache by size, not by count.
    return len(rendered.html) * 2 + ENTRY_OVERHEAD  # str is up to 2 bytes a character for most scripts


class RenderCache:
    """An LRU of rendered blocks, bounded in bytes. Used from one event loop per worker: no lock needed."""

    def __init__(self, max_bytes: int = DEFAULT_BYTES) -> None:
        self._entries: LRUCache[tuple[Any, ...], Rendered] | None = (
            LRUCache(max_bytes, getsizeof=_size) if max_bytes > 0 else None
        )
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
        if self._entries is not None and _size(value) <= self._entries.maxsize:
            self._entries[key] = value

    def __len__(self) -> int:
        return 0 if self._entries is None else len(self._entries)
