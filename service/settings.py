"""Settings: one frozen object, read from the environment once at start-up.

Nothing else in the service reads the environment. Every field below is listed,
with its variable and default, in README.md ("Settings").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

PREFIX = "TAILOR_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True, slots=True)
class Settings:
    bundle: Path = Path(".")
    """TAILOR_BUNDLE: the bundle folder (holding rules/ and content/)."""
    host: str = "127.0.0.1"
    """TAILOR_HOST: the address to listen on."""
    port: int = 8080
    """TAILOR_PORT: the port to listen on."""
    workers: int = 1
    """TAILOR_WORKERS: server worker processes; each holds its own compiled bundle."""
    max_body_bytes: int = 64 * 1024
    """TAILOR_MAX_BODY_BYTES: larger request bodies get 413."""
    max_attributes: int = 256
    """TAILOR_MAX_ATTRIBUTES: most values (counting nested ones) a visitor may send."""
    max_attribute_depth: int = 6
    """TAILOR_MAX_ATTRIBUTE_DEPTH: deepest nesting of visitor attributes."""
    max_text_length: int = 4096
    """TAILOR_MAX_TEXT_LENGTH: longest text value in visitor attributes."""
    max_placements: int = 64
    """TAILOR_MAX_PLACEMENTS: most placements one request may ask for."""
    log_level: str = "INFO"
    """TAILOR_LOG_LEVEL: DEBUG, INFO, WARNING or ERROR."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``TAILOR_*`` variables; a malformed value is an error naming the variable."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f.name, str(f.type), raw)
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The variables that recreate these settings, for worker processes."""
        return {PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)}


def _convert(name: str, kind: str, raw: str) -> object:
    if kind == "int":
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{PREFIX}{name.upper()}={raw!r} is not a whole number") from None
        if value < 0:
            raise ValueError(f"{PREFIX}{name.upper()}={raw!r} must not be negative")
        return value
    if kind == "Path":
        return Path(raw)
    if name == "log_level":
        if raw.upper() not in LOG_LEVELS:
            raise ValueError(f"{PREFIX}LOG_LEVEL={raw!r} is not one of {', '.join(LOG_LEVELS)}")
        return raw.upper()
    return raw
