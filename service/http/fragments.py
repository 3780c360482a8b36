"""A decision's response assembled from pre-encoded pieces: the same bytes as encoding it whole.

Building 20 ``PlacementOut`` structs (each with a copy of its variant's content) and encoding
them was the largest cost of a flags20 response that the framework did not cause. What a
placement's piece says depends only on the bundle and the outcome (variant, reason, rule, arm),
never on the visitor, except an experiment's bucket, which is spliced in. So each piece is
encoded the first time its outcome is seen, once per bundle, and a response joins them. The
bundle's own decisions (its defaults and served variants, ``fixed_decisions``), which most
placements of a page view get, find their piece by identity, without hashing the outcome.

Only plain answers are assembled: with ``explain`` (trace, scores) or ``render`` (HTML) the
response is encoded field by field, as before. Pieces are kept only for the bundle's own
placements, so a client naming made-up placements cannot grow the table.
"""

from __future__ import annotations

import msgspec

from service.assignments import TokenStatus
from service.core.compile import Bundle, fixed_decisions
from service.core.outcome import Decision, PlacementDecision
from service.http import wire
from service.http.mapping import decision_response, placements_out, with_token

# (name, decision) without an experiment; (name, variant, reason, rule, experiment, arm) with one:
# all of the decision but its bucket, which is not part of the piece.
Outcome = tuple[str, PlacementDecision] | tuple[str, str | None, str, str | None, str, str]
_BUCKET_TAIL = b"0}}"  # a piece is encoded with bucket 0: what precedes the bucket is kept
_encode = msgspec.json.Encoder().encode


class _Assembled(msgspec.Struct, frozen=True, omit_defaults=True):
    """``wire.DecideResponse`` without trace and scores, its placements already encoded."""

    revision: str
    decision_id: str
    segments: list[str]
    placements: msgspec.Raw
    assignments_token: str | None = None
    assignments_token_status: str | None = None


class Fragments:
    """The pieces of one bundle's responses, made as outcomes are first seen."""

    def __init__(self) -> None:
        self._bundle: Bundle | None = None
        self._pieces: dict[Outcome, bytes] = {}
        self._fixed: dict[int, tuple[str, PlacementDecision]] = {}  # the bundle's own decisions
        self._heads: dict[int, bytes] = {}  # their pieces, by id() as the bundle's own decisions are

    def encode(
        self,
        bundle: Bundle,
        decision: Decision,
        decision_id: str,
        token: str | None = None,
        token_status: TokenStatus | None = None,
    ) -> bytes:
        """The bytes of ``decision_response(...)`` with the token, assembled when it is plain."""
        if decision.trace is not None or decision.scores is not None:
            return _encode(with_token(decision_response(bundle, decision, decision_id), token, token_status))
        if bundle is not self._bundle:  # a new bundle: its content and rules may differ
            self._bundle, self._pieces, self._fixed, self._heads = bundle, {}, fixed_decisions(bundle), {}
        heads = self._heads  # most placements of a page view serve a default: one lookup, no call
        joined = b",".join(
            [heads.get(id(placed)) or self._piece(bundle, name, placed) for name, placed in decision.placements.items()]
        )
        placements = msgspec.Raw(b"{" + joined + b"}")
        return _encode(_Assembled(bundle.revision, decision_id, decision.segments, placements, token, token_status))

    def _piece(self, bundle: Bundle, name: str, placed: PlacementDecision) -> bytes:
        assignment = placed.experiment
        # Without an experiment, or with an arm kept from a token (no bucket to splice in), the
        # outcome is the (frozen, hashable) decision itself.
        key: Outcome = (name, placed)
        if assignment is not None and assignment.sticky:
            assignment = None
        if assignment is not None:
            key = (name, placed.variant, placed.reason, placed.rule, assignment.key, assignment.arm)
        head = self._pieces.get(key)
        if head is None:
            head = _head(bundle, name, placed)
            if id(placed) in self._fixed:
                self._heads[id(placed)] = head
            elif name in bundle.placements:
                self._pieces[key] = head
        if assignment is None:
            return head
        return head + (b"null" if assignment.bucket is None else str(assignment.bucket).encode()) + b"}}"


def _head(bundle: Bundle, name: str, placed: PlacementDecision) -> bytes:
    """``"name":{...}`` as the response encodes it; for an experiment, up to where its bucket goes."""
    assignment = placed.experiment
    if assignment is not None and assignment.sticky:
        assignment = None  # encoded whole: it has no bucket
    if assignment is not None:
        placed = msgspec.structs.replace(placed, experiment=msgspec.structs.replace(assignment, bucket=0))
    alone = Decision([], {name: placed})
    out: wire.PlacementOut = placements_out(bundle, alone, {}, explain=False)[name]
    piece = _encode(name) + b":" + _encode(out)
    if assignment is None:
        return piece
    if not piece.endswith(b'"bucket":' + _BUCKET_TAIL):  # the bucket must be the piece's last field
        raise AssertionError(f"unexpected encoding of an experiment's placement: {piece!r}")
    return piece[: -len(_BUCKET_TAIL)]
