"""A reload rebuilds only what changed, and answers exactly as a fresh load of the same files does."""

from __future__ import annotations

import functools
import gc
import shutil
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from loadtests.pageview_mix import page_views
from service.bundle.loader import Reuse, load_bundle, load_snapshot
from service.bundle.store import BundleStore
from service.core.compile import Bundle
from service.core.decide import decide
from service.core.models import ModelCard, Scorer
from service.core.rendering import RenderInputs
from service.http import wire
from service.http.mapping import decision_response, to_core
from service.render.blocks import CompiledBlocks
from service.render.cache import RenderCache
from service.render.page import Tally, inputs_for, render_decision
from service.render.sandbox import TailorSandbox
from service.segments.onnx import OnnxScorer
from service.settings import Settings

ROOT = Path(__file__).parents[1]
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
VIEWS = [
    msgspec.convert({**view.body, "render": True, "context": {**view.body["context"], "now": NOW.isoformat()}},
                    wire.DecideRequest)
    for view in page_views(80, 7, NOW)
]  # fmt: skip
# One edit of each kind of file: (file, text before, text after, whether some page view shows it).
EDITS = {
    "rules": ("rules/placements.yaml", "serve: hero_vip }", "serve: hero_bold }", True),
    "template": ("content/templates/hero.html", 'class="tl-hero__headline"', 'class="tl-hero__headline big"', True),
    "locale": ("content/locales/en.yaml", "greeting: Hi {name}", "greeting: Hello {name}", True),
    "variants": ("content/variants.yaml", "image: /img/hero/season.jpg", "image: /img/hero/winter.jpg", True),
    "model card": ("models/churn.yaml", "Days from the last purchase", "Days since the last purchase", False),
}
BROKEN = ("rules/placements.yaml", "segment: vip,", "segment: vipp,")


def _copy(target: Path) -> Path:
    for kind in ("rules", "content", "models"):
        shutil.copytree(ROOT / kind, target / kind)
    return target


def _edit(root: Path, file: str, old: str, new: str) -> None:
    text = (root / file).read_text()
    assert old in text
    (root / file).write_text(text.replace(old, new, 1))


def _answers(bundle: Bundle, cache: RenderCache | None) -> list[bytes]:
    """Every page view's response, rendered, as ``POST /v1/decide`` would encode it (ids and revision aside)."""
    out = []
    for view in VIEWS:
        request = to_core(view, Settings(), lambda: NOW, client_time=True)
        decision = decide(bundle, request)
        rendered = render_decision(bundle, decision, inputs_for(request, decision.segments), cache=cache, tally=Tally())
        response = decision_response(bundle, decision, "id", rendered, explain=True)
        out.append(msgspec.json.encode(msgspec.structs.replace(response, revision="")))
    return out


