"""A load reads the bundle once: what compiles is what the revision names and what the last-good copy holds."""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import os
import random
import shutil
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.bundle.loader import ScorerFactory, load_bundle, load_snapshot, revision_of
from service.bundle.snapshot import Snapshot, read_snapshot, write_snapshot
from service.bundle.store import BundleStore, LoadReport, NotReadyError
from service.bundle.watcher import KEPT_COPIES, LEFTOVER_SECONDS, BundleWatcher, LastGood, fingerprint
from service.core.compile import Bundle
from service.core.errors import BundleError, Problem
from service.core.models import ModelCard, Scorer
from service.segments.onnx import OnnxScorer

ROOT = Path(__file__).parents[1]
GOOD_EDIT = ("serve: hero_vip }", "serve: hero_bold }")
BROKEN_EDIT = ("segment: vip,", "segment: vipp,")


def _copy(target: Path) -> Path:
    for kind in ("rules", "content", "models"):
        shutil.copytree(ROOT / kind, target / kind)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _editing_mid_load(path: Path, old: str, new: str) -> ScorerFactory:
    """A scorer factory that edits a rule file the first time a model is opened: after the rules were read."""
    done: list[bool] = []

    def open_model(card: ModelCard, model: bytes) -> Scorer:
        if not done:
            _edit(path, old, new)
            done.append(True)
        return OnnxScorer(card, model)

    return open_model


def _old_revision(root: Path) -> str:
    """The revision as the loader has always computed it, written out here so that it cannot drift."""
    digest = hashlib.sha256()
    for kind, suffixes in (
        ("rules", (".yaml", ".yml")),
        ("content", (".yaml", ".yml", ".html", ".mjml", ".txt")),
        ("models", (".yaml", ".yml", ".onnx")),
    ):
        if (root / kind).is_dir():
            for path in sorted(p for p in (root / kind).rglob("*") if p.is_file() and p.suffix in suffixes):
                digest.update(path.relative_to(root).as_posix().encode() + b"\0")
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def test_a_load_labels_a_bundle_with_the_revision_of_the_bytes_it_compiled(tmp_path: Path) -> None:
    bundle = _copy(tmp_path / "bundle")
    placements = bundle / "rules" / "placements.yaml"
    good = revision_of(bundle)
    compiled = load_bundle(bundle, open_model=_editing_mid_load(placements, *BROKEN_EDIT))
    assert compiled.revision == good  # not the revision of the broken edit made mid-load
    assert revision_of(bundle) != good


def test_an_edit_during_a_load_is_neither_labelled_good_nor_kept_as_last_good(tmp_path: Path) -> None:
    bundle = _copy(tmp_path / "bundle")
    placements = bundle / "rules" / "placements.yaml"
    good = revision_of(bundle)
    store = BundleStore(functools.partial(load_snapshot, open_model=_editing_mid_load(placements, *BROKEN_EDIT)))
    watcher = BundleWatcher(store, bundle, state_dir=tmp_path / "state")
    first = watcher.reload()
    assert (first.ok, first.revision, store.current.bundle.revision) == (True, good, good)
    kept = LastGood(tmp_path / "state" / "last-good").path()
    assert kept is not None
    assert (kept.name, load_bundle(kept).revision) == (good, good)  # the copy holds what compiled
    second = watcher.reload()  # the folder now holds the broken edit: it must be compiled, not skipped
    assert not second.ok
    assert second.problems[0].message.startswith("unknown segment 'vipp'")
    assert store.current.bundle.revision == good


def test_a_load_that_raises_is_a_failed_reload_reported_as_broken_edits_are(tmp_path: Path) -> None:
    """A bug or an OS error while loading counts as an error (log, /v1/bundle, the reload counter),
    not only as a traceback in the watcher's log, and the bundle before it keeps serving."""
    bundle = _copy(tmp_path / "bundle")
    calls: list[int] = []

    def load_then_fail(snapshot: Snapshot) -> Bundle:
        calls.append(1)
        if len(calls) > 1:
            raise RecursionError("maximum recursion depth exceeded")
        return load_snapshot(snapshot)

    reports: list[LoadReport] = []
    store = BundleStore(load_then_fail)
    watcher = BundleWatcher(store, bundle, on_reload=reports.append)
    good = watcher.reload().revision
    (bundle / "rules" / "placements.yaml").write_text((bundle / "rules" / "placements.yaml").read_text() + "\n")
    failed = watcher.reload()
    assert [r.ok for r in reports] == [True, False]
    assert (failed.revision, store.revision) == (good, good)
    assert store.last_problems == failed.problems
    assert "RecursionError: maximum recursion depth exceeded" in failed.problems[0].message


