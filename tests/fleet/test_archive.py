"""Bundle archives: deterministic builds, and extraction that refuses anything it did not expect."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from service.bundle import archive as archive_module
from service.bundle.archive import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    ArchiveError,
    build_archive,
    extract_archive,
)
from service.bundle.loader import bundle_files, load_bundle, revision_of
from service.core.errors import BundleError

Member = tuple[tarfile.TarInfo, bytes]
Edit = Callable[[list[Member]], list[Member]]


def _members(data: bytes) -> list[Member]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        out = []
        for info in tar:
            stream = tar.extractfile(info)
            out.append((info, stream.read() if stream else b""))
        return out


def _repack(data: bytes, edit: Edit) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, payload in edit(_members(data)):
            tar.addfile(info, io.BytesIO(payload) if info.isreg() else None)
    return buffer.getvalue()


def _file(name: str, payload: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


def _edit_manifest(members: list[Member], change: Callable[[dict[str, object]], None]) -> list[Member]:
    info, raw = members[0]
    manifest = json.loads(raw)
    change(manifest)
    return [_file(info.name, json.dumps(manifest).encode()), *members[1:]]


def _list_in_manifest(members: list[Member], name: str, payload: bytes) -> list[Member]:
    def add(manifest: dict[str, object]) -> None:
        files = manifest["files"]
        assert isinstance(files, dict)
        files[name] = {"sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)}

    return _edit_manifest(members, add)


def _flip_a_byte(members: list[Member]) -> list[Member]:
    info, payload = members[1]
    return [members[0], (info, bytes([payload[0] ^ 0x01]) + payload[1:]), *members[2:]]


def _grow_a_file(members: list[Member]) -> list[Member]:
    info, payload = members[1]
    bigger = payload + b"\n# more\n"
    return [members[0], _file(info.name, bigger), *members[2:]]


def _extra_file(members: list[Member]) -> list[Member]:
    return [*members, _file("rules/extra.yaml", b"version: 1\n")]


def _traversal(members: list[Member]) -> list[Member]:
    payload = b"pwned\n"
    return [*_list_in_manifest(members, "../x", payload), _file("../x", payload)]


def _absolute(members: list[Member]) -> list[Member]:
    return [*members, _file("/tmp/x.yaml", b"pwned\n")]


def _symlink(members: list[Member]) -> list[Member]:
    link = tarfile.TarInfo("rules/link.yaml")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    return [*members, (link, b"")]


def _hardlink(members: list[Member]) -> list[Member]:
    link = tarfile.TarInfo("rules/link.yaml")
    link.type = tarfile.LNKTYPE
    link.linkname = members[1][0].name
    return [*members, (link, b"")]


def _device(members: list[Member]) -> list[Member]:
    device = tarfile.TarInfo("rules/null.yaml")
    device.type = tarfile.CHRTYPE
    return [*members, (device, b"")]


def _missing_file(members: list[Member]) -> list[Member]:
    return members[:-1]


def _wrong_version(members: list[Member]) -> list[Member]:
    return _edit_manifest(members, lambda manifest: manifest.update(format_version=FORMAT_VERSION + 1))


def _wrong_revision(members: list[Member]) -> list[Member]:
    return _edit_manifest(members, lambda manifest: manifest.update(revision="0123456789abcdef"))


def _manifest_not_first(members: list[Member]) -> list[Member]:
    return [*members[1:], members[0]]


def _duplicate(members: list[Member]) -> list[Member]:
    return [*members, members[1]]


def _not_a_bundle_file(members: list[Member]) -> list[Member]:
    payload = b"hello\n"
    return [*_list_in_manifest(members, "notes.txt", payload), _file("notes.txt", payload)]


TAMPERING: dict[str, tuple[Edit, str]] = {
    "changed byte": (_flip_a_byte, "sha256 is"),
    "changed size": (_grow_a_file, "size is"),
    "extra file": (_extra_file, "rules/extra.yaml: is not listed in the manifest"),
    "path traversal": (_traversal, "../x: unsafe path"),
    "absolute path": (_absolute, "/tmp/x.yaml: unsafe path"),
    "symlink": (_symlink, "rules/link.yaml: is a symlink"),
    "hard link": (_hardlink, "rules/link.yaml: is a hard link"),
    "device": (_device, "rules/null.yaml: is a device"),
    "missing file": (_missing_file, "listed in the manifest but missing from the archive"),
    "wrong format_version": (_wrong_version, f"manifest.json: unsupported format_version {FORMAT_VERSION + 1}"),
    "wrong revision": (_wrong_revision, "manifest.json: revision is '0123456789abcdef'"),
    "manifest not first": (_manifest_not_first, "the archive must start with manifest.json"),
    "duplicate member": (_duplicate, "appears twice in the archive"),
    "not a bundle file": (_not_a_bundle_file, "notes.txt: is not a bundle file"),
}


@pytest.fixture
def packed(bundle: Path, tmp_path: Path) -> bytes:
    out = tmp_path / "bundle.tar.gz"
    build_archive(bundle, out)
    return out.read_bytes()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_same_bundle_gives_byte_identical_archives(bundle: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.tar.gz"
    build_archive(bundle, first)
    for path in bundle_files(bundle):  # times and modes of the source files must not leak into the archive
        os.utime(path, (1_000_000, 1_000_000))
        path.chmod(0o600)
    second = tmp_path / "out" / "second.tar.gz"
    build_archive(bundle, second)
    assert first.read_bytes() == second.read_bytes()


def test_the_archive_has_the_manifest_first_then_sorted_plain_files(packed: bytes) -> None:
    assert packed[4:8] == b"\0\0\0\0"  # gzip header mtime
    members = _members(packed)
    names = [info.name for info, _ in members]
    assert names[0] == MANIFEST_NAME
    assert names[1:] == sorted(names[1:])
    for info, _ in members:
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode) == (0, 0, 0, "", "", 0o644)
        assert info.isreg()


def test_the_manifest_lists_every_bundle_file_with_its_digest(bundle: Path, tmp_path: Path) -> None:
    manifest = build_archive(bundle, tmp_path / "bundle.tar.gz")
    expected = {
        path.relative_to(bundle).as_posix(): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)
        for path in bundle_files(bundle)
    }
    assert {name: (entry.sha256, entry.size) for name, entry in manifest.files.items()} == expected
    assert (manifest.format, manifest.format_version, manifest.revision) == (
        "tailor-bundle",
        FORMAT_VERSION,
        revision_of(bundle),
    )
    stored = json.loads(_members((tmp_path / "bundle.tar.gz").read_bytes())[0][1])
    assert stored["revision"] == manifest.revision
    assert set(stored["files"]) == set(expected)


def test_build_then_extract_loads_the_same_revision(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle.tar.gz"
    built = build_archive(bundle, out)
    extracted = extract_archive(out, tmp_path / "replica" / "bundle")
    assert extracted == built
    assert load_bundle(tmp_path / "replica" / "bundle").revision == revision_of(bundle) == built.revision
    assert (tmp_path / "replica" / "bundle" / MANIFEST_NAME).is_file()
    assert sorted(p.name for p in (tmp_path / "replica").iterdir()) == ["bundle"]  # no staging left behind


def test_extract_takes_bytes_and_replaces_an_existing_folder(packed: bytes, bundle: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "stale.txt").write_text("old")
    extract_archive(packed, dest)
    assert not (dest / "stale.txt").exists()
    assert load_bundle(dest).revision == revision_of(bundle)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_broken_bundle_is_never_packed(bundle: Path, tmp_path: Path) -> None:
    shutil.rmtree(bundle / "content")
    out = tmp_path / "broken.tar.gz"
    with pytest.raises(BundleError, match="no 'content' folder"):
        build_archive(bundle, out)
    assert not out.exists()
    assert list(tmp_path.glob(".broken*")) == []


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_a_tampered_archive_is_refused_and_dest_is_untouched(packed: bytes, tmp_path: Path, case: str) -> None:
    edit, message = TAMPERING[case]
    dest = tmp_path / "replica" / "bundle"
    dest.mkdir(parents=True)
    (dest / "keep.txt").write_text("serving")
    with pytest.raises(ArchiveError) as caught:
        extract_archive(_repack(packed, edit), dest)
    assert message in str(caught.value)
    assert _snapshot(dest) == {"keep.txt": b"serving"}
    assert [p.name for p in (tmp_path / "replica").iterdir()] == ["bundle"]
    assert not (tmp_path / "x").exists()


# mtime=0 and ids of our own: a gzip header holds the time it was made, and xdist refuses
# a run whose workers collected different test ids.
@pytest.mark.parametrize(
    "data",
    [b"", b"not an archive", gzip.compress(b"not a tar", mtime=0)],
    ids=["empty", "not an archive", "a gzip of no tar"],
)
def test_something_that_is_not_a_tar_gz_is_refused(data: bytes, tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match=r"not a readable \.tar\.gz|must start with manifest\.json"):
        extract_archive(data, tmp_path / "dest")
    assert list(tmp_path.iterdir()) == []


def test_limits_are_checked_from_the_manifest(packed: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive_module, "MAX_FILES", 1)
    with pytest.raises(ArchiveError, match=r"manifest\.json: \d+ files; the limit is 1"):
        extract_archive(packed, tmp_path / "dest")
    monkeypatch.setattr(archive_module, "MAX_FILES", 100)
    monkeypatch.setattr(archive_module, "MAX_TOTAL_BYTES", 10)
    with pytest.raises(ArchiveError, match=r"the files add up to \d+ bytes; the limit is 10"):
        extract_archive(packed, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_a_bundle_over_the_limits_is_not_built(bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive_module, "MAX_TOTAL_BYTES", 10)
    with pytest.raises(ArchiveError, match="the limit is 10"):
        build_archive(bundle, tmp_path / "big.tar.gz")
    assert not (tmp_path / "big.tar.gz").exists()