class Opened:
    """A scorer factory that notes which models it had to open."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, card: ModelCard, model: bytes) -> Scorer:
        self.names.append(card.name)
        return OnnxScorer(card, model)


def _store(opened: Opened) -> BundleStore:
    return BundleStore(functools.partial(load_snapshot, open_model=opened, reuse=Reuse()))


@pytest.mark.parametrize("kind", EDITS)
def test_a_reload_answers_as_a_fresh_load_of_the_same_files(kind: str, tmp_path: Path) -> None:
    root = _copy(tmp_path / "bundle")
    store, cache = _store(Opened()), RenderCache(8 * 1024 * 1024)
    assert store.load(root).ok
    before = _answers(store.current.bundle, cache)  # fills the render cache that the reload keeps
    file, old, new, visible = EDITS[kind]
    _edit(root, file, old, new)
    report = store.load(root)
    assert report.ok, report.problems
    fresh = load_bundle(root)
    assert store.current.bundle.revision == fresh.revision
    reloaded = _answers(store.current.bundle, cache)
    assert reloaded == _answers(fresh, None)
    assert (reloaded != before) is visible  # the edit shows wherever it should: nothing stale was reused


@pytest.mark.parametrize(
    ("kind", "templates_reused", "models_opened"),
    [("rules", True, []), ("template", False, []), ("locale", False, []), ("variants", False, []),
     ("model card", True, ["churn"])],
)  # fmt: skip
def test_a_reload_rebuilds_only_the_parts_whose_files_changed(
    kind: str, templates_reused: bool, models_opened: list[str], tmp_path: Path
) -> None:
    root = _copy(tmp_path / "bundle")
    opened = Opened()
    store = _store(opened)
    store.load(root)
    first = store.current.bundle
    assert sorted(opened.names) == sorted(first.models)
    opened.names.clear()
    file, old, new, _ = EDITS[kind]
    _edit(root, file, old, new)
    assert store.load(root).ok
    assert (store.current.bundle.blocks is first.blocks) is templates_reused
    assert opened.names == models_opened


def test_a_broken_edit_keeps_the_served_parts_for_the_fix_that_follows(tmp_path: Path) -> None:
    root = _copy(tmp_path / "bundle")
    opened = Opened()
    store = _store(opened)
    store.load(root)
    first = store.current.bundle
    opened.names.clear()
    _edit(root, *BROKEN)
    assert not store.load(root).ok
    _edit(root, BROKEN[0], BROKEN[2], BROKEN[1])  # fixed again
    _edit(root, *EDITS["rules"][:3])
    assert store.load(root).ok
    assert store.current.bundle.blocks is first.blocks
    assert opened.names == []


def test_a_load_reports_its_wall_and_cpu_time(tmp_path: Path) -> None:
    report = BundleStore().load(_copy(tmp_path / "bundle"))
    assert report.ok
    assert report.cpu_seconds > 0
    assert report.seconds > 0


# Templates that extend and include others, with a variant that renders them, next to the bundle's own.
LAYERED = {
    "content/templates/partials/frame.html": '<div class="frame">{% block body %}{% endblock %}</div>\n',
    "content/templates/partials/note.html": '<p class="note">{{ t("greeting", name="you") }}</p>\n',
    "content/templates/noted.html": (
        '{% extends "partials/frame.html" %}{% import "partials/ui.html" as ui %}'
        '{% block body %}{% include "partials/note.html" %}{{ ui.button("Go", "/go") }}{% endblock %}\n'
    ),
    "content/layered.yaml": (
        "version: 1\nvariants:\n  noted:\n    content: {}\n"
        "    render: { template: noted.html, fallback: <p>noted</p> }\n"
    ),
}
# A template edit of each kind: (file, text before, text after, the templates that must be built again).
TEMPLATE_EDITS = {
    "a page template": ("content/templates/hero.html", 'class="tl-hero__headline"', 'class="tl-hero__headline x"',
                        {"hero.html"}),
    "a macro file": ("content/templates/partials/ui.html", 'class="tl-button', 'class="x tl-button',
                     {"partials/ui.html"}),
    "an included template": ("content/templates/partials/note.html", 'class="note"', 'class="note x"',
                             {"partials/note.html"}),
    "an extended template": ("content/templates/partials/frame.html", 'class="frame"', 'class="frame x"',
                             {"partials/frame.html"}),
    "an MJML email": ("content/templates/email/cart.mjml", '#0b7285',
                      '#0b7286', {"email/cart.mjml"}),
}  # fmt: skip
INPUTS = RenderInputs({"first_name": "Ada", "cart": {"total": 12.5}}, {"locale": "en"}, ("vip",), NOW, True)


def _layered(target: Path) -> Path:
    root = _copy(target)
    for file, text in LAYERED.items():
        (root / file).write_text(text)
    return root


def _blocks(bundle: Bundle) -> CompiledBlocks:
    assert isinstance(bundle.blocks, CompiledBlocks)
    return bundle.blocks


def _every_block(bundle: Bundle) -> dict[str, str]:
    """Every variant's block rendered for one visitor, without a render cache."""
    blocks = _blocks(bundle)
    out = {}
    for variant in sorted(blocks.blocks):
        rendered = blocks.render(variant, INPUTS)
        assert rendered.status == "rendered", rendered
        out[variant] = rendered.html
    return out


@pytest.mark.parametrize("kind", TEMPLATE_EDITS)
def test_a_template_edit_builds_only_that_template_and_renders_as_a_fresh_load(kind: str, tmp_path: Path) -> None:
    root = _layered(tmp_path / "bundle")
    store = _store(Opened())
    assert store.load(root).ok
    before = _every_block(store.current.bundle)
    templates = root / "content/templates"
    everything = {path.relative_to(templates).as_posix() for path in templates.rglob("*.*")}
    assert _blocks(store.current.bundle).rebuilt == everything
    file, old, new, rebuilt = TEMPLATE_EDITS[kind]
    _edit(root, file, old, new)
    assert store.load(root).ok
    assert _blocks(store.current.bundle).rebuilt == rebuilt
    fresh = load_bundle(root)
    after = _every_block(store.current.bundle)
    assert after == _every_block(fresh)  # byte for byte
    assert _answers(store.current.bundle, None) == _answers(fresh, None)
    changed = {variant for variant in after if after[variant] != before[variant]}
    assert changed
    assert all(new in after[variant] for variant in changed)  # every dependent shows the edit


def test_the_kept_templates_follow_the_loads_that_succeed(tmp_path: Path) -> None:
    """A rules edit takes the blocks whole, a broken template edit keeps nothing, and the fix builds one template."""
    root = _layered(tmp_path / "bundle")
    store = _store(Opened())
    assert store.load(root).ok
    _edit(root, *EDITS["rules"][:3])
    assert store.load(root).ok
    _edit(root, "content/templates/partials/note.html", "</p>", "{% if %}</p>")
    assert not store.load(root).ok
    _edit(root, "content/templates/partials/note.html", "{% if %}</p>", "!</p>")
    assert store.load(root).ok
    assert _blocks(store.current.bundle).rebuilt == {"partials/note.html"}
    assert _every_block(store.current.bundle) == _every_block(load_bundle(root))


def _environments() -> int:
    gc.collect()
    return sum(isinstance(o, TailorSandbox) for o in gc.get_objects())


def test_template_edits_leave_no_earlier_environment_alive(tmp_path: Path) -> None:
    """A kept tree points at the environment that parsed it; that one must not hold every load before it."""
    root = _layered(tmp_path / "bundle")
    store = _store(Opened())
    assert store.load(root).ok
    before = _environments()  # this load's, and those other tests still hold
    for n in range(8):
        _edit(root, "content/templates/partials/note.html", "</p>" if n == 0 else f"{n - 1}</p>", f"{n}</p>")
        assert store.load(root).ok
    assert _environments() <= before + 1  # the served load's, and the first one's, whose trees it still uses