def _a_file_in_the_way(state: Path, _monkeypatch: pytest.MonkeyPatch) -> None:
    state.mkdir()
    (state / "last-good").write_text("not a folder")
    (state / "reload-trigger").mkdir()  # touch() cannot make it a file either


def _a_full_disk(_state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("service.bundle.watcher.write_snapshot", no_space)


@pytest.mark.parametrize("fault", [_a_file_in_the_way, _a_full_disk])
def test_a_last_good_copy_the_disk_cannot_take_costs_only_the_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fault: object
) -> None:
    """The bundle that compiled is served and counted as loaded, at start and on an admin reload; the log says
    what was not kept. A raise here crashed every worker at start, and made /admin/reload a 500."""
    bundle = _copy(tmp_path / "bundle")
    fault(tmp_path / "state", monkeypatch)  # type: ignore[operator]
    reports: list[LoadReport] = []
    store = BundleStore(load_snapshot)
    watcher = BundleWatcher(store, bundle, state_dir=tmp_path / "state", interval=0, on_reload=reports.append)
    first = watcher.start()
    try:
        _edit(bundle / "rules" / "placements.yaml", *GOOD_EDIT)
        second = watcher.request_reload()
    finally:
        watcher.stop()
    assert [(r.ok, r.revision) for r in reports] == [(True, first.revision), (True, second.revision)]
    assert store.revision == second.revision != first.revision
    assert f"bundle {second.revision} is served, but its last good copy was not kept in " in caplog.text


