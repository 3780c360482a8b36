"""A bundle's bytes, read once: what a load compiles, what its revision names, what last-good copies hold.

A load used to parse the files, then read them again for the revision, then copy the live folder
as the last good bundle. An editor saving in between made the loader label one state of the files
with the revision of another, and keep a broken state as "last good". Everything after the read
now works from one ``Snapshot``: the bytes that compile are the bytes the revision hashes and the
bytes a last-good copy holds.

The revision is a hash of every file's path and bytes (in ``bundle_files`` order), so two
replicas with the same files report the same revision.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType

RULES_DIR = "rules"
CONTENT_DIR = "content"
MODELS_DIR = "models"
TEMPLATE_SUFFIXES = (".html", ".mjml", ".txt")
MODEL_SUFFIXES = (".onnx",)
YAML_SUFFIXES = (".yaml", ".yml")
KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (RULES_DIR, YAML_SUFFIXES),
    (CONTENT_DIR, (*YAML_SUFFIXES, *TEMPLATE_SUFFIXES)),
    (MODELS_DIR, (*YAML_SUFFIXES, *MODEL_SUFFIXES)),
)
REVISION_CHARS = 16


ROOT = "."  # the bundle folder itself, as a Snapshot's key: unreadable[ROOT] says why there is no bundle


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The bundle files (path relative to the bundle → bytes) and the folders that existed, as read once."""

    files: Mapping[str, bytes]
    folders: frozenset[str] = frozenset()  # e.g. "rules", "content/templates": tells "no folder" from "empty"
    unreadable: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # path → why
    revision: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", MappingProxyType(dict(sorted(self.files.items(), key=_order))))
        object.__setattr__(self, "revision", revision_of_files(self.files))

    def under(self, folder: str, suffixes: tuple[str, ...]) -> list[str]:
        """The files below ``folder`` (any depth) with one of ``suffixes``, in bundle order."""
        prefix = f"{folder}/"
        return [name for name in self.files if name.startswith(prefix) and name.endswith(suffixes)]


def _order(item: tuple[str, bytes]) -> tuple[int, tuple[str, ...]]:
    """``bundle_files`` order: by kind, then as pathlib sorts paths (part by part, not character by character)."""
    parts = tuple(item[0].split("/"))
    kinds = [kind for kind, _ in KINDS]
    return (kinds.index(parts[0]) if parts[0] in kinds else len(kinds), parts)


def revision_of_files(files: Mapping[str, bytes]) -> str:
    """The content hash of these files; unchanged from the revision replicas have always reported."""
    digest = hashlib.sha256()
    for name, data in sorted(files.items(), key=_order):
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()[:REVISION_CHARS]


def bundle_files(root: Path) -> list[Path]:
    """Every file that makes up the bundle in ``root``, in a stable order."""
    files: list[Path] = []
    for kind, suffixes in KINDS:
        folder = root / kind
        if folder.is_dir():
            files += sorted(p for p in _visible(folder) if p.is_file() and p.suffix in suffixes)
    return files


def _visible(folder: Path) -> list[Path]:
    """Everything under ``folder`` but hidden names and what they hold: a Kubernetes ConfigMap mounts its
    files as links into ``..data`` and its timestamped twin, and editors keep ``.#name.yaml`` locks."""
    return [p for p in folder.rglob("*") if not any(part.startswith(".") for part in p.relative_to(folder).parts)]


def read_snapshot(root: Path) -> Snapshot:
    """Read every bundle file in ``root`` once. A file that vanishes meanwhile is left out (the next load sees)."""
    files: dict[str, bytes] = {}
    unreadable: dict[str, str] = {}
    if not root.is_dir():  # one problem, not "no rules folder" and "no content folder"
        why = "the bundle is a file, not a folder" if root.exists() else "the bundle folder does not exist"
        return Snapshot(files, frozenset(), MappingProxyType({ROOT: why}))
    inside = root.resolve()
    for path in bundle_files(root):
        name = path.relative_to(root).as_posix()
        if not path.resolve().is_relative_to(inside):  # a template could include /etc/passwd, or an archive pack it
            unreadable[name] = "the file is a link to a file outside the bundle; a bundle holds its own files"
            continue
        try:
            files[name] = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            unreadable[name] = f"the file cannot be read ({exc.strerror or type(exc).__name__})"
    return Snapshot(files, _folders(root), MappingProxyType(unreadable))


def _folders(root: Path) -> frozenset[str]:
    found = set()
    for kind, _ in KINDS:
        folder = root / kind
        if folder.is_dir():
            found.add(kind)
            found.update(p.relative_to(root).as_posix() for p in _visible(folder) if p.is_dir())
    return frozenset(found)


def write_snapshot(snapshot: Snapshot, dest: Path) -> None:
    """Write the snapshot's files as the folder ``dest``, all or nothing: a staging folder, then one rename.

    Several processes may write the same revision at once; the first rename wins and the others'
    staging folders are dropped. A ``dest`` that holds other bytes (damaged, or written by an older
    version) is replaced.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.staging-", dir=dest.parent))
    try:
        for name, data in snapshot.files.items():
            target = staging.joinpath(*PurePosixPath(name).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        _fsync_tree(staging)
        _move_into_place(staging, dest, snapshot.revision)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging: Path, dest: Path, revision: str) -> None:
    if _holds(dest, revision):
        return  # another process wrote exactly these bytes first
    if dest.exists():
        stale = dest.with_name(f".{dest.name}.stale-{uuid.uuid4().hex}")
        try:
            dest.rename(stale)
        except FileNotFoundError:
            pass
        else:
            shutil.rmtree(stale, ignore_errors=True)
    try:
        staging.rename(dest)
    except OSError:  # another process renamed its copy of the same bytes into place first
        if not _holds(dest, revision):
            raise


def _holds(dest: Path, revision: str) -> bool:
    """Does ``dest`` hold exactly ``revision``? Not when it is gone, even halfway through reading it
    (another process pruning old copies renames them away)."""
    try:
        return dest.is_dir() and read_snapshot(dest).revision == revision
    except FileNotFoundError:
        return False


def _fsync_tree(folder: Path) -> None:
    """Flush the copy's files before it is named, so a crash cannot leave a named but empty copy."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
