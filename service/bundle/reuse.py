"""What a worker's last good load built, by the bytes it was built from: a reload rebuilds what changed.

A rule edit used to recompile the whole bundle in every worker: 50 to 90 ms of CPU, two thirds
of it the Jinja templates and a fifth the YAML files that had not changed, in a thread that
shares the GIL with the event loop serving page views (docs/BENCHMARKS.md, "Memory and
reloads"). A part is kept under a digest of exactly the bytes it was made from, with the file
names, so it is reused only where building it again would give the same thing.

Only a load that succeeds replaces what is kept, and it keeps only the parts it used: a broken
edit leaves the parts of the bundle being served for the fix that follows, and nothing piles up.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from pydantic import BaseModel

from service.bundle.yamlfile import YamlDocument
from service.core.models import Scorer
from service.core.rendering import Blocks
from service.render.blocks import Made

Key = bytes


def digest(*parts: bytes | str) -> Key:
    """A digest of ``parts`` in order; each is length-prefixed, so ("ab", "c") and ("a", "bc") differ."""
    hashed = hashlib.blake2b(digest_size=16)
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        hashed.update(len(data).to_bytes(8, "little"))
        hashed.update(data)
    return hashed.digest()


@dataclass
class Parts:
    """Parsed and validated files, model scorers and compiled blocks, each by its key.

    ``templates`` are the parsed and compiled templates one by one, so that a template edit
    compiles only the edited template, not every one (11 ms of CPU per reload instead of 65).
    """

    files: dict[Key, tuple[YamlDocument, BaseModel]] = field(default_factory=dict)
    models: dict[Key, Scorer] = field(default_factory=dict)
    blocks: dict[Key, Blocks] = field(default_factory=dict)
    templates: Made = field(default_factory=Made)


@dataclass
class Reuse:
    """The parts of the last load that succeeded; one per bundle store (its loads never overlap)."""

    kept: Parts = field(default_factory=Parts)

    def keep(self, used: Parts) -> None:
        """A load succeeded with ``used``: those are the parts the next load may take."""
        self.kept = used
