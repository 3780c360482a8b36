"""A bounded cache of rendered blocks that counts its hits and misses.

A rendered block depends only on the bundle revision, the variant, the locale and
the values its template reads, and the key is exactly that (see ``reads.py``), so
two visitors who differ only in what the template ignores share one entry.
"""

from __future__ import annotations

import sys
from typing import Any

from cachetools import LRUCache

from service.core.rendering import Rendered

DEFAULT_BYTES = 32 * 1024 * 1024
# Per entry, what _size cannot see: the (block, size) pair, the LRU's slots in its two dicts and
# its order list with their growth headroom. Measured with tracemalloc (tests/test_render_cache_bytes.py).
ENTRY_OVERHEAD = 560
_CONTAINERS = (tuple, list, frozenset, set)


def _deep(value: object) -> int:
    """Bytes of a key and what it holds: the values a template read, nested in tuples."""
    size = sys.getsizeof(value)
    if isinstance(value, _CONTAINERS):
        size += sum(_deep(item) for item in value)
    elif isinstance(value, dict):
        size += sum(_deep(k) + _deep(v) for k, v in value.items())
    return size


def _size(key: tuple[Any, ...], rendered: Rendered) -> int:
    # An email block is kilobytes and a hero a few hundred bytes: bound the cache by size, not by count.
    # Counting the HTML alone, a 32 MB budget held 57 MB: keys, the other texts and the LRU add up.
    texts = sum(sys.getsizeof(text) for text in (rendered.html, rendered.error, rendered.detail) if text is not None)
    return _deep(key) + sys.getsizeof(rendered) + texts + ENTRY_OVERHEAD


class RenderCache:
    """An LRU of rendered blocks, bounded in bytes: a worker's, used on its event loop only (ADR 0015)."""

    def __init__(self, max_bytes: int = DEFAULT_BYTES) -> None:
        self._entries: LRUCache[tuple[Any, ...], tuple[Rendered, int]] | None = (
            LRUCache(max_bytes, getsizeof=lambda entry: entry[1]) if max_bytes > 0 else None
        )
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...]) -> Rendered | None:
        found = None if self._entries is None else self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        return found[0]

    def put(self, key: tuple[Any, ...], value: Rendered) -> None:
        if self._entries is None:
            return
        size = _size(key, value)  # the LRU's getsizeof sees only the value: the key's size travels with it
        if size <= self._entries.maxsize:
            self._entries[key] = (value, size)

    def __len__(self) -> int:
        return 0 if self._entries is None else len(self._entries)
