"""One versioned file per bundle for the fleet: a deterministic ``.tar.gz`` with a manifest first.

``build_archive`` packs what ``bundle_files`` lists, after the bundle loads, so a broken
bundle never leaves the build machine. The same files give byte-identical archives
(fixed order, times, owners and modes), so an origin's ETag changes only when the
bundle does.

``extract_archive`` trusts nothing in the archive: ``manifest.json`` comes first so the
limits are checked before any file is read, every member must be a plain file at a
plain relative path that the manifest lists with its size and SHA-256, and the result
appears at ``dest`` only when all of it checked out.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Annotated

import msgspec

from service.bundle.loader import load_snapshot
from service.bundle.snapshot import bundle_files, read_snapshot
from service.core.errors import TailorError

FORMAT = "tailor-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
MAX_FILES = 10_000
MAX_TOTAL_BYTES = 256 * 1024 * 1024  # models included; a bundle this large is a mistake, not a campaign
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
FILE_MODE = 0o644
COMPRESS_LEVEL = 9
CHUNK_BYTES = 1024 * 1024

Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
Size = Annotated[int, msgspec.Meta(ge=0)]


# Errors of the disk an archive is extracted to, whatever the archive holds: full, over quota,
# read-only, failing, or not ours to write. The same archive may extract once the disk is mended.
LOCAL_FAULTS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM})


class ArchiveError(TailorError):
    """The archive cannot be built or is not a bundle archive we accept; ``file`` names the culprit."""

    def __init__(self, message: str, file: str | None = None) -> None:
        self.message = message
        self.file = file
        super().__init__(f"{file}: {message}" if file else message)


class FileEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sha256: Sha256
    size: Size


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: str
    format_version: int
    revision: str
    files: dict[str, FileEntry]


class _Header(msgspec.Struct, frozen=True):
    """The part of a manifest every format version shares, read before the rest."""

    format: str
    format_version: int


_ENCODER = msgspec.json.Encoder(order="deterministic")


# --- build -------------------------------------------------------------------------------------------------------


def build_archive(root: Path, out: Path) -> Manifest:
    """Validate the bundle in ``root`` and write its archive to ``out``; raise BundleError or ArchiveError."""
    snapshot = read_snapshot(Path(root))
    load_snapshot(snapshot)  # the bytes packed are the bytes validated: both come from one read
    files = dict(snapshot.files)
    manifest = Manifest(FORMAT, FORMAT_VERSION, snapshot.revision, _entries(files))
    _check_limits(manifest)
    _write_atomically(Path(out), _pack(manifest, files))
    return manifest


def _entries(files: dict[str, bytes]) -> dict[str, FileEntry]:
    return {name: FileEntry(hashlib.sha256(files[name]).hexdigest(), len(files[name])) for name in sorted(files)}


def _pack(manifest: Manifest, files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    # GzipFile directly: tarfile's own gzip mode stamps the current time and file name into the header.
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=COMPRESS_LEVEL) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        _add(tar, MANIFEST_NAME, manifest_bytes(manifest))
        for name in manifest.files:
            _add(tar, name, files[name])
    return buffer.getvalue()


def manifest_bytes(manifest: Manifest) -> bytes:
    """The manifest as stored: indented JSON with sorted keys, so it diffs well and hashes stably."""
    return msgspec.json.format(_ENCODER.encode(manifest), indent=2) + b"\n"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = FILE_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _write_atomically(out: Path, data: bytes) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temp, FILE_MODE)  # an artifact to publish, not mkstemp's private 0600
        os.replace(temp, out)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# --- extract -----------------------------------------------------------------------------------------------------


def extract_archive(archive: Path | bytes, dest: Path) -> Manifest:
    """Check and unpack ``archive`` into ``dest`` (with its manifest.json); on any problem ``dest`` is untouched."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with _opened(archive) as stream:
            manifest = _extract_all(stream, staging)
        _check_bundle_listing(manifest, staging)
        _move_into_place(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


@contextmanager
def _opened(archive: Path | bytes) -> Iterator[IO[bytes]]:
    if isinstance(archive, bytes):
        yield io.BytesIO(archive)
        return
    with open(archive, "rb") as stream:
        yield stream


def _extract_all(stream: IO[bytes], staging: Path) -> Manifest:
    try:
        with tarfile.open(fileobj=stream, mode="r:gz") as tar:
            members = iter(tar)
            manifest = _read_manifest(tar, next(members, None))
            seen: set[str] = set()
            for member in members:
                _extract_member(tar, member, manifest, seen, staging)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ArchiveError(f"not a readable .tar.gz archive ({exc})") from None
    missing = sorted(set(manifest.files) - seen)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ArchiveError(f"listed in the manifest but missing from the archive{more}", missing[0])
    return manifest


def _read_manifest(tar: tarfile.TarFile, member: tarfile.TarInfo | None) -> Manifest:
    # First, so that the format and the limits are known before a single file is read.
    if member is None or member.name != MANIFEST_NAME:
        found = "an empty archive" if member is None else f"'{member.name}'"
        raise ArchiveError(f"the archive must start with {MANIFEST_NAME}; found {found}")
    if not member.isreg() or member.size > MAX_MANIFEST_BYTES:
        raise ArchiveError(f"must be a regular file of at most {MAX_MANIFEST_BYTES} bytes", MANIFEST_NAME)
    raw = _read(tar, member)
    manifest = _decode_manifest(raw)
    _check_limits(manifest)
    for name in manifest.files:
        _check_path(name)
    return manifest


def _decode_manifest(raw: bytes) -> Manifest:
    try:
        header = msgspec.json.decode(raw, type=_Header)
        if header.format != FORMAT:
            raise ArchiveError(f"format is '{header.format}', expected '{FORMAT}'", MANIFEST_NAME)
        if header.format_version != FORMAT_VERSION:
            raise ArchiveError(
                f"unsupported format_version {header.format_version} (this build reads {FORMAT_VERSION})",
                MANIFEST_NAME,
            )
        return msgspec.json.decode(raw, type=Manifest)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise ArchiveError(f"not a valid manifest: {exc}", MANIFEST_NAME) from None


def _check_limits(manifest: Manifest) -> None:
    if len(manifest.files) > MAX_FILES:
        raise ArchiveError(f"{len(manifest.files)} files; the limit is {MAX_FILES}", MANIFEST_NAME)
    total = sum(entry.size for entry in manifest.files.values())
    if total > MAX_TOTAL_BYTES:
        raise ArchiveError(f"the files add up to {total} bytes; the limit is {MAX_TOTAL_BYTES}", MANIFEST_NAME)


def _check_path(name: str) -> PurePosixPath:
    """A plain relative path: no root, no '..', no '.', no empty part, no backslash, nothing to normalise."""
    path = PurePosixPath(name)
    unsafe = (
        not name
        or "\\" in name
        or "\0" in name
        or path.is_absolute()
        or path.as_posix() != name
        or any(part in ("", ".", "..") for part in name.split("/"))
    )
    if unsafe:
        raise ArchiveError("unsafe path: only plain relative paths inside the bundle are allowed", name)
    return path


def _extract_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, manifest: Manifest, seen: set[str], staging: Path
) -> None:
    name = member.name
    _check_path(name)
    if not member.isreg():
        raise ArchiveError(f"is a {_kind(member)}; only regular files are allowed", name)
    entry = manifest.files.get(name)
    if entry is None:
        raise ArchiveError("is not listed in the manifest", name)
    if name in seen:
        raise ArchiveError("appears twice in the archive", name)
    if member.size != entry.size:
        raise ArchiveError(f"size is {member.size} bytes, the manifest says {entry.size}", name)
    seen.add(name)
    digest = _copy_out(tar, member, staging / name)
    if digest != entry.sha256:
        raise ArchiveError(f"sha256 is {digest}, the manifest says {entry.sha256}", name)


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hard link"
    if member.isdir():
        return "directory"
    if member.isdev():
        return "device or FIFO"
    return "special member"


