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
LOG_FORMATS = ("json", "text")


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
    log_format: str = "json"
    """TAILOR_LOG_FORMAT: json (one object a line, with the decision id) or text."""
    state_dir: Path | None = None
    """TAILOR_STATE_DIR: shared by the workers of one server: last good bundle, reload trigger,
    metrics. ``tailor serve`` makes a temporary one when unset."""
    reload_interval: float = 0.5
    """TAILOR_RELOAD_INTERVAL: seconds between checks of the bundle folder; 0 turns watching off."""
    admin_token: str | None = None
    """TAILOR_ADMIN_TOKEN: bearer token of the admin endpoints; unset turns them off."""
    bundle_url: str = ""
    """TAILOR_BUNDLE_URL: pull the bundle archive (``tailor bundle build``) from this HTTP origin
    instead of reading TAILOR_BUNDLE; empty: read the folder."""
    bundle_cache: Path | None = None
    """TAILOR_BUNDLE_CACHE: where the last good archive from the origin is kept, to start from it
    when the origin is down; default: STATE_DIR/origin. Make it persistent."""
    bundle_poll_seconds: float = 30.0
    """TAILOR_BUNDLE_POLL_SECONDS: seconds between polls of the origin (with ±20 % jitter)."""
    cors_origins: str = ""
    """TAILOR_CORS_ORIGINS: comma-separated origins allowed to call the API from browsers; empty: none."""

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
        return {PREFIX + f.name.upper(): str(v) for f in fields(self) if (v := getattr(self, f.name)) is not None}


def _convert(name: str, kind: str, raw: str) -> object:
    if kind == "int":
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{PREFIX}{name.upper()}={raw!r} is not a whole number") from None
        if value < 0:
            raise ValueError(f"{PREFIX}{name.upper()}={raw!r} must not be negative")
        return value
    if kind in ("Path", "Path | None"):
        return Path(raw)
    if kind == "float":
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"{PREFIX}{name.upper()}={raw!r} is not a number") from None
        if number < 0:
            raise ValueError(f"{PREFIX}{name.upper()}={raw!r} must not be negative")
        return number
    if name == "log_format" and raw not in LOG_FORMATS:
        raise ValueError(f"{PREFIX}LOG_FORMAT={raw!r} is not one of {', '.join(LOG_FORMATS)}")
    if name == "log_level":
        if raw.upper() not in LOG_LEVELS:
            raise ValueError(f"{PREFIX}LOG_LEVEL={raw!r} is not one of {', '.join(LOG_LEVELS)}")
        return raw.upper()
    return raw
