"""Spec → compiled bundle: the only way to build the immutable objects decisions run on.

The compiler sees all files at once, so this is where names are resolved (with a
suggestion for a misspelt one), duplicates and segment cycles are found and layer
slices are checked. It reports every problem it finds, then raises one BundleError;
a bundle with any error is never half-built.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeVar

from service.core import bucketing
from service.core.conditions import Facts, Getter, Predicate, compile_condition, make_getter, to_epoch, walk
from service.core.errors import BundleError, Problem
from service.core.models import CompiledModel, LoadedModel, ModelCard, compile_model
from service.core.outcome import PlacementDecision
from service.core.rendering import Blocks
from service.core.spec import (
    AnalysisMode,
    Condition,
    ContentFile,
    Experiment,
    Placement,
    RulesFile,
    Segment,
    Variant,
)
from service.core.whynot import Explainer, Locate, compile_why_not

Path = tuple[str | int, ...]
T = TypeVar("T")
_NOTHING: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CompiledVariant:
    key: str
    description: str
    content: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CompiledArm:
    key: str
    variant: str
    weight: int


@dataclass(frozen=True, slots=True)
class CompiledExperiment:
    key: str
    description: str
    status: str
    arms: tuple[CompiledArm, ...]
    bounds: tuple[int, ...]
    arm_prefix: str
    entry_prefix: str
    entry_range: tuple[int, int]  # buckets [from, to) of the entry draw that take part
    unit: Getter | None  # None: bucket by the visitor id
    bucket_by: str | None
    layer: str | None
    forced: Mapping[str, int]  # visitor id → arm index
    start: float | None
    end: float | None
    running: bool
    window: tuple[float, float]  # [start, end) with infinities for open ends: one comparison per request
    bucket_version: int = 1
    # the plan for ``tailor analyze`` (None: none declared); decisions never read it
    analysis_mode: AnalysisMode | None = None
    planned_days: float | None = None
    planned_visitors: int | None = None

    @property
    def traffic_percent(self) -> float:
        low, high = self.entry_range
        return (high - low) / bucketing.BUCKETS_PER_PERCENT

    def active_at(self, now: float) -> bool:
        return self.running and self.window[0] <= now < self.window[1]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    label: str
    target: Predicate | None  # None: every visitor
    serve: str | None
    experiment: CompiledExperiment | None
    describe: str  # what it targets, for /v1/bundle and traces
    served: PlacementDecision | None  # the decision when it serves a variant, built once
    why_not: Explainer | None = None  # the first failed condition, for traces only


@dataclass(frozen=True, slots=True)
class CompiledPlacement:
    name: str
    description: str
    default: str
    rules: tuple[CompiledRule, ...]
    fallback: PlacementDecision  # the default decision, built once
    defaults: Mapping[str, PlacementDecision]  # the default for each reason that skips the rules


@dataclass(frozen=True, slots=True)
class CompiledHoldout:
    percent: float
    salt: str
    prefix: str
    buckets: int


@dataclass(frozen=True, slots=True)
class Bundle:
    """A compiled, immutable bundle. ``revision`` is the content hash of its files."""

    revision: str
    placements: Mapping[str, CompiledPlacement]
    segments: Mapping[str, Predicate]
    segment_descriptions: Mapping[str, str]
    experiments: Mapping[str, CompiledExperiment]
    variants: Mapping[str, CompiledVariant]
    holdout: CompiledHoldout | None
    qa_ids: frozenset[str]  # visitors with forced arms skip the holdout so QA sees what they test
    blocks: Blocks  # compiled templates, by variant
    models: Mapping[str, CompiledModel] = field(default_factory=lambda: _NOTHING)
    model_runners: Mapping[str, Callable[[Facts], str | float]] = field(default_factory=lambda: _NOTHING)
    segment_models: Mapping[str, frozenset[str]] = field(default_factory=lambda: _NOTHING)  # through references
    segment_why_not: Mapping[str, Explainer] = field(default_factory=lambda: _NOTHING)  # for explanations only
    warnings: tuple[Problem, ...] = ()


BlockCompiler = Callable[[str], Blocks]  # revision → the bundle's compiled templates, or BundleError
NameKind = Literal["segment", "placement", "experiment", "variant", "model"]


@dataclass(frozen=True, slots=True)
class Unresolved:
    """Names that files which failed to load may define, so that a reference to one is not called unknown.

    ``tailor validate`` reports every problem in one pass: the files that loaded are compiled even
    when others did not, and this keeps a file's own error from reappearing as bogus "unknown
    segment" messages wherever its names are used.
    """

    names: Mapping[NameKind, frozenset[str]] = field(default_factory=dict)
    any_of: frozenset[NameKind] = frozenset()  # kinds of which a failed file may define any name
    why_missing: Mapping[tuple[NameKind, str], str] = field(default_factory=dict)  # what the loader saw instead

    def covers(self, kind: NameKind | Literal["arm"], name: str) -> bool:
        if kind == "arm":
            return False  # arms are declared next to the references to them
        return kind in self.any_of or name in self.names.get(kind, frozenset())

    def may_define(self, kind: NameKind) -> bool:
        return kind in self.any_of or bool(self.names.get(kind))


NOTHING_UNRESOLVED = Unresolved()


@dataclass
class _Defined(Generic[T]):
    file: str
    path: Path
    spec: T


@dataclass
class _Compiler:
    rule_files: Sequence[tuple[str, RulesFile]]
    content_files: Sequence[tuple[str, ContentFile]]
    models: dict[str, LoadedModel] = field(default_factory=dict)
    unresolved: Unresolved = NOTHING_UNRESOLVED
    locate: Locate = lambda file, path: None
    incomplete: bool = False  # a reference was left unresolved: the bundle cannot be built
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def error(self, file: str, path: Path, message: str) -> None:
        self.problems.append(Problem(file, path, message))

    def warn(self, file: str, path: Path, message: str) -> None:
        self.warnings.append(Problem(file, path, message, severity="warning"))

    def collect(self, section: str, pairs: Iterable[tuple[str, Mapping[str, T]]], kind: str) -> dict[str, _Defined[T]]:
        """Merge one section across files; a name defined twice is an error where it is repeated."""
        merged: dict[str, _Defined[T]] = {}
        for file, items in pairs:
            for name, spec in items.items():
                if name in merged:
                    first = merged[name]
                    line = self.locate(first.file, first.path)
                    where = first.file if line is None else f"{first.file}:{line}"
                    self.error(file, (section, name), f"{kind} '{name}' is already defined in {where}")
                    continue
                merged[name] = _Defined(file, (section, name), spec)
        return merged

    def check_name(
        self, file: str, path: Path, name: str, known: Mapping[str, object], kind: NameKind | Literal["arm"]
    ) -> bool:
        if name in known:
            return True
        if self.unresolved.covers(kind, name):
            self.incomplete = True  # a file that failed to load may define it: its own problem is reported
        else:
            why = None if kind == "arm" else self.unresolved.why_missing.get((kind, name))
            self.error(file, path, f"unknown {kind} '{name}'" + (f": {why}" if why else suggest(name, known)))
        return False


def suggest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'vip'?)`` for a name close to a known one, else empty."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def compile_bundle(
    rule_files: Sequence[tuple[str, RulesFile]],
    content_files: Sequence[tuple[str, ContentFile]],
    revision: str,
    models: Sequence[LoadedModel] = (),
    *,
    blocks: BlockCompiler,
    unresolved: Unresolved = NOTHING_UNRESOLVED,
    locate: Locate = lambda file, path: None,
) -> Bundle:
    """Compile validated files, templates included, into a Bundle, or raise BundleError listing every problem.

    ``blocks`` compiles the templates (``service.render`` does, the core never imports Jinja); its
    problems are reported with the rules' own, in one pass. ``locate`` gives the line of a path in a
    rule file, for the why-not of explanations.
    """
    c = _Compiler(rule_files, content_files, unresolved=unresolved, locate=locate)
    for loaded in models:
        if loaded.card.name in c.models:
            c.error(
                loaded.file,
                ("name",),
                f"model '{loaded.card.name}' is already defined in {c.models[loaded.card.name].file}",
            )
        c.models.setdefault(loaded.card.name, loaded)
    segments = c.collect("segments", ((f, s.segments) for f, s in rule_files), "segment")
    placements = c.collect("placements", ((f, s.placements) for f, s in rule_files), "placement")
    experiments = c.collect("experiments", ((f, s.experiments) for f, s in rule_files), "experiment")
    variants = c.collect("variants", ((f, s.variants) for f, s in content_files), "variant")
    holdout = _holdout(c)
    if not placements and not c.problems and not unresolved.may_define("placement"):
        c.error(rule_files[0][0] if rule_files else "rules", (), "the bundle declares no placements")

    _check_segments(c, segments)
    _check_experiments(c, experiments, variants)
    _check_draws(c, experiments)
    _check_placements(c, placements, segments, experiments, variants)
    compiled_blocks = _compile_blocks(c, blocks, revision)
    if c.problems or c.incomplete or compiled_blocks is None:
        raise BundleError(c.problems)  # with incomplete files, maybe no problem of its own: the loader has them

    compiled_models = {name: compile_model(loaded) for name, loaded in c.models.items()}
    compiled_experiments = {name: _experiment(name, d.spec) for name, d in experiments.items()}
    why_not: dict[str, Explainer] = {}  # filled before any request: segment explainers look each other up here
    why_not.update(
        (name, compile_why_not(d.spec.when, d.file, (*d.path, "when"), locate, why_not)) for name, d in segments.items()
    )
    compiled_placements = {
        name: _placement(name, d, compiled_experiments, _RuleExplainers(locate, why_not))
        for name, d in placements.items()
    }
    _warn_unused(c, placements, experiments, variants)
    _warn_one_armed(c, experiments)
    _warn_null_content(c, variants)
    return Bundle(
        revision=revision,
        placements=MappingProxyType(compiled_placements),
        segments=MappingProxyType({name: compile_condition(d.spec.when) for name, d in segments.items()}),
        segment_descriptions=MappingProxyType({name: d.spec.description for name, d in segments.items()}),
        experiments=MappingProxyType(compiled_experiments),
        variants=MappingProxyType({name: _variant(name, d.spec) for name, d in variants.items()}),
        holdout=holdout,
        qa_ids=frozenset(vid for e in compiled_experiments.values() for vid in e.forced),
        blocks=compiled_blocks,
        models=MappingProxyType(compiled_models),
        model_runners=MappingProxyType({name: m.run for name, m in compiled_models.items()}),
        segment_models=MappingProxyType(_segment_models(segments)),
        segment_why_not=MappingProxyType(why_not),
        warnings=tuple(c.warnings),
    )


def fixed_decisions(bundle: Bundle) -> dict[int, tuple[str, PlacementDecision]]:
    """Every decision the compiled bundle holds, by ``id()``, with the name of its placement.

    A placement's default decisions and its rules' served ones are built once, at compile, and
    ``decide`` returns those very objects. While the bundle lives no other object can have their
    ids, so a table keyed on ``id()`` (cheaper than hashing a struct's fields) is exact for as
    long as its holder keeps the bundle. Decisions made per request (an arm and its bucket) are
    not in it.
    """
    fixed: dict[int, tuple[str, PlacementDecision]] = {}
    for name, placement in bundle.placements.items():
        served = [rule.served for rule in placement.rules if rule.served is not None]
        for placed in (placement.fallback, *placement.defaults.values(), *served):
            fixed[id(placed)] = (name, placed)
    return fixed


def _compile_blocks(c: _Compiler, blocks: BlockCompiler, revision: str) -> Blocks | None:
    try:
        compiled = blocks(revision)
    except BundleError as exc:
        c.problems.extend(exc.problems)
        return None
    c.warnings.extend(compiled.warnings)
    return compiled


def _holdout(c: _Compiler) -> CompiledHoldout | None:
    declared = [(file, spec.holdout) for file, spec in c.rule_files if spec.holdout is not None]
    for file, _ in declared[1:]:
        c.error(file, ("holdout",), f"the holdout is already declared in {declared[0][0]}; declare it once")
    if not declared:
        return None
    spec = declared[0][1]
    assert spec is not None
    return CompiledHoldout(
        spec.percent, spec.salt, bucketing.hash_prefix(spec.salt), bucketing.percent_to_buckets(spec.percent)
    )


def _condition_refs(c: _Compiler, file: str, path: Path, cond: Condition, segments: Mapping[str, object]) -> list[str]:
    """The segments a condition refers to; checks its segment and model names on the way."""
    refs = []
    for sub_path, sub in walk(cond, path):
        if sub.item is not None and not {"some", "every"} & set(sub_path[len(path) :]):
            c.error(file, (*sub_path, "item"), "'item' reads an item of a list: use it inside 'some' or 'every'")
        if sub.segment is not None and c.check_name(file, (*sub_path, "segment"), sub.segment, segments, "segment"):
            refs.append(sub.segment)
        if sub.model is not None and c.check_name(file, (*sub_path, "model"), sub.model, c.models, "model"):
            _check_model_test(c, file, sub_path, sub, c.models[sub.model].card)
        _warn_quoted_number(c, file, sub_path, sub)
    return refs


_NUMBER_TEXT = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _warn_quoted_number(c: _Compiler, file: str, path: Path, cond: Condition) -> None:
    """``gte: "500"`` orders text, so it never holds for 800: almost always a number in quotes by mistake."""
    ops = cond.operators()
    if cond.model is not None or len(ops) != 1 or ops[0] not in ("gt", "gte", "lt", "lte"):
        return  # a model's number is checked with the model's card
    operand = cond.operand()
    if isinstance(operand, str) and _NUMBER_TEXT.fullmatch(operand.strip()):
        c.warn(
            file, (*path, ops[0]),
            f"'{operand}' is text in quotes: {ops[0]} with it compares text only, never a number such as 800;"
            f" write {operand.strip()} without quotes to compare numbers",
        )  # fmt: skip


def _check_model_test(c: _Compiler, file: str, path: Path, cond: Condition, card: ModelCard) -> None:
    """A label is compared with label names the model has; a probability or value with numbers."""
    op = cond.operators()[0]
    operand = cond.operand()
    values = operand if isinstance(operand, list) else [operand]
    if card.output.kind == "label":
        labels = sorted((card.output.labels or {}).values())
        if op not in ("eq", "ne", "in", "not_in") or (op in ("eq", "ne") and isinstance(operand, dict | list)):
            c.error(file, (*path, op), f"model '{card.name}' gives a label; compare it with eq, ne, in or not_in")
        for value in values:
            if isinstance(value, str) and value not in labels:
                c.error(file, (*path, op), f"model '{card.name}' has no label '{value}'{suggest(value, labels)}")
    elif op in _LIST_OPERATORS or any(isinstance(value, str) for value in values):
        c.error(file, (*path, op), f"model '{card.name}' gives a {card.output.kind}: compare it with numbers")


_LIST_OPERATORS = frozenset({"any_of", "all_of", "none_of", "some", "every", "length"})


def _segment_models(segments: Mapping[str, _Defined[Segment]]) -> dict[str, frozenset[str]]:
    """The models each segment needs, directly or through the segments it refers to (no cycles here)."""
    found: dict[str, frozenset[str]] = {}

    def needs(name: str) -> frozenset[str]:
        if name not in found:
            conditions = [sub for _, sub in walk(segments[name].spec.when)]
            direct = {sub.model for sub in conditions if sub.model is not None}
            found[name] = frozenset(direct).union(*(needs(s.segment) for s in conditions if s.segment is not None))
        return found[name]

    for name in segments:
        needs(name)
    return found


def _check_segments(c: _Compiler, segments: Mapping[str, _Defined[Segment]]) -> None:
    graph = {name: _condition_refs(c, d.file, (*d.path, "when"), d.spec.when, segments) for name, d in segments.items()}
    cycles, chain = _cycles(graph)
    for cycle in cycles:
        d = segments[cycle[0]]
        c.error(d.file, (*d.path, "when"), f"segment '{cycle[0]}' refers to itself: {' → '.join(cycle)}")
    if chain:
        d = segments[chain[0]]
        shown = " → ".join(chain[:3])
        c.error(d.file, (*d.path, "when"), f"segment '{chain[0]}' refers through more than {MAX_SEGMENT_CHAIN} "
                f"segments in a row ({shown} → …): flatten the chain")  # fmt: skip


MAX_SEGMENT_CHAIN = 32  # segments on segments on ...: each level is a call when a visitor is evaluated


def _cycles(graph: Mapping[str, list[str]]) -> tuple[list[list[str]], list[str]]:
    """One cycle per strongly tied group, each starting at its first name in declaration order, and the
    first chain of references longer than MAX_SEGMENT_CHAIN (the walk stops there, so it never runs deep)."""
    done: set[str] = set()
    found: list[list[str]] = []
    chain: list[str] = []

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            found.append([*trail[trail.index(name) :], name])
            return
        if name in done:
            return
        if len(trail) >= MAX_SEGMENT_CHAIN:
            chain[:] = chain or [*trail, name]
            done.update(trail)
            return
        for ref in graph.get(name, ()):
            visit(ref, [*trail, name])
        done.add(name)

    for name in graph:
        visit(name, [])
    return found, chain


def _check_experiments(
    c: _Compiler, experiments: Mapping[str, _Defined[Experiment]], variants: Mapping[str, object]
) -> None:
    slices: dict[str, list[tuple[float, float, str]]] = {}
    layer_units: dict[str, tuple[str | None, str]] = {}  # layer → (bucket_by, first experiment)
    for name, d in experiments.items():
        spec = d.spec
        if spec.layer is not None:
            unit, first = layer_units.setdefault(spec.layer, (spec.bucket_by, name))
            if unit != spec.bucket_by:
                c.error(
                    d.file,
                    (*d.path, "bucket_by" if spec.bucket_by is not None else "layer"),
                    f"experiments of layer '{spec.layer}' share one draw and must bucket by the same unit: "
                    f"'{first}' buckets by {unit or 'visitor id'}, this one by {spec.bucket_by or 'visitor id'}",
                )
        keys: set[str] = set()
        for i, arm in enumerate(spec.arms):
            if arm.key in keys:
                c.error(d.file, (*d.path, "arms", i, "key"), f"arm '{arm.key}' appears twice")
            keys.add(arm.key)
            c.check_name(d.file, (*d.path, "arms", i, "variant"), arm.variant, variants, "variant")
        for visitor, arm_key in spec.forced.items():
            c.check_name(d.file, (*d.path, "forced", visitor), arm_key, dict.fromkeys(keys, 1), "arm")
        if spec.layer is not None and spec.layer_slice is not None:
            low, high = spec.layer_slice
            for other_low, other_high, other in slices.get(spec.layer, []):
                if low < other_high and other_low < high:
                    c.error(
                        d.file,
                        (*d.path, "layer_slice"),
                        f"slice [{low:g}, {high:g}) of layer '{spec.layer}' overlaps "
                        f"experiment '{other}' [{other_low:g}, {other_high:g})",
                    )
            slices.setdefault(spec.layer, []).append((low, high, name))


def _check_draws(c: _Compiler, experiments: Mapping[str, _Defined[Experiment]]) -> None:
    """Each hash salt serves one draw: a salt shared by two draws ties them (docs/bucketing.md)."""
    used: dict[str, tuple[str, str]] = {}  # salt → (draw, who uses it); the first use wins

    def claim(salt: str, draw: str, who: str, file: str, path: Path) -> None:
        first_draw, first_who = used.setdefault(salt, (draw, who))
        if first_draw != draw:
            c.error(file, path, f"{who} hashes with salt '{salt}', which {first_who} already uses; choose another salt")

    for file, spec in c.rule_files:
        if spec.holdout is not None:
            claim(spec.holdout.salt, "holdout", "the holdout", file, ("holdout", "salt"))
    for name, d in experiments.items():
        salt = arm_salt(name, d.spec)  # with its bucket version: "h" at version 2 draws as "h/v2"
        if d.spec.layer is not None:
            layer = d.spec.layer
            claim(f"layer/{layer}", f"layer {layer}", f"the entry draw of layer '{layer}'", d.file, (*d.path, "layer"))
        else:
            claim(f"{salt}/traffic", f"entry {salt}", f"the entry draw of experiment '{name}'", d.file, d.path)
    for name, d in experiments.items():
        salt = arm_salt(name, d.spec)
        where = (*d.path, "salt") if d.spec.salt is not None else d.path
        claim(salt, f"arm {salt}", f"the arm draw of experiment '{name}'", d.file, where)


def _check_placements(
    c: _Compiler,
    placements: Mapping[str, _Defined[Placement]],
    segments: Mapping[str, object],
    experiments: Mapping[str, object],
    variants: Mapping[str, object],
) -> None:
    for d in placements.values():
        c.check_name(d.file, (*d.path, "default"), d.spec.default, variants, "variant")
        _check_rule_names(c, d)
        for i, rule in enumerate(d.spec.rules):
            where = (*d.path, "rules", i)
            if rule.segment is not None:
                c.check_name(d.file, (*where, "segment"), rule.segment, segments, "segment")
            if rule.when is not None:
                _condition_refs(c, d.file, (*where, "when"), rule.when, segments)
            if rule.serve is not None:
                c.check_name(d.file, (*where, "serve"), rule.serve, variants, "variant")
            if rule.experiment is not None:
                c.check_name(d.file, (*where, "experiment"), rule.experiment, experiments, "experiment")
            if rule.segment is None and rule.when is None and i < len(d.spec.rules) - 1 and rule.serve:
                c.warn(d.file, where, "this rule targets every visitor, so the rules after it never apply")


def _check_rule_names(c: _Compiler, d: _Defined[Placement]) -> None:
    """Traces, events and /v1/bundle name a rule by its name: two rules of one placement cannot share one."""
    first: dict[str, int] = {}
    for i, rule in enumerate(d.spec.rules):
        if rule.name is None:
            continue
        if rule.name in first:
            c.error(
                d.file,
                (*d.path, "rules", i, "name"),
                f"rule name '{rule.name}' is already used by rules[{first[rule.name]}] of placement '{d.path[-1]}'",
            )
        first.setdefault(rule.name, i)


NULL_HINT = "in { … } and [ … ] a comma ends unquoted text, so quote text that holds commas"


def _warn_null_content(c: _Compiler, variants: Mapping[str, _Defined[Variant]]) -> None:
    """An empty (null) value is almost always unquoted text in a flow mapping: the comma ended it."""
    for d in variants.values():
        spec = d.spec
        fields: list[tuple[Path, Mapping[str, Any]]] = [(("content",), spec.content)]
        if spec.render is not None:
            fields.append((("render", "params"), spec.render.params))
        for where, values in fields:
            for path in _nulls(values, (*d.path, *where)):
                what = f"item [{path[-1]}]" if isinstance(path[-1], int) else f"'{path[-1]}'"
                c.warn(d.file, path, f"{what} has no value (null); {NULL_HINT}")


def _nulls(value: object, path: Path) -> Iterable[Path]:
    if value is None:
        yield path
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _nulls(item, (*path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _nulls(item, (*path, i))


def _warn_unused(
    c: _Compiler,
    placements: Mapping[str, _Defined[Placement]],
    experiments: Mapping[str, _Defined[Experiment]],
    variants: Mapping[str, _Defined[Variant]],
) -> None:
    rules = [rule for d in placements.values() for rule in d.spec.rules]
    used_experiments = {rule.experiment for rule in rules}
    used_variants = {d.spec.default for d in placements.values()} | {rule.serve for rule in rules}
    used_variants |= {arm.variant for d in experiments.values() for arm in d.spec.arms}
    for name, e in experiments.items():
        if name not in used_experiments:
            c.warn(e.file, e.path, f"experiment '{name}' is not used by any placement")
    for name, v in variants.items():
        if name not in used_variants:
            c.warn(v.file, v.path, f"variant '{name}' is not served by any placement or experiment")


def _warn_one_armed(c: _Compiler, experiments: Mapping[str, _Defined[Experiment]]) -> None:
    """An experiment that gives all its visitors one arm compares nothing, and its results say nothing.

    A stopped one serves nothing, so it is left alone.
    """
    for name, d in experiments.items():
        weighted = [arm for arm in d.spec.arms if arm.weight > 0]
        if d.spec.status != "stopped" and len(weighted) == 1:
            (arm,) = weighted
            alone = (
                "has one arm" if len(d.spec.arms) == 1 else f"gives every visitor arm '{arm.key}' (the others weigh 0)"
            )
            c.warn(
                d.file,
                (*d.path, "arms"),
                f"experiment '{name}' {alone}, so it compares nothing: add a control arm, "
                f"or serve '{arm.variant}' from a rule",
            )


def arm_salt(name: str, spec: Experiment) -> str:
    """The salt of an experiment's arm draw (its entry draw appends "/traffic").

    Version 1 hashes as before bucket versions existed, so the frozen vectors keep their buckets.
    """
    return (spec.salt or name) + ("" if spec.bucket_version == 1 else f"/v{spec.bucket_version}")


def _experiment(name: str, spec: Experiment) -> CompiledExperiment:
    salt = arm_salt(name, spec)
    if spec.layer is not None and spec.layer_slice is not None:
        entry_prefix = bucketing.hash_prefix(f"layer/{spec.layer}")
        low, high = (bucketing.percent_to_buckets(p) for p in spec.layer_slice)
    else:
        entry_prefix = bucketing.hash_prefix(f"{salt}/traffic")
        low, high = 0, bucketing.percent_to_buckets(100 if spec.traffic is None else spec.traffic)
    arm_keys = [arm.key for arm in spec.arms]
    start = None if spec.start is None else to_epoch(spec.start)
    end = None if spec.end is None else to_epoch(spec.end)
    return CompiledExperiment(
        key=name,
        description=spec.description,
        status=spec.status,
        arms=tuple(CompiledArm(a.key, a.variant, a.weight) for a in spec.arms),
        bounds=bucketing.arm_bounds([a.weight for a in spec.arms]),
        arm_prefix=bucketing.hash_prefix(salt),
        entry_prefix=entry_prefix,
        entry_range=(low, high),
        unit=None if spec.bucket_by is None else make_getter("attr", spec.bucket_by),
        bucket_by=spec.bucket_by,
        layer=spec.layer,
        forced=MappingProxyType({vid: arm_keys.index(key) for vid, key in spec.forced.items()}),
        start=start,
        end=end,
        running=spec.status == "running",
        window=(-math.inf if start is None else start, math.inf if end is None else end),
        bucket_version=spec.bucket_version,
        analysis_mode=None if spec.analysis is None else spec.analysis.mode,
        planned_days=None if spec.analysis is None else spec.analysis.planned_days,
        planned_visitors=None if spec.analysis is None else spec.analysis.planned_visitors,
    )


@dataclass(frozen=True, slots=True)
class _RuleExplainers:
    locate: Locate
    segments: Mapping[str, Explainer]

    def of(self, d: _Defined[Placement], i: int) -> Explainer | None:
        rule = d.spec.rules[i]
        if rule.when is not None:
            return compile_why_not(rule.when, d.file, (*d.path, "rules", i, "when"), self.locate, self.segments)
        if rule.segment is not None:
            return compile_why_not(Condition(segment=rule.segment), d.file, (), self.locate, self.segments)
        return None


def _placement(
    name: str, d: _Defined[Placement], experiments: Mapping[str, CompiledExperiment], explainers: _RuleExplainers
) -> CompiledPlacement:
    spec = d.spec
    rules = []
    for i, rule in enumerate(spec.rules):
        target: Predicate | None = None
        describe = "everyone"
        if rule.segment is not None:
            segment = rule.segment
            target = lambda f, s=segment: f.segment(s)  # noqa: E731 - bound per rule
            describe = f"segment {segment}"
        elif rule.when is not None:
            target = compile_condition(rule.when)
            describe = "inline condition"
        label = rule.name or f"rules[{i}]"
        rules.append(
            CompiledRule(
                label=label,
                target=target,
                serve=rule.serve,
                experiment=None if rule.experiment is None else experiments[rule.experiment],
                describe=describe,
                served=None if rule.serve is None else PlacementDecision(rule.serve, "targeting_match", label),
                why_not=explainers.of(d, i),
            )
        )
    skipped = {reason: PlacementDecision(spec.default, reason) for reason in ("no_consent", "no_unit_id", "holdout")}
    return CompiledPlacement(
        name,
        spec.description,
        spec.default,
        tuple(rules),
        PlacementDecision(spec.default, "default"),
        MappingProxyType(skipped),
    )


def _variant(name: str, spec: Variant) -> CompiledVariant:
    content = dict(spec.content)
    return CompiledVariant(name, spec.description, MappingProxyType(content))
