"""A simulation's tally as a report: plain structs that the text, JSON and HTML views all read."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import msgspec

from service.core.compile import Bundle
from service.core.models import CompiledModel
from service.simulate.stats import days_to_reach, sample_size
from service.simulate.tally import DEFAULT, PlacementTally, Tally

MIN_SEGMENT = 100  # the smallest segment worth a campaign, by the source documents on segmentation


class Share(msgspec.Struct, frozen=True):
    name: str
    visitors: int
    share: float


class SegmentRow(msgspec.Struct, frozen=True):
    name: str
    visitors: int
    share: float
    held_out: int


class Overlap(msgspec.Struct, frozen=True):
    segments: list[str]
    counts: list[list[int]]
    jaccard: list[list[float]]


class PlacementRow(msgspec.Struct, frozen=True):
    name: str
    rules: list[Share]
    variants: list[Share]
    reasons: list[Share]


class Unreached(msgspec.Struct, frozen=True):
    placement: str
    rule: str
    targeted: int
    why: str
    shadowed_by: str | None = None


class ExperimentRow(msgspec.Struct, frozen=True):
    key: str
    status: str
    visitors: int
    arms: list[Share]
    sample_size_per_arm: int
    days: int | None = None


class PersonaRow(msgspec.Struct, frozen=True):
    """A cluster's persona from the model card: the training customers' figures, not the population's."""

    description: str
    customers: int
    share_of_customers: float
    share_of_spend: float
    median_recency_days: float
    median_orders: float
    median_spend: float
    median_tenure_days: float
    churn_rate: float


class ClusterRow(msgspec.Struct, frozen=True):
    """One cluster of a model: the visitors who consent that the model puts in it, and its persona."""

    name: str
    visitors: int
    share: float  # of the visitors who consent, to compare with the persona's share of customers
    persona: PersonaRow | None


class ModelRow(msgspec.Struct, frozen=True):
    name: str
    clusters: list[ClusterRow]


class Report(msgspec.Struct, frozen=True):
    revision: str
    population: str
    now: datetime
    visitors: int
    consented: int
    without_id: int
    held_out: int
    held_out_share: float
    segments: list[SegmentRow]
    models: list[ModelRow]
    overlap: Overlap
    placements: list[PlacementRow]
    unreached: list[Unreached]
    experiments: list[ExperimentRow]
    warnings: list[str]
    baseline: float
    mde: float
    daily_visitors: int | None = None


def build_report(
    bundle: Bundle,
    tally: Tally,
    population: str,
    now: datetime,
    *,
    baseline: float,
    mde: float,
    daily_visitors: int | None,
) -> Report:
    total = max(tally.visitors, 1)
    segments = [
        SegmentRow(name, int(tally.sizes[i]), float(tally.sizes[i]) / total, int(tally.held_out_sizes[i]))
        for i, name in enumerate(tally.segments)
    ]
    per_arm = sample_size(baseline, mde)
    return Report(
        revision=bundle.revision,
        population=population,
        now=now,
        visitors=tally.visitors,
        consented=tally.consented,
        without_id=tally.without_id,
        held_out=tally.held_out,
        held_out_share=tally.held_out / total,
        segments=segments,
        models=[_model(bundle.models[name], counts, tally.consented) for name, counts in tally.clusters.items()],
        overlap=_overlap(tally),
        placements=[_placement(name, counts, total) for name, counts in tally.placements.items()],
        unreached=_unreached(bundle, tally),
        experiments=_experiments(bundle, tally, per_arm, daily_visitors),
        warnings=[
            f"segment {s.name} has {s.visitors} visitors, fewer than {MIN_SEGMENT}"
            for s in segments
            if s.visitors < MIN_SEGMENT
        ],
        baseline=baseline,
        mde=mde,
        daily_visitors=daily_visitors,
    )


def _shares(counts: Mapping[str, int], total: int) -> list[Share]:
    return [Share(name, n, n / total) for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def _placement(name: str, counts: PlacementTally, total: int) -> PlacementRow:
    return PlacementRow(
        name, _shares(counts.rules, total), _shares(counts.variants, total), _shares(counts.reasons, total)
    )


def _model(model: CompiledModel, counts: Mapping[str, int], consented: int) -> ModelRow:
    """Every cluster in the order of the model's labels, the empty ones too."""
    labels = [label for _, label in sorted((model.card.output.labels or {}).items())]
    rows = [
        ClusterRow(label, counts.get(label, 0), counts.get(label, 0) / max(consented, 1), _persona(model, label))
        for label in labels
    ]
    return ModelRow(model.card.name, rows)


def _persona(model: CompiledModel, label: str) -> PersonaRow | None:
    persona = model.personas.get(label)
    if persona is None:
        return None
    return PersonaRow(**persona.model_dump())


def _overlap(tally: Tally) -> Overlap:
    counts = tally.overlap.tolist()
    sizes = tally.sizes.tolist()
    jaccard = [
        [(both / union) if (union := sizes[i] + sizes[j] - both) else 0.0 for j, both in enumerate(row)]
        for i, row in enumerate(counts)
    ]
    return Overlap(list(tally.segments), counts, jaccard)


def _unreached(bundle: Bundle, tally: Tally) -> list[Unreached]:
    """Rules that decided no visitor: no visitor matches them, or an earlier rule took every one."""
    out = []
    for name, placement in bundle.placements.items():
        counts = tally.placements[name]
        labels = [rule.label for rule in placement.rules]
        for index, label in enumerate(labels):
            if counts.rules[label]:
                continue
            targeted = counts.targeted[label]
            winners: Mapping[str, int] = counts.taken_by.get(label, {})
            earlier = [(n, w) for w, n in winners.items() if w in labels[:index]]
            if not targeted:
                out.append(Unreached(name, label, 0, "no visitor matches its target"))
            elif earlier:
                _, winner = max(earlier)
                why = f"every visitor it matches is taken by an earlier rule, most by {winner}"
                out.append(Unreached(name, label, targeted, why, winner))
            else:
                why = "it matches visitors but decides none (an experiment not running, or outside its traffic)"
                out.append(Unreached(name, label, targeted, why))
    return out


def _experiments(bundle: Bundle, tally: Tally, per_arm: int, daily: int | None) -> list[ExperimentRow]:
    used = {r.experiment.key for p in bundle.placements.values() for r in p.rules if r.experiment is not None}
    total = max(tally.visitors, 1)
    rows = []
    for key, experiment in bundle.experiments.items():
        if key not in used:
            continue
        arms: Mapping[str, int] = tally.arms.get(key, {})
        shares = [Share(arm.key, arms.get(arm.key, 0), arms.get(arm.key, 0) / total) for arm in experiment.arms]
        days = None if daily is None else days_to_reach(per_arm, daily, [s.share for s in shares])
        rows.append(ExperimentRow(key, experiment.status, sum(s.visitors for s in shares), shares, per_arm, days))
    return rows


__all__ = ["DEFAULT", "MIN_SEGMENT", "Report", "build_report"]
