"""Versions, durations and times: one parser each, shared by the spec and the predicates.

The spec checks an operand with the very function that reads a request's value, so an
operand that validates is one a predicate can compare with (``semver_gt: "01.2.3"`` once
validated by a looser pattern and then failed every comparison at request time).
A request's value that does not parse is no version or no time: the test is false.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import semver

SEMVER_CACHE_SIZE = 4096  # app versions have few distinct values; parsing them once pays
MAX_VERSION_CHARS = 100  # longer text is no app version (and 5,000 digits are past what int() reads)
MAX_DURATION = timedelta(days=36_500)  # a hundred years: anything longer is a typo
MAX_EPOCH_SECONDS = 253_402_300_800.0  # the end of year 9999, the last time ISO 8601 text can write
_DURATION = re.compile(r"([0-9]{1,12})\s*(s|m|h|d|w)")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@lru_cache(maxsize=SEMVER_CACHE_SIZE)
def parse_semver(text: str) -> semver.Version | None:
    """``"v2.3"`` → Version(2, 3, 0); None for text that is no version (``01.2.3``: a leading zero)."""
    if len(text) > MAX_VERSION_CHARS:
        return None
    try:
        return semver.Version.parse(text.removeprefix("v"), optional_minor_and_patch=True)
    except ValueError:
        return None


def parse_duration(text: str) -> timedelta:
    """``"30d"`` → 30 days. Units: s, m, h, d, w (seconds to weeks); ValueError for anything else."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"'{text}' is not a duration; write a number and a unit, e.g. 30d, 24h, 15m, 2w")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"'{text}' is longer than {MAX_DURATION.days}d; durations go up to a hundred years")
    return timedelta(seconds=seconds)


def to_epoch(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 text or a number; None for anything else, or a time past year 9999."""
    kind = type(value)
    if kind is int or kind is float:
        return float(value) if -MAX_EPOCH_SECONDS <= value <= MAX_EPOCH_SECONDS else None  # False for nan
    if kind is str:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return aware(moment).timestamp()
    if kind is datetime:
        return aware(value).timestamp()
    return None


def aware(moment: datetime) -> datetime:
    """A time without a zone is UTC, as everywhere in a bundle and a request."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
