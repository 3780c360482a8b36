"""Settings: one frozen object, read from the environment once at start-up.

Nothing else in the service reads the environment. Every field below is listed,
with its variable and default, in README.md ("Settings").
"""

from __future__ import annotations

import ipaddress
import math
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal, get_args

Interface = Literal["rsgi", "asgi"]
PREFIX = "TAILOR_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("json", "text")
INTERFACES: tuple[Interface, ...] = get_args(Interface)
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
MIN_PSEUDONYM_KEY_BYTES = 16  # the same floor as the pseudonymizer's: shorter keys can be brute-forced


DAY_S = 86_400.0
# The range of each number, where it is not "0 or more". Out of it a value cannot work: a port past
# 65535, a queue or file size of 0 (the writers refuse them in every worker), a limit of 0 that
# refuses every request, or a timeout of years that overflows granian's millisecond counter.
LIMITS: dict[str, tuple[float, float]] = {
    "port": (1, 65_535),
    "workers": (1, 512),
    "max_body_bytes": (1, math.inf),
    "max_placements": (1, math.inf),
    "max_batch": (1, math.inf),
    "max_render_body_bytes": (1, math.inf),
    "header_timeout_s": (0.001, DAY_S),
    "body_timeout_s": (0.001, DAY_S),
    "stop_timeout_s": (1, DAY_S),
    "reload_interval": (0, DAY_S),
    "bundle_poll_seconds": (0.1, DAY_S),
    "decision_log_queue": (1, math.inf),
    "decision_log_max_bytes": (1, math.inf),
    "max_events": (1, math.inf),
    "render_cache_mb": (0, 1024 * 1024),
    "assignment_max_age_days": (0, 36_500),
}


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
    max_batch: int = 10_000
    """TAILOR_MAX_BATCH: most recipients one POST /v1/render may carry."""
    max_render_body_bytes: int = 32 * 1024 * 1024
    """TAILOR_MAX_RENDER_BODY_BYTES: larger POST /v1/render bodies get 413."""
    header_timeout_s: float = 10.0
    """TAILOR_HEADER_TIMEOUT_S: a connection that has not sent a request's headers within this many
    seconds is closed (slow clients must not hold the worker's connection slots)."""
    body_timeout_s: float = 30.0
    """TAILOR_BODY_TIMEOUT_S: a request body not complete within this many seconds gets 408 and
    its connection is closed."""
    stop_timeout_s: int = 30
    """TAILOR_STOP_TIMEOUT_S: on SIGTERM, a worker still running after this many whole seconds is
    killed. A worker told to stop while it was starting never hears it (granian), and the server
    waited for it for good."""
    interface: Interface = "rsgi"
    """TAILOR_INTERFACE: how granian hands requests to the app: rsgi (POST /v1/decide answered
    natively, every other route by Litestar through a bridge; ADR 0011) or asgi (all of it ASGI)."""
    render_cache_mb: float = 32.0
    """TAILOR_RENDER_CACHE_MB: memory for rendered blocks per worker, least recently used dropped first; 0: off."""
    log_level: str = "INFO"
    """TAILOR_LOG_LEVEL: DEBUG, INFO, WARNING or ERROR."""
    log_format: str = "json"
    """TAILOR_LOG_FORMAT: json (one object a line, with the decision id) or text."""
    state_dir: Path | None = None
    """TAILOR_STATE_DIR: shared by the workers of one server: last good bundle, reload trigger,
    metrics. ``tailor serve`` makes a temporary one when unset."""
    reload_interval: float = 0.5
    """TAILOR_RELOAD_INTERVAL: seconds between checks of the bundle folder; 0 turns watching off
    (POST /admin/reload still reloads every worker)."""
    admin_token: str | None = field(default=None, repr=False)
    """TAILOR_ADMIN_TOKEN: bearer token of the admin endpoints; unset turns them off."""
    bundle_url: str = ""
    """TAILOR_BUNDLE_URL: pull the bundle archive (``tailor bundle build``) from this HTTP origin
    instead of reading TAILOR_BUNDLE; empty: read the folder."""
    bundle_cache: Path | None = None
    """TAILOR_BUNDLE_CACHE: where the last good archive from the origin is kept, to start from it
    when the origin is down; default: STATE_DIR/origin. Make it persistent."""
    bundle_poll_seconds: float = 30.0
    """TAILOR_BUNDLE_POLL_SECONDS: seconds between polls of the origin (with ±20 % jitter)."""
    decision_log: str = "off"
    """TAILOR_DECISION_LOG: JSON-lines file for decision events (rotated; one file per worker when
    there are several), or off."""
    decision_log_url: str = ""
    """TAILOR_DECISION_LOG_URL: POST decision events as NDJSON batches to this collector; empty: none."""
    pseudonym_key: str = field(default="", repr=False)
    """TAILOR_PSEUDONYM_KEY: HMAC key for visitor pseudonyms in decision events, at least 16 bytes,
    the same on every replica; required when the decision log is on."""
    decision_log_queue: int = 10_000
    """TAILOR_DECISION_LOG_QUEUE: most decisions waiting to be written; more are dropped and counted."""
    decision_log_max_bytes: int = 64 * 1024 * 1024
    """TAILOR_DECISION_LOG_MAX_BYTES: a decision log file rotates before it passes this size."""
    decision_log_backups: int = 5
    """TAILOR_DECISION_LOG_BACKUPS: rotated decision log files kept."""
    cors_origins: str = ""
    """TAILOR_CORS_ORIGINS: comma-separated origins allowed to call the API from browsers; empty: none."""
    allow_client_time: bool = False
    """TAILOR_ALLOW_CLIENT_TIME: accept ``context.now`` from any client (previews, tests). Off, only
    requests with the admin bearer token may send it; from others it is a 400."""
    max_events: int = 1000
    """TAILOR_MAX_EVENTS: most outcome events one POST /v1/events may carry; more is a 400."""
    assignment_key: str = field(default="", repr=False)
    """TAILOR_ASSIGNMENT_KEY: HMAC key that signs the sticky ``assignments_token`` of /v1/decide, at
    least 16 bytes, the same on every replica; empty: no token is issued and none is honoured."""
    assignment_max_age_days: float = 90.0
    """TAILOR_ASSIGNMENT_MAX_AGE_DAYS: an assignments token issued longer ago than this is ignored
    (each decision re-issues it, so the age counts from the visitor's last decision)."""

    ofrep_api_key: str | None = field(default=None, repr=False)
    """TAILOR_OFREP_API_KEY: the OpenFeature routes (/ofrep/v1) want it as a bearer token or in
    X-API-Key; the event stream's URL carries a token derived from it. Unset: no key asked."""
    ofrep_max_streams: int = 1000
    """TAILOR_OFREP_MAX_STREAMS: most open OpenFeature change-event streams per worker; past it a
    new stream gets 503 and its provider polls."""
    preview: bool = False
    """TAILOR_PREVIEW: serve the preview page (``/preview``) and its data to any client, for local
    previews. Off, the page is served only when an admin token is set, and its data only to
    requests with that token."""

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
        settings = cls(**values)  # type: ignore[arg-type]
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse combinations that cannot work, naming the variable to change."""
        logging_on = self.decision_log != "off" or bool(self.decision_log_url)
        if logging_on and not self.pseudonym_key:
            raise ValueError(f"{PREFIX}PSEUDONYM_KEY is required when the decision log is on")
        if logging_on and len(self.pseudonym_key.encode()) < MIN_PSEUDONYM_KEY_BYTES:
            raise ValueError(
                f"{PREFIX}PSEUDONYM_KEY must be at least {MIN_PSEUDONYM_KEY_BYTES} bytes when the decision log is on"
            )

        if self.assignment_key and len(self.assignment_key.encode()) < MIN_PSEUDONYM_KEY_BYTES:
            raise ValueError(f"{PREFIX}ASSIGNMENT_KEY must be at least {MIN_PSEUDONYM_KEY_BYTES} bytes")
        if not _is_address(self.host):  # granian binds an address: a name failed after "serving ... on"
            shown = self.host if len(self.host) <= 80 else self.host[:80] + "..."
            raise ValueError(
                f"{PREFIX}HOST: {shown!r} is not an IP address to listen on (such as 127.0.0.1, 0.0.0.0 or ::)"
            )
        for name in ("bundle_url", "decision_log_url"):
            if (url := getattr(self, name)) and not _is_http_url(url):  # not shown: a URL may carry a token
                raise ValueError(f"{PREFIX}{name.upper()} is not an http:// or https:// URL with a host")

    def to_env(self) -> dict[str, str]:
        """The variables that recreate these settings, for worker processes."""
        return {PREFIX + f.name.upper(): str(v) for f in fields(self) if (v := getattr(self, f.name)) is not None}


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_http_url(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
        return parts.scheme in {"http", "https"} and bool(parts.hostname)
    except ValueError:  # a bad port or bracket
        return False


INT_FIELDS = frozenset(f.name for f in fields(Settings) if f.type == "int")


def parse_number(name: str, raw: str) -> int | float:
    """``raw`` as the number the setting ``name`` takes; the ValueError says what is wrong with it."""
    kind = int if name in INT_FIELDS else float
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not {'a whole number' if kind is int else 'a number'}") from None
    low, high = LIMITS.get(name, (0, math.inf))
    if not math.isfinite(value):  # float() takes "inf" and "nan"
        raise ValueError(f"{raw!r} is not a finite number")
    if value < low:
        raise ValueError(f"{raw!r} is below {shown_number(low)}")
    if value > high:
        raise ValueError(f"{raw!r} is above {shown_number(high)}")
    return value


def shown_number(value: float) -> str:
    """A bound as people write it: 1048576, not 1.04858e+06; 0.001, not 0.001000."""
    return str(int(value)) if value == int(value) else f"{value:g}"


def _flag(name: str, raw: str) -> bool:
    if raw.lower() in TRUE_WORDS:
        return True
    if raw.lower() in FALSE_WORDS:
        return False
    raise ValueError(f"{PREFIX}{name.upper()}: {raw!r} is not one of {', '.join(TRUE_WORDS + FALSE_WORDS)}")


def _convert(name: str, kind: str, raw: str) -> object:
    if kind == "bool":
        return _flag(name, raw)
    if kind in ("int", "float"):
        try:
            return parse_number(name, raw)
        except ValueError as exc:
            raise ValueError(f"{PREFIX}{name.upper()}: {exc}") from None
    if kind in ("Path", "Path | None"):
        return Path(raw)
    if name == "interface" and raw not in INTERFACES:
        raise ValueError(f"{PREFIX}INTERFACE: {raw!r} is not one of {', '.join(INTERFACES)}")
    if name == "log_format" and raw not in LOG_FORMATS:
        raise ValueError(f"{PREFIX}LOG_FORMAT: {raw!r} is not one of {', '.join(LOG_FORMATS)}")
    if name == "log_level":
        if raw.upper() not in LOG_LEVELS:
            raise ValueError(f"{PREFIX}LOG_LEVEL: {raw!r} is not one of {', '.join(LOG_LEVELS)}")
        return raw.upper()
    return raw