def test_a_file_replaced_by_one_of_the_same_size_and_mtime_is_seen(tmp_path: Path) -> None:
    """``cp -p``, ``rsync -t`` and reproducible builds keep the mtime: the inode and ctime still change."""
    bundle = _copy(tmp_path / "bundle")
    target = bundle / "rules" / "placements.yaml"
    before = fingerprint(bundle)
    text = target.read_text()
    twin = target.with_name("placements.new")
    twin.write_text(text.replace("hero_default", "hero_defaulx", 1))  # same size, other bytes
    stat = target.stat()
    os.utime(twin, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    twin.replace(target)
    assert (target.stat().st_size, target.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    assert fingerprint(bundle) != before


def test_a_configmap_mount_is_the_bundle_its_links_name(tmp_path: Path) -> None:
    """Kubernetes mounts a ConfigMap as links to ``..data/``, itself a link to a timestamped folder: the
    hidden folders are not read twice (every name was 'already defined'), so the revision is the plain copy's."""
    plain = _copy(tmp_path / "plain")
    mounted = _copy(tmp_path / "mounted")
    rules = mounted / "rules"
    data = rules / "..2026_12_02_10_00_00.123"
    data.mkdir()
    for path in sorted(rules.glob("*.yaml")):
        path.rename(data / path.name)
        path.symlink_to(Path("..data") / path.name)
    (rules / "..data").symlink_to(data.name)
    (rules / ".#placements.yaml").symlink_to("someone@host.1234")  # an editor's lock: hidden, never read
    assert load_bundle(mounted).revision == load_bundle(plain).revision


def test_a_link_out_of_the_bundle_is_refused_and_never_read(tmp_path: Path) -> None:
    """A template that links to /etc/passwd would render it, and an archive would pack it: a bundle holds its own files.

    (A linked folder is not walked at all: rglob does not follow links to folders.)
    """
    secret = tmp_path / "outside" / "secret.html"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0")
    bundle = _copy(tmp_path / "bundle")
    templates = bundle / "content" / "templates"
    (templates / "link.html").symlink_to(secret)
    (templates / "shared").symlink_to(secret.parent, target_is_directory=True)
    (templates / "inside.html").symlink_to("hero.html")  # a link that stays in the bundle is read
    snapshot = read_snapshot(bundle)
    assert not [name for name, data in snapshot.files.items() if b"root:x" in data]
    assert "content/templates/inside.html" in snapshot.files
    name = "content/templates/link.html"
    assert snapshot.unreadable == {
        name: "the file is a link to a file outside the bundle; a bundle holds its own files"
    }
    with pytest.raises(BundleError) as caught:
        load_bundle(bundle)
    assert [p.render() for p in caught.value.problems] == [f"{name}:1: {snapshot.unreadable[name]}"]


def test_what_killed_workers_left_in_the_state_dir_is_swept_once_an_hour_old(tmp_path: Path) -> None:
    """A worker killed mid-save leaves a staging folder, mid-prune a renamed-away copy, mid-pointer a
    ``.current-PID``: the next save removes those older than an hour, and never a save in progress."""
    kept = LastGood(tmp_path / "last-good")
    kept.folder.mkdir()
    old, fresh = time.time() - LEFTOVER_SECONDS - 60, time.time()
    leftovers = {".r1.staging-abc": True, ".r2.pruned-def": True, ".current-4711": False}
    for name, is_folder in leftovers.items():
        path = kept.folder / name
        if is_folder:
            path.mkdir()
            (path / "f").write_text("x")
        else:
            path.write_text("r1")
        os.utime(path, (old, old))
    in_progress = kept.folder / ".r3.staging-ghi"
    in_progress.mkdir()
    os.utime(in_progress, (fresh, fresh))
    kept.save(read_snapshot(_copy(tmp_path / "bundle")))
    names = {p.name for p in kept.folder.iterdir()}
    assert not names & set(leftovers)
    assert in_progress.name in names
    assert kept.path() is not None


def test_loads_racing_a_stream_of_edits_only_ever_serve_good_revisions(tmp_path: Path) -> None:
    bundle = _copy(tmp_path / "bundle")
    placements = bundle / "rules" / "placements.yaml"
    texts = {"good": placements.read_text()}
    texts["bold"] = texts["good"].replace(*GOOD_EDIT)
    texts["broken"] = texts["good"].replace(*BROKEN_EDIT)
    verdicts = {}
    for name, text in texts.items():
        placements.write_text(text)
        verdicts[revision_of(bundle)] = name != "broken"
    stop = threading.Event()

    def edit() -> None:
        order = ["broken", "bold", "broken", "good"]
        i = 0
        while not stop.is_set():
            placements.write_text(texts[order[i % len(order)]])  # not atomic: a load may see half a file
            i += 1

    store = BundleStore()
    editor = threading.Thread(target=edit)
    editor.start()
    try:
        reports = [store.load(bundle) for _ in range(12)]
    finally:
        stop.set()
        editor.join()
    for report in reports:
        if report.ok:
            assert report.snapshot is not None
            assert report.revision == report.snapshot.revision
            assert verdicts.get(report.revision, True)  # a half-written file is a state of its own
            load_snapshot(report.snapshot)  # the bytes labelled with that revision compile


def test_a_last_good_copy_is_written_from_the_snapshot_whatever_the_folder_holds_now(tmp_path: Path) -> None:
    bundle = _copy(tmp_path / "bundle")
    snapshot = read_snapshot(bundle)
    _edit(bundle / "rules" / "placements.yaml", *BROKEN_EDIT)
    last_good = LastGood(tmp_path / "last-good")
    last_good.save(snapshot)
    last_good.save(snapshot)  # a second worker saving the same revision changes nothing
    kept = last_good.path()
    assert kept is not None
    assert read_snapshot(kept).files == snapshot.files
    assert load_bundle(kept).revision == snapshot.revision
    assert sorted(p.name for p in kept.parent.iterdir()) == sorted(["current", snapshot.revision])  # no staging


def test_a_damaged_last_good_copy_is_replaced_not_trusted(tmp_path: Path) -> None:
    snapshot = read_snapshot(_copy(tmp_path / "bundle"))
    dest = tmp_path / "last-good" / snapshot.revision
    write_snapshot(snapshot, dest)
    (dest / "rules" / "placements.yaml").write_text("version: 1\nplacements: [broken\n")  # e.g. an older version
    write_snapshot(snapshot, dest)
    assert read_snapshot(dest).files == snapshot.files


def test_the_revision_of_the_example_bundle_is_computed_as_it_always_was() -> None:
    assert revision_of(ROOT) == _old_revision(ROOT) == load_bundle(ROOT).revision


NAMES = st.lists(
    st.tuples(
        st.sampled_from(["rules", "content", "models", "content/templates", "content/a-b", "rules/a.b"]),
        st.sampled_from(["a", "a-b", "a.b", "b", "Z", "a_b", "é"]),
        st.sampled_from([".yaml", ".yml", ".html", ".onnx", ".txt", ".json"]),
    ),
    min_size=1,
    max_size=8,
    unique=True,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=NAMES, data=st.binary(max_size=8))
def test_the_revision_formula_is_unchanged_for_any_tree_of_files(tmp_path: Path, names: list, data: bytes) -> None:  # type: ignore[type-arg]
    root = tmp_path / hashlib.sha256(repr((names, data)).encode()).hexdigest()[:12]
    for i, (folder, stem, suffix) in enumerate(names):
        path = root / folder / f"{stem}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data + bytes([i]))
    snapshot = read_snapshot(root)
    assert snapshot.revision == _old_revision(root)
    assert Snapshot(dict(reversed(list(snapshot.files.items())))).revision == snapshot.revision  # order-free
    copy = tmp_path / f"{root.name}-copy"
    write_snapshot(snapshot, copy)
    assert _old_revision(copy) == snapshot.revision
    shutil.rmtree(root)
    shutil.rmtree(copy)


def test_a_bundle_that_does_not_compile_raises_from_its_snapshot(tmp_path: Path) -> None:
    bundle = _copy(tmp_path / "bundle")
    _edit(bundle / "rules" / "placements.yaml", *BROKEN_EDIT)
    with pytest.raises(BundleError) as caught:
        load_snapshot(read_snapshot(bundle))
    assert caught.value.problems[0].file == "rules/placements.yaml"


def _numbered(n: int) -> Snapshot:
    return Snapshot({"rules/placements.yaml": f"version: 1\n# copy {n}\n".encode()})


def _copies(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


@pytest.mark.parametrize("saves", [1, KEPT_COPIES, KEPT_COPIES + 1, 3 * KEPT_COPIES])
def test_only_the_newest_last_good_copies_are_kept(tmp_path: Path, saves: int) -> None:
    """An edit storm writes a copy per revision that compiles: all but the newest go, the disk does not fill."""
    last_good = LastGood(tmp_path / "last-good")
    snapshots = [_numbered(n) for n in range(saves)]
    for snapshot in snapshots:
        last_good.save(snapshot)
    assert _copies(last_good.folder) == sorted(s.revision for s in snapshots[-(KEPT_COPIES + 1) :])
    kept = last_good.path()
    assert kept is not None
    assert read_snapshot(kept).files == snapshots[-1].files
    assert not [p for p in last_good.folder.iterdir() if p.name.startswith(".") and p.is_dir()]  # nothing left over


def test_an_undone_edit_saved_again_counts_as_new(tmp_path: Path) -> None:
    last_good = LastGood(tmp_path / "last-good")
    first, *others = [_numbered(n) for n in range(KEPT_COPIES + 2)]
    for snapshot in [first, *others[:KEPT_COPIES], first, others[-1]]:
        last_good.save(snapshot)
    assert first.revision in _copies(last_good.folder)  # saved again second to last: among the newest


def _save_series(folder: Path, numbers: list[int], seed: int) -> None:
    pauses = random.Random(seed)
    last_good = LastGood(folder)
    for n in numbers:
        time.sleep(pauses.uniform(0, 0.004))
        last_good.save(_numbered(n))


def test_workers_saving_and_pruning_at_once_keep_a_whole_current_copy(tmp_path: Path) -> None:
    """Processes (as granian's workers are) saving the same and different revisions with random pauses."""
    folder = tmp_path / "last-good"
    context = multiprocessing.get_context("fork")
    series = [[*range(20), *range(w, 40, 4)] for w in range(4)]  # a shared run of edits, then each its own
    workers = [context.Process(target=_save_series, args=(folder, s, w)) for w, s in enumerate(series)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    kept = LastGood(folder).path()
    assert kept is not None  # ``current`` names a copy that is there
    assert read_snapshot(kept).revision in {_numbered(n).revision for s in series for n in s[-1:]}
    assert len(_copies(folder)) <= KEPT_COPIES + 1
    for name in _copies(folder):
        assert read_snapshot(folder / name).revision == name  # every copy left is whole


NOT_LOADED = [  # the problems kept while nothing loaded → what every 503 says
    ((), "no bundle is loaded yet"),
    (
        (Problem("https://***@origin.example/b.tar.gz", (), "origin: gave up after 5 attempts: HTTP 503"),),
        (
            "no bundle is loaded yet; the last load failed: "
            "https://***@origin.example/b.tar.gz: origin: gave up after 5 attempts: HTTP 503"
        ),
    ),
    (
        (
            Problem("rules/a.yaml", ("segments", "vip"), "unknown segment 'vipp'", line=3),
            Problem("rules/b.yaml", (), "x"),
        ),
        (
            "no bundle is loaded yet; the last load failed: "
            "rules/a.yaml:3: segments.vip: unknown segment 'vipp' (and 1 more)"
        ),
    ),
]


@pytest.mark.parametrize(("problems", "detail"), NOT_LOADED, ids=["nothing-kept", "origin", "two-problems"])
def test_a_store_with_nothing_loaded_says_why(problems: tuple[Problem, ...], detail: str) -> None:
    store = BundleStore()
    store.keep_problems(problems)
    with pytest.raises(NotReadyError) as caught:
        store.current  # noqa: B018 - the property raises
    assert str(caught.value) == detail


def test_with_watching_off_the_worker_that_touched_the_trigger_does_not_load_again(tmp_path: Path) -> None:
    """Its own touch is no news to it: a second load of the folder could catch the next in-place edit half written."""
    bundle = _copy(tmp_path / "bundle")
    reports: list[LoadReport] = []
    watcher = BundleWatcher(
        BundleStore(load_snapshot), bundle, state_dir=tmp_path / "state", interval=0, on_reload=reports.append
    )
    watcher.start()
    try:
        watcher.request_reload()
        time.sleep(3 * 0.5)  # three of the trigger's checks (TRIGGER_INTERVAL_S)
    finally:
        watcher.stop()
    assert len(reports) == 2  # the start, and the request
