"""The ``tailor`` command: serve, validate, decide, test, simulate, schema; train and analyze live in their packages."""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import math
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import Field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops
from granian.http import HTTP1Settings
from pydantic import BaseModel

from service import logs
from service.arguments import add_bundle_flag, bundle_of, setting_number
from service.bundle.archive import ArchiveError, build_archive
from service.bundle.loader import load_bundle
from service.bundle.watcher import LastGood
from service.checks import command as checks_command
from service.checks.spec import check_schema
from service.core.compile import Bundle
from service.core.errors import BundleError, Problem, RequestError
from service.core.models import ModelCard
from service.core.spec import ContentFile, LocaleFile, RulesFile
from service.http import wire
from service.http.body import decode
from service.redaction import redact_url
from service.render.cache import RenderCache
from service.serving import Serving
from service.settings import LIMITS, PREFIX, Settings, shown_number
from service.simulate import command as simulate_command
from service.telemetry.metrics import MULTIPROCESS_ENV, Metrics

EXIT_OK = 0
OFFLINE_ID = "offline"  # the decision id of `tailor decide`: nothing is logged under it
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
# The state folder holds the metrics files (a few pages per worker) and the last good bundles (six
# copies of the bundle): 16 MiB is room for both with a margin, and a few seconds of a filling disk.
MIN_STATE_ROOM_BYTES = 16 << 20
SCHEMAS: dict[str, type[BaseModel]] = {
    "rules.v1.schema.json": RulesFile,
    "content.v1.schema.json": ContentFile,
    "locale.v1.schema.json": LocaleFile,
    "model-card.v1.schema.json": ModelCard,
}


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["train"]:
        # Imported here only: serving must never load scikit-learn, skl2onnx or matplotlib.
        from service.training.command import main as train_main  # noqa: PLC0415

        return train_main(raw[1:])
    if raw[:1] == ["analyze"]:
        # Imported here only, like training: serving must never load DuckDB or scipy.
        from service.analysis.command import main as analyze_main  # noqa: PLC0415

        return analyze_main(raw[1:])
    parser = _parser()
    args = parser.parse_args(raw)
    try:
        code: int = args.run(args)
    except ValueError as exc:  # malformed settings or arguments
        print(f"tailor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tailor", description="Edge personalization decision API")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="serve the decision API", epilog=_settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    serve.add_argument("--bundle", type=Path, help="bundle folder (default: TAILOR_BUNDLE or .)")
    serve.add_argument("--host", help="address (default: TAILOR_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=setting_number("port"), help="port (default: TAILOR_PORT or 8080)")
    serve.add_argument(
        "--workers", type=setting_number("workers"), help="worker processes (default: TAILOR_WORKERS or 1)"
    )
    serve.set_defaults(run=_serve)

    validate = commands.add_parser(
        "validate", help="check a bundle and print every problem as file:line: path: message"
    )
    validate.add_argument("bundle", nargs="?", type=Path, help="bundle folder (default: .)")
    add_bundle_flag(validate)
    validate.set_defaults(run=_validate)

    decide_cmd = commands.add_parser("decide", help="run one decision offline and print it with its trace")
    decide_cmd.add_argument("--bundle", type=Path, default=Path("."), help="bundle folder (default: .)")
    decide_cmd.add_argument(
        "--visitor",
        type=Path,
        required=True,
        help="JSON file ('-' for standard input): a visitor {id, attributes, consent}, or a whole "
        "POST /v1/decide body {visitor, placements, context}; the options below override the body",
    )
    decide_cmd.add_argument("--placement", action="append", help="placement to decide (repeat; default: all)")
    decide_cmd.add_argument("--now", help="decide as of this ISO 8601 time (default: now)")
    decide_cmd.add_argument("--locale", help="request context locale")
    decide_cmd.add_argument("--page", help="request context page")
    decide_cmd.add_argument("--currency", help="request context currency (ISO 4217) for rendered prices")
    decide_cmd.add_argument("--render", action="store_true", help="add each placement's rendered HTML (a preview)")
    decide_cmd.set_defaults(run=_decide)

    commands.add_parser(
        "train", help="retrain the segment models (rfm, churn, value) from transactions; see `tailor train --help`"
    )

    commands.add_parser(
        "analyze", help="experiment results from decision and outcome event logs; see `tailor analyze --help`"
    )

    bundle = commands.add_parser("bundle", help="bundle archives for replicas that pull from an HTTP origin")
    bundle_commands = bundle.add_subparsers(required=True, metavar="ACTION")
    build = bundle_commands.add_parser("build", help="pack a bundle into one versioned archive with a manifest")
    build.add_argument("bundle", nargs="?", type=Path, help="bundle folder (default: .)")
    add_bundle_flag(build)
    build.add_argument("--out", type=Path, default=Path("bundle.tar.gz"), help="archive (default: bundle.tar.gz)")
    build.set_defaults(run=_bundle_build)

    checks_command.add_parser(commands)
    simulate_command.add_parser(commands)

    schema = commands.add_parser("schema", help="write the JSON Schemas of the file formats")
    schema.add_argument("--out", type=Path, default=Path("schema"), help="folder (default: schema)")
    schema.set_defaults(run=_schema)
    return parser


def _settings_epilog() -> str:
    """Every setting a worker reads, so an operator finds them without the README (which explains each)."""
    lines = [f"  {PREFIX}{f.name.upper()} (default: {_shown_default(f)})" for f in fields(Settings)]
    return 'settings, from the environment (README.md, "Settings", says what each does):\n' + "\n".join(lines)


def _shown_default(f: Field[Any]) -> str:
    if isinstance(f.default, bool):  # the words the variable takes (settings.py)
        return "on" if f.default else "off"
    shown = "unset" if f.default is None or f.default == "" else str(f.default)
    return f"{shown}; {_shown_range(f.name)}" if f.type in ("int", "float") else shown


def _shown_range(name: str) -> str:
    low, high = LIMITS.get(name, (0, math.inf))
    return f"{shown_number(low)} or more" if high == math.inf else f"{shown_number(low)} to {shown_number(high)}"


def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    overrides = {k: v for k in ("bundle", "host", "port", "workers") if (v := getattr(args, k)) is not None}
    settings = replace(settings, **overrides)
    settings.check()  # --host is held to what TAILOR_HOST is
    _check_folders(settings)
    if settings.bundle_url:
        source = f"the bundle of {redact_url(settings.bundle_url)}"
    else:
        kept = None if settings.state_dir is None else LastGood.in_state_dir(settings.state_dir).path()
        bundle = _load_or_report(settings.bundle, kept)
        if bundle is None:
            return EXIT_PROBLEMS
        source = f"bundle {bundle.revision}"
    with _port_claimed(settings.host, settings.port), _state_dir(settings.state_dir) as state_dir:  # after the bundle
        print(f"tailor: serving {source} on http://{_address(settings.host, settings.port)}", file=sys.stderr)
        settings = replace(settings, state_dir=state_dir)
        os.environ.update(settings.to_env())  # workers are new processes: they read settings from here
        os.environ[MULTIPROCESS_ENV] = str(_fresh(state_dir / "metrics"))
        _run_granian(settings)
    return EXIT_OK


PORT_HINT = "stop it, or choose another port with --port or TAILOR_PORT"


@contextmanager
def _port_claimed(host: str, port: int) -> Iterator[None]:
    """The port is checked free, and claimed for as long as this server runs.

    granian's workers each bind the port with SO_REUSEPORT, so a second server on a port in use
    started without an error, and the kernel then split new connections between the two (an old
    server, or an old bundle, answering some of the visitors). A bind without SO_REUSEPORT fails on
    a port that anyone listens on (``_check_port``). Two servers started at the same moment would
    both pass it before either listens, so each first takes a lock named by the address, in the
    temporary folder; a folder that cannot take it leaves only the check.
    """
    lock = Path(tempfile.gettempdir()) / f"tailor-serve-{host}-{port}.lock"
    try:
        fd: int | None = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:
        fd = None
    try:
        if fd is not None and not _locked(fd):
            taken = "another tailor serve is starting or running there"
            raise ValueError(f"cannot listen on {_address(host, port)}: {taken} ({PORT_HINT})")
        _check_port(host, port)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _locked(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _check_port(host: str, port: int) -> None:
    """A bind without SO_REUSEPORT, which fails where anyone listens; SO_REUSEADDR lets a port left
    in TIME_WAIT by a restart pass."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        hint = f" (is another server running there? {PORT_HINT})" if exc.errno == errno.EADDRINUSE else ""
        raise ValueError(f"cannot listen on {_address(host, port)}: {exc.strerror or exc}{hint}") from None


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@contextmanager
def _state_dir(configured: Path | None) -> Iterator[Path]:
    """The configured state folder, or a temporary one that goes away with the server."""
    if configured is not None:
        yield configured  # made and checked by _check_folders
        return
    with tempfile.TemporaryDirectory(prefix="tailor-") as folder:
        yield Path(folder)


def _check_folders(settings: Settings) -> None:
    """The folders the workers write to, made if missing, and refused here if they cannot be used:
    otherwise each worker would fail on its first save with a traceback."""
    for name in ("state_dir", "bundle_cache"):
        if (folder := getattr(settings, name)) is not None:
            _writable_folder(folder, PREFIX + name.upper())
    if settings.decision_log != "off":
        _check_decision_log(Path(settings.decision_log), PREFIX + "DECISION_LOG")
    shown = (
        f"{PREFIX}STATE_DIR={settings.state_dir}"
        if settings.state_dir
        else f"{tempfile.gettempdir()} (the temporary folder; TAILOR_STATE_DIR is unset)"
    )
    _check_room(settings.state_dir or Path(tempfile.gettempdir()), shown)


def _check_room(folder: Path, shown: str) -> None:
    """The metrics files live in the state folder, memory-mapped: a worker that writes a sample to a page the
    full disk cannot give is killed by SIGBUS, before any handler of ours runs, and granian then stops the
    server. So a folder with too little room is refused here, by name; a disk that fills later still kills."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    if free < MIN_STATE_ROOM_BYTES:
        raise ValueError(
            f"{shown} has {free / 2**20:.1f} MiB free; a server needs {MIN_STATE_ROOM_BYTES >> 20} MiB there "
            "(its metrics files are memory-mapped: a worker that writes to a full disk is killed)"
        )


def _check_decision_log(path: Path, variable: str) -> None:
    """A log path that names a folder is a mistake no retry mends, so it is refused here. A folder
    that cannot be written yet is not: the workers serve, warn and retry until it can (DEPLOYMENT.md)."""
    if path.is_dir():
        raise ValueError(f"{variable}={path} is a folder: name a file in it, such as {path / 'decisions.jsonl'}")


def _writable_folder(folder: Path, variable: str) -> Path:
    """``folder``, made if missing, or a ValueError that names the variable and the reason."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise ValueError(f"{variable}={folder} is not a folder this server can write to: {exc.strerror}") from None
    return folder


def _fresh(folder: Path) -> Path:
    """An empty folder: metric files left by an earlier server would add to this one's counts."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


# TAILOR_INTERFACE → granian's interface and the factory each worker calls (ADR 0011).
GRANIAN_TARGETS = {
    "rsgi": (Interfaces.RSGI, "service.http.rsgi:create_door"),
    "asgi": (Interfaces.ASGI, "service.http.app:create_app"),
}
# The event loop of every worker (ADR 0014): uvloop schedules granian's hand-offs and waits on the
# socket in C, where asyncio's own loop spent a quarter of a page view's CPU in Python.
GRANIAN_LOOP = Loops.uvloop


def _run_granian(settings: Settings) -> None:
    interface, target = GRANIAN_TARGETS[settings.interface]
    Granian(
        target,
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=interface,
        loop=GRANIAN_LOOP,
        websockets=False,  # no route takes one; under RSGI an upgrade is then a plain request for Litestar
        workers=max(1, settings.workers),
        working_dir=Path.cwd(),
        log_access=False,
        log_dictconfig=logs.server_config(settings.log_format),
        respawn_failed_workers=True,
        workers_kill_timeout=settings.stop_timeout_s,
        # HTTP/1 only: in granian's auto mode, which waits for the first bytes to choose between 1 and
        # 2, a connection that sends nothing has no timer and is held for good (1,100 held a worker).
        http=HTTPModes.http1,
        # A client that trickles its headers is dropped after this; the body's deadline is the app's.
        http1_settings=HTTP1Settings(header_read_timeout=int(settings.header_timeout_s * 1000)),
    ).serve()


def _validate(args: argparse.Namespace) -> int:
    root = bundle_of(args, args.bundle)
    try:
        bundle = load_bundle(root)
    except BundleError as exc:
        _print_problems(root, exc.problems)
        print(f"{len(exc.problems)} error(s) in {root}", file=sys.stderr)
        return EXIT_PROBLEMS
    _print_problems(root, list(bundle.warnings))
    print(
        f"ok: {root} revision {bundle.revision}: {len(bundle.placements)} placements, "
        f"{len(bundle.segments)} segments, {len(bundle.experiments)} experiments, "
        f"{len(bundle.variants)} variants, {len(bundle.warnings)} warning(s)"
    )
    return EXIT_OK


def _print_problems(root: Path, problems: list[Problem]) -> None:
    for problem in sorted(problems, key=lambda p: (p.file, p.line or 0)):
        shown = problem if str(root) in ("", ".") else replace(problem, file=(root / problem.file).as_posix())
        print(shown.render())


def _load_or_report(root: Path, last_good: Path | None = None) -> Bundle | None:
    """The bundle in ``root``; if it is broken, the last good copy a server kept (workers start from it too)."""
    try:
        return load_bundle(root)
    except BundleError as exc:
        _print_problems(root, exc.problems)
        kept = _load_kept(last_good)
        outcome = "nothing was served" if kept is None else f"starting from the last good bundle {kept.revision}"
        print(f"tailor: the bundle in {root} has {len(exc.problems)} error(s); {outcome}", file=sys.stderr)
        return kept


def _load_kept(folder: Path | None) -> Bundle | None:
    try:
        return None if folder is None else load_bundle(folder)
    except BundleError:
        return None


def _decide(args: argparse.Namespace) -> int:
    bundle = _load_or_report(args.bundle)
    if bundle is None:
        return EXIT_PROBLEMS
    try:
        request = _with_options(_read_request(args.visitor), args)
        response = _offline().decision(bundle, request, client_time=True).response()  # offline: --now is the point
    except OSError as exc:
        print(f"tailor: {args.visitor}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RequestError as exc:  # a body the API refuses, as it would: a limit, a type
        print(f"tailor: {args.visitor}: {exc.message} - at `{exc.where}`", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(msgspec.to_builtins(response), indent=2, ensure_ascii=False))
    for step in response.trace or ():  # for people: the JSON above is for programs
        if step.why_not is not None:
            print(f"why not {step.placement} {step.rule}: {step.why_not.text}", file=sys.stderr)
    return EXIT_OK


def _offline() -> Serving:
    """The flow of ``POST /v1/decide`` (service/serving.py) with default settings, no decision log and one id."""
    render_cache = RenderCache(0)  # one decision: nothing to reuse
    return Serving(Settings(), Metrics(), None, lambda: datetime.now(UTC), render_cache, ids=lambda: OFFLINE_ID)


def _read_request(path: Path) -> wire.DecideRequest:
    """A decision request from a file that holds either a visitor or a whole HTTP request body."""
    raw = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    if isinstance(shape := decode(raw, object), dict) and "visitor" in shape:
        return decode(raw, wire.DecideRequest)  # the body of POST /v1/decide, as it is, decoded as the API does
    return wire.DecideRequest(visitor=decode(raw, wire.Visitor))


def _with_options(request: wire.DecideRequest, args: argparse.Namespace) -> wire.DecideRequest:
    """The request with what the command line says instead; always explained, since that is what it is for."""
    given = {"locale": args.locale, "page": args.page, "currency": args.currency}
    given["now"] = datetime.fromisoformat(args.now) if args.now else None
    context = msgspec.structs.replace(request.context, **{k: v for k, v in given.items() if v is not None})
    placements = args.placement or request.placements
    return msgspec.structs.replace(
        request, placements=placements, context=context, explain=True, render=request.render or args.render
    )


def _bundle_build(args: argparse.Namespace) -> int:
    root = bundle_of(args, args.bundle)
    try:
        manifest = build_archive(root, args.out)
    except BundleError as exc:
        _print_problems(root, exc.problems)
        print(f"tailor: the bundle in {root} has {len(exc.problems)} error(s); nothing was packed", file=sys.stderr)
        return EXIT_PROBLEMS
    except ArchiveError as exc:
        print(f"tailor: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"ok: {args.out} revision {manifest.revision}: {len(manifest.files)} files")
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in schema_texts().items():
        (args.out / name).write_text(text, encoding="utf-8")
        print(f"wrote {args.out / name}")
    return EXIT_OK


def schema_texts() -> dict[str, str]:
    """The committed JSON Schemas, generated from the pydantic models of the file formats."""
    texts = {name: model.model_json_schema(by_alias=True) for name, model in SCHEMAS.items()}
    texts["checks.v1.schema.json"] = check_schema()
    return {name: json.dumps(schema, indent=2) + "\n" for name, schema in texts.items()}


if __name__ == "__main__":
    sys.exit(main())
