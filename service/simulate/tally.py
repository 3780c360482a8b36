"""Decide every visitor of a population and count what a report needs.

Each visitor gets the decision ``POST /v1/decide`` would give (the core's ``decide``, all
placements, at one time). Besides it, every segment and every rule's target is evaluated
for each visitor who consents, held out or not: segment sizes count everyone in the
segment, and a rule no visitor reaches is explained by the visitors its target matched
and the earlier rules that won them. Each cluster model's clusters count the visitors who
consent, so that they compare with the personas of the model's card.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np

from service.core.compile import Bundle
from service.core.conditions import Facts
from service.core.decide import DecisionRequest, decide
from service.core.outcome import PlacementDecision
from service.simulate.population import Batch
from service.simulate.scoring import BatchScores, Models, with_batch_scores

DEFAULT = "(default)"  # the rule column of a placement that fell through to its default


@dataclass
class PlacementTally:
    rules: Counter[str] = field(default_factory=Counter)  # rule label (or DEFAULT) → visitors it decided
    variants: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    targeted: Counter[str] = field(default_factory=Counter)  # rule label → visitors its target matched
    taken_by: dict[str, Counter[str]] = field(default_factory=dict)  # rule → who decided its targeted visitors


@dataclass
class Tally:
    segments: list[str]
    visitors: int = 0
    consented: int = 0
    held_out: int = 0
    without_id: int = 0
    sizes: np.ndarray = field(init=False)  # visitors per segment
    held_out_sizes: np.ndarray = field(init=False)
    overlap: np.ndarray = field(init=False)  # visitors in both segments
    placements: dict[str, PlacementTally] = field(default_factory=dict)
    arms: dict[str, Counter[str]] = field(default_factory=dict)  # experiment → arm → visitors
    clusters: dict[str, Counter[str]] = field(default_factory=dict)  # label model → label → visitors who consent

    def __post_init__(self) -> None:
        n = len(self.segments)
        self.sizes = np.zeros(n, dtype=np.int64)
        self.held_out_sizes = np.zeros(n, dtype=np.int64)
        self.overlap = np.zeros((n, n), dtype=np.int64)


def simulate(
    bundle: Bundle,
    models: Models,
    batches: Iterable[Batch],
    now: datetime,
    context: Mapping[str, Any] = MappingProxyType({}),
) -> Tally:
    """Decide every visitor of ``batches`` at ``now``, in ``context`` (a request's locale and page), and count."""
    tally = Tally(list(bundle.segments))
    tally.placements = {name: PlacementTally() for name in bundle.placements}
    tally.clusters = {name: Counter() for name, m in bundle.models.items() if m.card.output.kind == "label"}
    scores = BatchScores(bundle, models)
    scored = with_batch_scores(bundle, scores)
    epoch = now.timestamp()
    for batch in batches:
        scores.score(batch.attributes, epoch)
        _count_batch(tally, scored, scores, batch, now=now, context=context)
        _count_clusters(tally, scores, batch)
    return tally


def _count_batch(
    tally: Tally, bundle: Bundle, scores: BatchScores, batch: Batch, *, now: datetime, context: Mapping[str, Any]
) -> None:
    membership = np.zeros((len(batch.ids), len(tally.segments)), dtype=bool)
    held = np.zeros(len(batch.ids), dtype=bool)
    epoch = now.timestamp()
    for row, (visitor_id, attributes, consent) in enumerate(
        zip(batch.ids, batch.attributes, batch.consent, strict=True)
    ):
        scores.row = row
        decision = decide(bundle, DecisionRequest(visitor_id, attributes, now, context, personalization=consent))
        held[row] = _count_decision(tally, decision.placements)
        tally.without_id += visitor_id is None
        if consent:
            facts = Facts(attributes, context, epoch, bundle.segments, bundle.model_runners)
            membership[row] = [facts.segment(name) for name in tally.segments]
            if not held[row]:  # a held-out visitor's placements say nothing about the rules
                _count_targets(tally, bundle, facts, decision.placements)
    tally.visitors += len(batch.ids)
    tally.consented += sum(batch.consent)
    tally.held_out += int(held.sum())
    counts = membership.astype(np.int64)
    tally.sizes += counts.sum(axis=0)
    tally.held_out_sizes += counts[held].sum(axis=0)
    tally.overlap += counts.T @ counts


def _count_clusters(tally: Tally, scores: BatchScores, batch: Batch) -> None:
    """The cluster of every visitor who consents, whether a rule asks for the model or not."""
    for name, labels in tally.clusters.items():
        labels.update(str(label) for label, consent in zip(scores.scores[name], batch.consent, strict=True) if consent)


def _count_decision(tally: Tally, placed: Mapping[str, PlacementDecision]) -> bool:
    """Count one visitor's decision; True when the visitor is in the holdout."""
    held_out = False
    entered: dict[str, str] = {}
    for name, decision in placed.items():
        counts = tally.placements[name]
        counts.rules[decision.rule or DEFAULT] += 1
        counts.variants[decision.variant or ""] += 1
        counts.reasons[decision.reason] += 1
        held_out = held_out or decision.reason == "holdout"
        if decision.experiment is not None:
            entered[decision.experiment.key] = decision.experiment.arm
    for key, arm in entered.items():  # a visitor counts once per experiment, however many placements run it
        tally.arms.setdefault(key, Counter())[arm] += 1
    return held_out


def _count_targets(tally: Tally, bundle: Bundle, facts: Facts, placed: Mapping[str, PlacementDecision]) -> None:
    """Which rules' targets the visitor matched, and which rule decided the placement for them."""
    for name, placement in bundle.placements.items():
        counts = tally.placements[name]
        winner = placed[name].rule or DEFAULT
        for rule in placement.rules:
            if rule.target is None or rule.target(facts):
                counts.targeted[rule.label] += 1
                counts.taken_by.setdefault(rule.label, Counter())[winner] += 1
