"""The origin as a worker's bundle source: what the store, the reload metric and /admin/reload are told."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from service.bundle.archive import build_archive
from service.bundle.source import Source, open_source
from service.bundle.store import BundleStore, LoadReport
from service.settings import Settings
from tests.fleet.conftest import OriginServer
from tests.fleet.test_archive import Member, _flip_a_byte, _grow_a_file, _repack, _wrong_revision

TAMPERED: dict[str, tuple[Callable[[list[Member]], list[Member]], str]] = {
    "digest": (_flip_a_byte, "sha256 is "),
    "size": (_grow_a_file, "size is "),
    "revision": (_wrong_revision, "revision is '0123456789abcdef' but the files give "),
}


def _source(origin: OriginServer, tmp_path: Path) -> tuple[BundleStore, list[LoadReport], Source]:
    store = BundleStore()
    reports: list[LoadReport] = []
    settings = Settings(bundle_url=origin.url, bundle_cache=tmp_path / "cache", bundle_poll_seconds=30)
    return store, reports, open_source(settings, store, reports.append)


@pytest.mark.parametrize("case", TAMPERED, ids=list(TAMPERED))
def test_an_archive_that_fails_verification_is_a_load_error(
    case: str, origin: OriginServer, bundle: Path, tmp_path: Path
) -> None:
    good = build_archive(bundle, tmp_path / "good.tar.gz")
    packed = (tmp_path / "good.tar.gz").read_bytes()
    origin.publish(packed)
    store, reports, source = _source(origin, tmp_path)
    assert source.reload().ok
    tamper, message = TAMPERED[case]
    origin.publish(_repack(packed, tamper))
    report = source.reload()
    assert (report.ok, report.revision) == (False, good.revision)
    [problem] = report.problems
    assert problem.message.startswith(f"the archive from the origin failed verification: {message}")
    assert problem.file == ("manifest.json" if case == "revision" else "content/catalog.yaml")
    assert store.last_problems == report.problems  # what /v1/bundle shows as last_load_errors
    assert [r.ok for r in reports] == [True, False]  # what the reload metric counts
    assert store.current.bundle.revision == good.revision
    origin.publish(packed)
    assert source.reload().ok
    assert store.last_problems == ()


def test_with_the_origin_down_a_reload_names_the_revision_served(
    origin: OriginServer, bundle: Path, tmp_path: Path
) -> None:
    good = build_archive(bundle, tmp_path / "good.tar.gz")
    origin.publish((tmp_path / "good.tar.gz").read_bytes())
    _, _, source = _source(origin, tmp_path)
    assert source.reload().ok
    origin.fail_always = True
    origin.fail_status = 404  # not retried, so the test does not wait for backoff
    report = source.reload()
    assert (report.ok, report.revision) == (False, good.revision)
    assert "HTTP 404" in report.problems[0].message
