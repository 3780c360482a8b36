"""Sticky assignments without a server store: the ``assignments_token`` of ``/v1/decide``.

The token holds, for each experiment a visitor was bucketed into, the arm and the experiment's
bucket version; the client keeps it (a cookie) and sends it back as ``visitor.assignments_token``.
Its wire format (docs/adr/0010-assignments-token.md)::

    base64url(payload) "." base64url(HMAC-SHA256(key, "tailor.assignments/1." payload)[:16])
    payload = JSON [1, issued_at, visitor_tag, [[experiment, arm, bucket_version], ...]]

``visitor_tag`` is a keyed hash of the visitor id, so a token copied to another visitor is
refused, and the raw id is not in the token. Verification (HMAC, the clock) lives here, outside
the pure core, which receives the verified arms as plain data (``DecisionRequest.sticky``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Literal

import msgspec

from service.core.compile import Bundle
from service.core.outcome import Decision
from service.settings import Settings

FORMAT = 1
DOMAIN = b"tailor.assignments/1."  # ties the MAC to this use of the key
MAC_BYTES = 16  # 128 bits: forging one takes 2^128 tries
TAG_BYTES = 9  # 72 bits: enough to tell one visitor's token from another's; it authenticates nothing
SECONDS_PER_DAY = 86_400
MAX_TOKEN_CHARS = 4096  # a longer token is read as malformed (ignored), never refused with a 400
# An issued token fits in a cookie: browsers keep 4,096 bytes a cookie, its name and attributes
# included. A visitor who held arms of 90 experiments was issued 4,113 characters, which the next
# request could not even send; a token over this drops the holds that matter least (ADR 0019).
ISSUED_MAX_CHARS = 3_800

TokenStatus = Literal["valid", "malformed", "bad_signature", "other_visitor", "expired", "no_key", "no_visitor_id"]
"""What became of the token a request sent: ``valid`` was honoured, any other value says why it was ignored."""

Held = Mapping[str, tuple[str, int]]
"""Experiment key → (arm key, bucket version) from a verified token."""

Entry = tuple[str, str, int]


class _Payload(msgspec.Struct, array_like=True, frozen=True):
    format: int
    issued_at: int
    visitor: str
    arms: list[Entry]


class AssignmentTokens:
    """Signs and verifies assignments tokens with one key; without a key, issues none and honours none."""

    def __init__(self, key: bytes, max_age_s: float) -> None:
        self._key = key
        self.max_age_s = max_age_s

    @classmethod
    def from_settings(cls, settings: Settings) -> AssignmentTokens:
        return cls(settings.assignment_key.encode(), settings.assignment_max_age_days * SECONDS_PER_DAY)

    def read(self, token: str | None, visitor_id: str | None, now: float) -> tuple[Held, TokenStatus | None]:
        """The arms a token holds for this visitor, and its status (None: no token was sent)."""
        if token is None:
            return {}, None
        payload, status = self._readable(token, visitor_id)
        if payload is not None and not hmac.compare_digest(payload.visitor, self._tag(visitor_id or "")):
            payload, status = None, "other_visitor"
        if payload is not None and not 0 <= now - payload.issued_at <= self.max_age_s:
            payload, status = None, "expired"
        return ({} if payload is None else {key: (arm, version) for key, arm, version in payload.arms}), status

    def _readable(self, token: str, visitor_id: str | None) -> tuple[_Payload | None, TokenStatus]:
        if not self._key:
            return None, "no_key"
        if not visitor_id:
            return None, "no_visitor_id"
        return self._verified(token)

    def issue(self, bundle: Bundle, decision: Decision, held: Held, visitor_id: str | None, now: float) -> str | None:
        """The token after this decision: the arms held before (of experiments the bundle still has)
        and those this decision assigned by bucket. None without a key, a visitor id or any arm."""
        if not self._key or not visitor_id:
            return None
        arms = {key: kept for key, kept in held.items() if key in bundle.experiments}
        assigned = []
        for placed in decision.placements.values():
            assignment = placed.experiment
            if placed.reason == "experiment" and assignment is not None:
                arms[assignment.key] = (assignment.arm, bundle.experiments[assignment.key].bucket_version)
                assigned.append(assignment.key)
        if not arms:
            return None
        token = self.sign(visitor_id, arms, now)
        if len(token) <= ISSUED_MAX_CHARS:  # almost always, at the first signing
            return token
        return self._trimmed(visitor_id, arms, _priority(bundle, arms, assigned), now)

    def _trimmed(self, visitor_id: str, arms: Held, priority: list[str], now: float) -> str | None:
        """The token of the most arms, taken in ``priority`` order, that fits ``ISSUED_MAX_CHARS``: a
        binary search over how many (a token's length grows with each arm kept)."""
        fits, low, high = None, 1, len(priority) - 1
        while low <= high:
            middle = (low + high) // 2
            candidate = self.sign(visitor_id, {key: arms[key] for key in priority[:middle]}, now)
            if len(candidate) <= ISSUED_MAX_CHARS:
                fits, low = candidate, middle + 1
            else:
                high = middle - 1
        return fits

    def sign(self, visitor_id: str, arms: Held, now: float) -> str:
        """A token for this visitor holding these arms, issued at ``now`` (epoch seconds)."""
        entries = [(key, arm, version) for key, (arm, version) in sorted(arms.items())]
        body = _b64(msgspec.json.encode(_Payload(FORMAT, int(now), self._tag(visitor_id), entries)))
        return f"{body}.{_b64(self._mac(body))}"

    def _verified(self, token: str) -> tuple[_Payload | None, TokenStatus]:
        body, dot, mac = token.partition(".")
        if not dot or len(token) > MAX_TOKEN_CHARS or not token.isascii():
            return None, "malformed"
        # The MAC is compared as text: decoding it first would accept the spare low bits of its last
        # character in any value, so a changed character could still verify.
        if not hmac.compare_digest(mac, _b64(self._mac(body))):
            return None, "bad_signature"  # tampered, or signed with another key
        try:
            payload = msgspec.json.decode(_unb64(body), type=_Payload)
        except (binascii.Error, ValueError, msgspec.DecodeError):
            return None, "malformed"  # signed by us yet unreadable: a format we no longer read
        return (payload, "valid") if payload.format == FORMAT else (None, "malformed")

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._key, DOMAIN + body.encode(), hashlib.sha256).digest()[:MAC_BYTES]

    def _tag(self, visitor_id: str) -> str:
        digest = hmac.new(self._key, b"visitor." + visitor_id.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return _b64(digest.digest()[:TAG_BYTES])

    def __repr__(self) -> str:
        return "AssignmentTokens(key=<hidden>)"


def _priority(bundle: Bundle, arms: Held, assigned: list[str]) -> list[str]:
    """Which holds a token that would not fit keeps first: the arms this decision served, then those of
    running experiments (a stopped one gives no arm, token or not), each group by key."""
    return sorted(arms, key=lambda key: (key not in assigned, bundle.experiments[key].status != "running", key))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    # validate=True: characters outside the alphabet are an error, not skipped (a changed byte must not pass)
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
