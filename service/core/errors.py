"""The service's error kinds: every error raised on purpose derives from ``TailorError``.

The HTTP layer maps them to responses in one table (``service/http/problems.py``);
a kind missing from that table is an internal error there. The CLI prints them.

    TailorError
    ├── BundleError        the bundle cannot be loaded or compiled; carries every Problem
    ├── RequestError       a decision request is invalid (bad attribute shape, limits)
    ├── bundle/            NotReadyError (no bundle yet), ArchiveError, YamlError,
    │                      origin fetch errors (retried, then reported)
    ├── segments/          ModelLoadError: an ONNX file that cannot be opened
    ├── render/            RenderLimitError: a template went over a sandbox limit
    ├── telemetry/         SinkError: a collector refused a batch
    └── http/              UnauthorizedError, AdminDisabledError
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a bundle, located by file and a path inside that file.

    ``line`` is filled in by the loader, which is the only part that knows the text;
    the compiler reports paths such as ``("placements", "home", "rules", 1, "segment")``.
    """

    file: str
    path: tuple[str | int, ...]
    message: str
    line: int | None = None
    severity: str = "error"

    def render(self) -> str:
        """``file:line: path: message``, the format editors and CI logs understand."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        dotted = format_path(self.path)
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        return f"{where}: {dotted}: {prefix}{self.message}" if dotted else f"{where}: {prefix}{self.message}"


def format_path(path: tuple[str | int, ...]) -> str:
    """``("rules", 1, "when")`` → ``rules[1].when``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class TailorError(Exception):
    """Base of every error the service raises on purpose."""


class BundleError(TailorError):
    """The bundle has problems; nothing from it may be served."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0].render() if problems else "unknown bundle error"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more)


class RequestError(TailorError):
    """A decision request that the core refuses; ``where`` is a JSON path such as ``$.visitor``."""

    def __init__(self, message: str, where: str = "$") -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}")
