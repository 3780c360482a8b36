"""What no test reaches: every rule, default, segment, variant and experiment arm, with its file:line.

A placement's items are its rules, the arms of the experiments its rules run, and its
default; its percentage is the share of them that some test reached. A rule is reached
when the trace says it decided its placement (``matched`` or ``forced``), an arm when a
test's visitor entered it, the default when a placement fell through to it. A segment is
reached when some test's visitor is in it, a variant when some test was served it.

The compiled bundle does not keep the lines of what it was compiled from, so the rule and
content files are read once more here for them (with the loader's own YAML reader).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from service.bundle.loader import LOCALES_DIR
from service.bundle.snapshot import CONTENT_DIR, RULES_DIR, YAML_SUFFIXES
from service.bundle.yamlfile import YamlError, parse_yaml
from service.checks.runner import Reach
from service.core.compile import Bundle

YamlPath = tuple[str | int, ...]
PERCENT = 100


@dataclass(frozen=True, slots=True)
class Item:
    """One thing tests can reach; ``placement`` is None for segments and variants."""

    kind: str  # rule, default, arm, segment, variant
    label: str  # as shown: "rule vip_offer of home_hero"
    placement: str | None
    source: YamlPath  # where it is defined: ("placements", "home_hero", "rules", 0)
    reached: bool
    servable: bool = True  # False: no placement can serve it (an experiment no rule runs)


@dataclass(frozen=True, slots=True)
class Located:
    item: Item
    file: str
    line: int

    def render(self) -> str:
        note = " (no placement serves it)" if not self.item.servable else ""
        return f"{self.file}:{self.line}: {self.item.label}: no test reaches it{note}"


def items(bundle: Bundle, reach: Reach) -> list[Item]:
    """Every item of the bundle, in bundle order, and whether the tests reached it."""
    return [*_placement_items(bundle, reach), *_segment_items(bundle, reach), *_variant_items(bundle, reach)]


def _placement_items(bundle: Bundle, reach: Reach) -> Iterator[Item]:
    for name, placement in bundle.placements.items():
        for i, rule in enumerate(placement.rules):
            where: YamlPath = ("placements", name, "rules", i)
            yield Item("rule", f"rule {rule.label} of {name}", name, where, (name, rule.label) in reach.rules)
            experiment = rule.experiment
            if experiment is not None:
                for j, arm in enumerate(experiment.arms):
                    yield Item(
                        "arm",
                        f"arm {arm.key} of experiment {experiment.key} in {name}",
                        name,
                        ("experiments", experiment.key, "arms", j),
                        (experiment.key, arm.key) in reach.arms,
                    )
        yield Item(
            "default",
            f"default of {name} (no rule matching)",
            name,
            ("placements", name, "default"),
            name in reach.defaults,
        )
    yield from _idle_arms(bundle)


def _idle_arms(bundle: Bundle) -> Iterator[Item]:
    """Arms of experiments no rule runs: listed, but no test could reach them."""
    running = {r.experiment.key for p in bundle.placements.values() for r in p.rules if r.experiment is not None}
    for key, experiment in bundle.experiments.items():
        if key not in running:
            for j, arm in enumerate(experiment.arms):
                where: YamlPath = ("experiments", key, "arms", j)
                yield Item("arm", f"arm {arm.key} of experiment {key}", None, where, False, servable=False)


def _segment_items(bundle: Bundle, reach: Reach) -> Iterator[Item]:
    for name in bundle.segments:
        yield Item("segment", f"segment {name}", None, ("segments", name), name in reach.segments)


def _variant_items(bundle: Bundle, reach: Reach) -> Iterator[Item]:
    servable = _servable(bundle)
    for name in bundle.variants:
        yield Item("variant", f"variant {name}", None, ("variants", name), name in reach.variants, name in servable)


def _servable(bundle: Bundle) -> set[str]:
    found = set()
    for placement in bundle.placements.values():
        found.add(placement.default)
        for rule in placement.rules:
            if rule.serve is not None:
                found.add(rule.serve)
            if rule.experiment is not None:
                found.update(arm.variant for arm in rule.experiment.arms)
    return found


def percentages(found: Iterable[Item]) -> dict[str, tuple[int, int]]:
    """Placement → (items reached, items)."""
    out: dict[str, tuple[int, int]] = {}
    for item in found:
        if item.placement is not None:
            reached, total = out.get(item.placement, (0, 0))
            out[item.placement] = (reached + item.reached, total + 1)
    return out


def locate(root: Path, found: Iterable[Item]) -> list[Located]:
    """The file and line of each item, from the rule and content files."""
    lines = _source_lines(root)
    out = []
    for item in found:
        file, line = lines.get(item.source) or lines.get(item.source[:2], ("?", 1))
        out.append(Located(item, file, line))
    return out


def _source_lines(root: Path) -> dict[YamlPath, tuple[str, int]]:
    """(file, line) of every key and item of the rule and content files, by path in the file."""
    out: dict[YamlPath, tuple[str, int]] = {}
    skipped = root / LOCALES_DIR
    for kind in (RULES_DIR, CONTENT_DIR):
        for path in sorted((root / kind).rglob("*")):
            if path.suffix not in YAML_SUFFIXES or path.is_relative_to(skipped) or not path.is_file():
                continue
            try:
                document = parse_yaml(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, YamlError):  # the loader already accepted it; a race at worst
                continue
            name = path.relative_to(root).as_posix()
            for where, line in document.lines.items():
                if len(where) >= 2:  # a section's own key is shared by every file: only what is in it
                    out.setdefault(where, (name, line))
    return out