def _copy_out(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> str:
    source = tar.extractfile(member)
    assert source is not None  # a regular member always has a data stream
    digest = hashlib.sha256()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with source, open(target, "xb") as out:
            while chunk := source.read(CHUNK_BYTES):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        if exc.errno in LOCAL_FAULTS:  # this machine's disk, not the archive: raised as it is, to retry later
            raise
        # the archive's own shape, e.g. 'rules/a.yaml/b.yaml' where 'rules/a.yaml' is a file
        raise ArchiveError(f"cannot be written ({exc.strerror})", member.name) from None
    return digest.hexdigest()


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    source = tar.extractfile(member)
    assert source is not None
    with source:
        return source.read()


def _check_bundle_listing(manifest: Manifest, staging: Path) -> None:
    """The manifest lists exactly the bundle's files, and its revision is theirs (as the loader computes it)."""
    listed = {path.relative_to(staging).as_posix() for path in bundle_files(staging)}
    stray = sorted(set(manifest.files) - listed)
    if stray:
        raise ArchiveError("is not a bundle file (rules/, content/ or models/ with a known suffix)", stray[0])
    revision = read_snapshot(staging).revision
    if revision != manifest.revision:
        raise ArchiveError(f"revision is '{manifest.revision}' but the files give '{revision}'", MANIFEST_NAME)
    (staging / MANIFEST_NAME).write_bytes(manifest_bytes(manifest))


def _move_into_place(staging: Path, dest: Path) -> None:
    """Rename the checked folder to ``dest``; an existing ``dest`` is swapped out only after the check passed.

    POSIX cannot replace a non-empty folder in one step, so for a moment ``dest`` is absent; readers that must
    never see that use a fresh ``dest`` per version (as the origin poller does).
    """
    if not dest.exists() and not dest.is_symlink():
        staging.rename(dest)
        return
    old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex}")
    dest.rename(old)
    try:
        staging.rename(dest)
    except OSError:
        old.rename(dest)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()
