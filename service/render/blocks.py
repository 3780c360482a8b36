"""Compile a bundle's templates once, and render a variant's block for one visitor.

Every template under ``content/templates/`` is parsed and compiled when the bundle
loads, so a syntax error, an unknown filter, an include of a missing partial or a
translation key the default language lacks is a bundle error with file and line,
and the last good bundle keeps serving. At request time a block renders inside the
sandbox with a fresh loop budget and a cap on its size; any failure serves the
variant's fallback HTML and says so, and never touches the other placements.
"""

from __future__ import annotations

import hashlib
import itertools
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import CodeType, MappingProxyType
from typing import Any

import msgspec
from jinja2 import BytecodeCache, Environment, FunctionLoader, Template, TemplateNotFound, TemplateSyntaxError, nodes
from jinja2.bccache import Bucket
from jinja2.exceptions import TemplateAssertionError

from service.core.compile import suggest
from service.core.errors import BundleError, Problem
from service.core.rendering import RenderCache, Rendered, RenderInputs
from service.core.spec import ContentFile, LocaleFile, Localization, Product
from service.render.catalog import Catalog
from service.render.locales import LocaleChoice, Locales, next_weekday, placeholders
from service.render.mjml import MjmlProblem, compile_mjml, source_lines
from service.render.names import unknown_names
from service.render.params import Need, needs_of, problems_of
from service.render.reads import Path, reads_of, simplify, value_at
from service.render.sandbox import BUDGET, DEFAULT_LOOP_BUDGET, Budget, RenderLimitError, TailorSandbox

TEMPLATES_DIR = "content/templates"
MAX_OUTPUT_CHARS = 256_000  # a block larger than this is a broken loop, not content
GENERATE_BATCH = 16  # pieces of a block counted together against MAX_OUTPUT_CHARS
AUTOESCAPED = (".html", ".mjml")
DEFAULT_RECOMMENDATIONS = 4


@dataclass(frozen=True, slots=True)
class Block:
    variant: str
    template: Template
    reads: tuple[Path, ...]
    params: Mapping[str, Any]
    content: Mapping[str, Any]
    fallback: str


@dataclass(frozen=True, slots=True)
class _Current:
    """The visitor a render is for, where template globals (t, recommend, price) can find it."""

    visitor: Mapping[str, Any]
    locale: LocaleChoice


_CURRENT: ContextVar[_Current] = ContextVar("tailor_render_current")


@dataclass
class TemplateFile:
    name: str  # relative to content/templates: hero.html
    filename: str  # relative to the bundle: content/templates/hero.html
    source: str


@dataclass(frozen=True, slots=True)
class Parsed:
    """A template's source as Jinja sees it (MJML made HTML), and its trees: as run and as written."""

    source: str
    mjml_problems: tuple[MjmlProblem, ...]
    tree: nodes.Template
    written: nodes.Template
    lines: tuple[int, ...] = ()  # for MJML: the written line of each line of ``source`` (mjml.source_lines)


@dataclass
class Made:
    """What templates were made into, each by a digest of its name, file name and source.

    The code Jinja compiles a template to depends on nothing else: an include, import or extends
    finds the other template through the environment when it renders, so a template that
    includes an edited one keeps its code and still renders the edit.
    """

    parsed: dict[bytes, Parsed] = field(default_factory=dict)
    code: dict[bytes, CodeType] = field(default_factory=dict)


@dataclass
class TemplateReuse:
    """What the last good load made (``kept``), and what this load makes or takes (``used``)."""

    kept: Made = field(default_factory=Made)
    used: Made = field(default_factory=Made)
    rebuilt: set[str] = field(default_factory=set)  # templates this load parsed or compiled anew


def _key(*parts: str) -> bytes:
    hashed = hashlib.blake2b(digest_size=16)
    for part in parts:
        data = part.encode()
        hashed.update(len(data).to_bytes(8, "little"))
        hashed.update(data)
    return hashed.digest()


class _KeptCode(BytecodeCache):
    """Jinja's bytecode cache, in memory: a template whose source did not change is not compiled again."""

    def __init__(self, reuse: TemplateReuse) -> None:
        self.reuse = reuse

    def get_bucket(self, environment: Environment, name: str, filename: str | None, source: str) -> Bucket:
        key = _key(name, filename or "", source)
        bucket = Bucket(environment, key.hex(), "")
        code = self.reuse.kept.code.get(key)
        if code is None:
            self.reuse.rebuilt.add(name)
        else:
            bucket.code = self.reuse.used.code[key] = code
        return bucket

    def set_bucket(self, bucket: Bucket) -> None:
        if bucket.code is not None:
            self.reuse.used.code[bytes.fromhex(bucket.key)] = bucket.code


@dataclass
class _Compiling:
    files: Mapping[str, TemplateFile]
    locales: Locales
    reuse: TemplateReuse
    problems: list[Problem] = field(default_factory=list)
    trees: dict[str, nodes.Template] = field(default_factory=dict)
    written: dict[str, nodes.Template] = field(default_factory=dict)  # as the file has them: its lines
    lines: dict[str, tuple[int, ...]] = field(default_factory=dict)  # by file name: MJML's written lines
    warnings: list[Problem] = field(default_factory=list)

    def error(self, file: str, message: str, line: int | None = None, path: tuple[str | int, ...] = ()) -> None:
        self.problems.append(Problem(file, path, message, line=line))

    def warn(self, file: str, message: str, line: int | None) -> None:
        self.warnings.append(Problem(file, (), message, line=line, severity="warning"))

    def written_line(self, file: str, line: int | None) -> int | None:
        """The line of the file as written for a line of what Jinja runs (they differ for MJML)."""
        return written_line(self.lines.get(file, ()), line)


def written_line(lines: tuple[int, ...], line: int | None) -> int | None:
    """``line`` of what Jinja ran, as a line of the template's file: ``lines`` maps them for MJML."""
    if line is None or not 0 < line <= len(lines):
        return line
    return lines[line - 1]


class CompiledBlocks:
    """A bundle's compiled templates (implements ``service.core.rendering.Blocks``)."""

    def __init__(
        self,
        revision: str,
        blocks: Mapping[str, Block],
        locales: Locales,
        catalog: Catalog,
        filenames: Mapping[str, Template],
        *,
        max_output: int = MAX_OUTPUT_CHARS,
        loop_budget: int = DEFAULT_LOOP_BUDGET,
        rebuilt: frozenset[str] = frozenset(),
        lines: Mapping[str, tuple[int, ...]] = MappingProxyType({}),
        warnings: tuple[Problem, ...] = (),
    ) -> None:
        self.revision = revision
        self.warnings = warnings  # the compiler's, for the bundle's list
        self._lines = lines  # by file name, for MJML: the line written for each line Jinja runs
        self.rebuilt = rebuilt  # the templates parsed or compiled for these blocks, not taken from the last load
        self.blocks = MappingProxyType(dict(blocks))
        self.locales = locales
        self.catalog = catalog
        self._templates_by_file = filenames
        self.max_output = max_output
        self.loop_budget = loop_budget

    def has_block(self, variant: str) -> bool:
        return variant in self.blocks

    def render(self, variant: str, inputs: RenderInputs, cache: RenderCache | None = None) -> Rendered:
        block = self.blocks[variant]
        context = inputs.context
        choice = self.locales.choose(_text(context.get("locale")), _text(context.get("currency")))
        roots = {
            "visitor": inputs.attributes if inputs.personalization else _EMPTY,
            "context": context,
            "segments": inputs.segments,
            "today": inputs.now.date(),
        }
        if cache is None:
            return self._render(block, roots, choice)
        key = (self.revision, variant, choice.key, _ENCODER.encode([value_at(roots, p) for p in block.reads]))
        found = cache.get(key)
        if found is None:
            found = self._render(block, roots, choice)
            cache.put(key, found)
        return found

    def _render(self, block: Block, roots: Mapping[str, Any], choice: LocaleChoice) -> Rendered:
        current = _CURRENT.set(_Current(roots["visitor"], choice))
        budget = BUDGET.set(Budget(self.loop_budget))
        try:
            variables = {
                **roots,
                "content": block.content,
                "params": block.params,
                "variant": block.variant,
                "locale": choice.name,
                "language": choice.language,
            }
            return Rendered(self._generate(block.template, variables), "rendered")
        except Exception as exc:  # noqa: BLE001 - any failure of one block serves its fallback, by design
            return Rendered(block.fallback, "fallback", self._where(exc), f"{type(exc).__name__}: {exc}"[:500])
        finally:
            BUDGET.reset(budget)
            _CURRENT.reset(current)

    def _generate(self, template: Template, variables: dict[str, Any]) -> str:
        parts: list[str] = []
        size = 0
        pieces = template.root_render_func(template.new_context(variables))
        # Counted GENERATE_BATCH pieces at a time: each piece is a literal of the template or one
        # printed value (at most MAX_VALUE_CHARS), so a block too large is stopped a few pieces late.
        while batch := list(itertools.islice(pieces, GENERATE_BATCH)):
            size += sum(map(len, batch))
            if size > self.max_output:
                raise RenderLimitError(f"the block is larger than {self.max_output} characters")
            parts += batch
        return "".join(parts)

    def _where(self, exc: BaseException) -> str:
        """``SecurityError at content/templates/hero.html:12``: the kind and the template line, no values."""
        kind = "limit" if isinstance(exc, RenderLimitError) else type(exc).__name__
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            template = self._templates_by_file.get(frame.filename)
            if template is not None and frame.lineno is not None:
                line = written_line(
                    self._lines.get(frame.filename, ()), template.get_corresponding_lineno(frame.lineno)
                )
                return f"{kind} at {frame.filename}:{line}"
        return kind


_EMPTY: Mapping[str, Any] = MappingProxyType({})
_ENCODER = msgspec.json.Encoder(enc_hook=repr)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# --- template globals and filters: they read the render's visitor and locale from _CURRENT ---


def _t(key: str, **params: Any) -> str:
    return _CURRENT.get().locale.translate(str(key), params)


def _price(amount: Any, currency: str | None = None) -> str:
    return _CURRENT.get().locale.price(amount, currency)


def _number(value: Any, digits: int | None = None) -> str:
    return _CURRENT.get().locale.number(value, digits)


def _percent(value: Any) -> str:
    return _CURRENT.get().locale.percent(value)


_DATE_STYLES = frozenset(f"{size}{time}" for size in ("short", "medium", "long", "full") for time in ("", "time"))


def _date(value: Any, style: str = "medium") -> str:
    if style not in _DATE_STYLES:
        raise ValueError("date styles are short, medium, long, full (add 'time' for date and time: 'fulltime')")
    return _CURRENT.get().locale.date(value, style)


def _recommender(catalog: Catalog) -> Callable[..., list[dict[str, Any]]]:
    def recommend(limit: int = DEFAULT_RECOMMENDATIONS) -> list[dict[str, Any]]:
        current = _CURRENT.get()
        return catalog.recommend(current.visitor, limit, current.locale.language)

    return recommend


# --- compiling ---


def compile_blocks(
    revision: str,
    content_files: Sequence[tuple[str, ContentFile]],
    locale_files: Sequence[tuple[str, LocaleFile]],
    templates: Sequence[TemplateFile],
    *,
    max_output: int = MAX_OUTPUT_CHARS,
    loop_budget: int = DEFAULT_LOOP_BUDGET,
    reuse: TemplateReuse | None = None,
) -> CompiledBlocks:
    """Compile every template and every variant's block, or raise BundleError with every problem.

    With ``reuse``, a template whose name, file name and source are those of one in ``reuse.kept``
    takes its trees and code from there; the checks of every template run again all the same.
    """
    problems: list[Problem] = []
    locales = _locales(content_files, locale_files, problems)
    catalog = _catalog(content_files, locales.currency, problems)
    c = _Compiling({t.name: t for t in templates}, locales, reuse or TemplateReuse(), problems)
    env = _environment(c, catalog)
    for name in sorted(c.files):
        _parse(c, env, name)
    _check_include_cycles(c)
    for name in sorted(c.written):
        _check_imported_names(c, name)
    _warn_unknown_names(c, env)
    compiled = _compile_templates(c, env)
    # What this load took from the last one is in ``used`` now. The environment keeps ``c.reuse``
    # (its loader and bytecode cache), and kept trees point at the environments that parsed them:
    # holding ``kept`` too would chain every earlier load, and its environment, to this one.
    c.reuse.kept = Made()
    reads = {name: _closure_reads(c, name, catalog) for name in compiled}
    needs = {name: needs_of(_closure(c, name)) for name in compiled}
    blocks = _blocks(c, content_files, compiled, reads, needs)
    if c.problems:
        raise BundleError(c.problems)
    by_file = {c.files[name].filename: template for name, template in compiled.items()}
    return CompiledBlocks(
        revision,
        blocks,
        locales,
        catalog,
        by_file,
        max_output=max_output,
        loop_budget=loop_budget,
        rebuilt=frozenset(c.reuse.rebuilt),
        lines=MappingProxyType(dict(c.lines)),
        warnings=tuple(c.warnings),
    )


def _locales(
    content_files: Sequence[tuple[str, ContentFile]],
    locale_files: Sequence[tuple[str, LocaleFile]],
    problems: list[Problem],
) -> Locales:
    declared = [(file, spec.localization) for file, spec in content_files if spec.localization is not None]
    for file, _ in declared[1:]:
        problems.append(Problem(file, ("localization",), f"localization is already declared in {declared[0][0]}"))
    settings = declared[0][1] if declared else Localization()
    tables: dict[str, Mapping[str, str]] = {}
    files: dict[str, str] = {}
    for file, spec in locale_files:
        name = file.rsplit("/", 1)[-1].rsplit(".", 1)[0].replace("-", "_")
        tables[name] = spec.messages
        files[name] = file
    default = settings.default_locale.replace("-", "_")
    _check_placeholders(default, tables, files, problems)
    if tables and default not in tables:
        where = declared[0][0] if declared else "content/locales/"
        problems.append(
            Problem(
                where,
                ("localization", "default_locale") if declared else (),
                f"no locale file for the default "
                f"language '{default}': add content/locales/{default}.yaml (found: {', '.join(sorted(tables))})",
            )
        )
    return Locales(default, settings.default_currency, tables)


def _check_placeholders(
    default: str, tables: Mapping[str, Mapping[str, str]], files: Mapping[str, str], problems: list[Problem]
) -> None:
    """A translation takes the same ``{name}`` placeholders as the default language's string.

    Templates pass the default language's placeholders; one spelt another way (``{nom}``)
    would print nothing, and one left out would drop the value, in that language only.
    """
    reference = tables.get(default, {})
    for language, messages in sorted(tables.items()):
        if language == default:
            continue
        for key, text in messages.items():
            expected = placeholders(reference[key]) if key in reference else None
            found = placeholders(text)
            if expected is not None and found != expected:
                message = (
                    f"the translation has the placeholders {_listed(found)}, but the default language "
                    f"'{default}' has {_listed(expected)}: use the same names"
                )
                problems.append(Problem(files[language], ("messages", key), message))


def _listed(names: frozenset[str]) -> str:
    return ", ".join(f"{{{name}}}" for name in sorted(names)) if names else "none"


def _catalog(content_files: Sequence[tuple[str, ContentFile]], currency: str, problems: list[Problem]) -> Catalog:
    products: dict[str, Product] = {}
    seen: dict[str, str] = {}
    for file, spec in content_files:
        for pid, product in spec.products.items():
            if pid in seen:
                problems.append(Problem(file, ("products", pid), f"product '{pid}' is already defined in {seen[pid]}"))
            seen.setdefault(pid, file)
            products.setdefault(pid, product)
    settings = [spec.recommendations for _, spec in content_files if spec.recommendations is not None]
    return Catalog(products, settings[0] if settings else None, currency)


def _environment(c: _Compiling, catalog: Catalog) -> TailorSandbox:
    def load(name: str) -> tuple[str, str, Callable[[], bool]] | None:
        found = c.files.get(name)
        return None if found is None else (found.source, found.filename, lambda: True)

    env = TailorSandbox(FunctionLoader(load), autoescape=lambda name: (name or "").endswith(AUTOESCAPED))
    env.bytecode_cache = _KeptCode(c.reuse)
    env.globals.update({"t": _t, "recommend": _recommender(catalog)})
    env.filters.update({"price": _price, "number": _number, "percent": _percent, "date": _date})
    env.filters["next_weekday"] = next_weekday
    return env


def _parse(c: _Compiling, env: TailorSandbox, name: str) -> None:
    file = c.files[name]
    parsed = _parsed(c, env, file)
    if parsed is None:
        return
    file.source = parsed.source
    if parsed.lines:
        c.lines[file.filename] = parsed.lines
    for problem in parsed.mjml_problems:
        c.error(file.filename, problem.message, problem.line or 1)
    if _check_names(c, env, file, parsed.written):
        c.trees[name] = parsed.tree  # else Jinja would report the same name again, without the MJML line
    _check_references(c, file, parsed.written)
    c.written[name] = parsed.written
    if not c.locales.default_missing:  # else one problem, not one per key
        _check_messages(c, file, parsed.written)


def _parsed(c: _Compiling, env: TailorSandbox, file: TemplateFile) -> Parsed | None:
    """The template's trees, taken from the last good load if its source is the same; None on a syntax error."""
    key = _key(file.name, file.filename, file.source)
    parsed = c.reuse.kept.parsed.get(key)
    if parsed is None:
        try:
            parsed = _parse_anew(env, file)
        except TemplateSyntaxError as exc:
            unclosed = _unclosed(env, file.source) if "Unexpected end of template" in (exc.message or "") else None
            if unclosed is not None:  # Jinja names the end of the file; the tag to close is where it opens
                name, line = unclosed
                c.error(
                    file.filename, f"template syntax: this {{% {name} %}} is never closed: add {{% end{name} %}}", line
                )
            else:
                c.error(file.filename, f"template syntax: {exc.message}", exc.lineno)
            return None
        except RecursionError:  # Jinja's parser recurses once per bracket or tag inside another
            c.error(file.filename, _TOO_DEEP_TO_PARSE, _deepest_line(env, file.source))
            return None
        deep = _too_deep(parsed.tree) or _too_deep(parsed.written)
        if deep is not None:  # the checks below and Jinja's code generator recurse once per level
            c.error(file.filename, _TOO_DEEP, deep)
            return None
        c.reuse.rebuilt.add(file.name)
    c.reuse.used.parsed[key] = parsed
    return parsed


MAX_TREE_DEPTH = 100  # expressions and tags inside one another; the example's deepest template has 10
_SPLIT = "move a part into a macro or a {% set %}"
_TOO_DEEP = (
    "template: expressions or tags nest too deeply (filters, operators or blocks inside one another); "
    f"the limit is {MAX_TREE_DEPTH} levels: {_SPLIT}"
)
_TOO_DEEP_TO_PARSE = f"template: brackets or tags nest too deeply to be read (some 60 levels): {_SPLIT}"
_OPENING = {"(", "[", "{"}
_CLOSING = {")", "]", "}"}


def _too_deep(tree: nodes.Node) -> int | None:
    """The line of a node more than MAX_TREE_DEPTH levels down, found without recursing."""
    stack: list[tuple[nodes.Node, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            return getattr(node, "lineno", None) or 1
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return None


def _deepest_line(env: TailorSandbox, source: str) -> int:
    """The line of the tag nested deepest in brackets and blocks, or else the longest tag (a chain).

    From the tokens: the lexer does not recurse.
    """
    depth, tokens, started = 0, 0, 1
    best, line = (0, 0), 1
    try:
        for lineno, kind, value in env.lex(source):
            if kind in ("variable_begin", "block_begin"):
                tokens, started = 0, lineno
            tokens += 1
            if kind in ("operator", "name"):
                depth += (value in _OPENING or value in _BLOCKS) - (value in _CLOSING or value.startswith("end"))
            if (depth, tokens) > best:
                best, line = (depth, tokens), started
    except TemplateSyntaxError:
        pass
    return line


_BLOCKS = {"if", "for", "macro", "call", "filter", "with", "block", "autoescape", "trans"}


def _unclosed(env: TailorSandbox, source: str) -> tuple[str, int] | None:
    """The innermost block tag the template opens and never ends, and its line, from the tokens."""
    opened: list[tuple[str, int]] = []
    after_begin = False
    try:
        for lineno, kind, value in env.lex(source):
            if kind == "whitespace":
                continue
            if after_begin and kind == "name":
                if value in _BLOCKS:
                    opened.append((value, lineno))
                elif value.startswith("end") and opened and opened[-1][0] == value[3:]:
                    opened.pop()
            after_begin = kind == "block_begin"
    except TemplateSyntaxError:
        return None
    return opened[-1] if opened else None


def _parse_anew(env: TailorSandbox, file: TemplateFile) -> Parsed:
    """Parse, and make MJML HTML after checking the Jinja in it, so that errors point at the MJML's own lines."""
    written = env.parse(file.source, file.name, file.filename)
    if not file.name.endswith(".mjml"):
        return Parsed(file.source, (), written, written)
    html, found = compile_mjml(file.source)
    source = html if not found else ""
    lines = source_lines(file.source, source)
    return Parsed(source, tuple(found), env.parse(source, file.name, file.filename), written, lines)


# Filters that take the name of another filter or test: map("upper"), select("odd"), selectattr("a", "even").
_NAMED_BY = {"map": ("filter", 0), "select": ("test", 0), "reject": ("test", 0)}
_NAMED_BY |= {"selectattr": ("test", 1), "rejectattr": ("test", 1)}


def _check_names(c: _Compiling, env: TailorSandbox, file: TemplateFile, tree: nodes.Template) -> bool:
    """Every filter and test a template names exists; False if one does not.

    Jinja checks names only outside ``{% if %}`` and ``{% for %}`` and leaves the rest to
    render time, where the block would fall back for every visitor.
    """
    known = {"filter": env.filters, "test": env.tests}
    ok = True
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        for kind, name in _names_in(node):  # type: ignore[arg-type]  # find_all is typed by the common base
            if name not in known[kind]:
                c.error(file.filename, f"unknown {kind} '{name}'{suggest(name, known[kind])}", node.lineno)
                ok = False
    return ok


def _names_in(node: nodes.Filter | nodes.Test) -> Iterator[tuple[str, str]]:
    """The filter or test ``node`` calls, and the one it names in its arguments (``map("upper")``)."""
    yield ("filter" if isinstance(node, nodes.Filter) else "test"), node.name
    kind, position = _NAMED_BY.get(node.name, ("", -1)) if isinstance(node, nodes.Filter) else ("", -1)
    if 0 <= position < len(node.args):
        arg = node.args[position]
        if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
            yield kind, arg.value


def _check_references(c: _Compiling, file: TemplateFile, tree: nodes.Template) -> None:
    for ref in _references(tree):
        if not isinstance(ref, nodes.Const) or not isinstance(ref.value, str):
            c.error(file.filename, "write the name of an included or imported template out in quotes", ref.lineno)
        elif ref.value not in c.files:
            hint = suggest(ref.value, c.files)
            c.error(file.filename, f"unknown template '{ref.value}'{hint}", ref.lineno)


def _check_messages(c: _Compiling, file: TemplateFile, tree: nodes.Template) -> None:
    """Every ``t("key")`` written out must exist in the default language, the fallback of all others."""
    for call in _translations(tree):
        key = call.args[0]
        if isinstance(key, nodes.Const) and isinstance(key.value, str):
            missing = _missing_message(c.locales, key.value)
            if missing:
                c.error(file.filename, missing, call.lineno)


def _translations(tree: nodes.Template) -> Iterator[nodes.Call]:
    """The ``t(...)`` calls of a template."""
    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name == "t" and call.args:
            yield call


def _missing_message(locales: Locales, key: str) -> str | None:
    default = locales.messages(locales.default)
    if key in default:
        return None
    return f"no translation '{key}' in the default language '{locales.default}'{suggest(key, default)}"


# What every block's template sees (CompiledBlocks.render), besides the environment's globals.
TEMPLATE_NAMES = frozenset(
    {"visitor", "context", "segments", "today", "content", "params", "variant", "locale", "language"}
)


def _warn_unknown_names(c: _Compiling, env: TailorSandbox) -> None:
    """A name no template knows, in a template no other includes (an include sees its includer's names)."""
    included = {ref.value for tree in c.written.values() for ref in _references(tree) if isinstance(ref, nodes.Const)}
    known = TEMPLATE_NAMES | set(env.globals)
    for name in sorted(set(c.written) - included):
        for unknown, line in unknown_names(c.written[name], known):
            c.warn(
                c.files[name].filename,
                f"'{unknown}' is no name a template knows{suggest(unknown, known)}: it is undefined when the block"
                " renders, so it prints nothing, and a call of it serves the fallback",
                line,
            )


def _check_imported_names(c: _Compiling, name: str) -> None:
    """``ui.buton(...)`` of ``{% import "partials/ui.html" as ui %}``, or ``{% from ... import buton %}``:
    a name the imported template does not define would only fail when a visitor's render reaches it."""
    tree, filename = c.written[name], c.files[name].filename
    for node in tree.find_all((nodes.Import, nodes.FromImport)):
        assert isinstance(node, nodes.Import | nodes.FromImport)
        target = _named(node.template)
        exported = _exports(c.written[target]) if target in c.written else None
        if exported is None:
            continue  # unknown or unnamed: _check_references reports it
        asked = _asked_of(tree, node.target) if isinstance(node, nodes.Import) else _from_names(node)
        for wanted, line in asked:
            if wanted not in exported:
                c.error(filename, f"'{target}' defines no '{wanted}'{suggest(wanted, exported)}", line)


def _exports(tree: nodes.Template) -> set[str]:
    """What an import of the template can reach: its macros and the names it sets at the top."""
    macros = {m.name for m in tree.find_all(nodes.Macro)}
    top = {t.name for a in tree.body if isinstance(a, nodes.Assign) for t in a.find_all(nodes.Name)}
    return macros | top


def _asked_of(tree: nodes.Template, alias: str) -> list[tuple[str, int]]:
    return [
        (g.attr, g.lineno)
        for g in tree.find_all(nodes.Getattr)
        if isinstance(g.node, nodes.Name) and g.node.name == alias
    ]


def _from_names(node: nodes.FromImport) -> list[tuple[str, int]]:
    return [(n if isinstance(n, str) else n[0], node.lineno) for n in node.names]


def _check_include_cycles(c: _Compiling) -> None:
    """A template that includes itself, directly or through others, would render until Python's
    recursion limit (and fall back with a traceback printed): an error at its first include."""
    for name in sorted(c.written):
        trail = _cycle_from(c, name)
        if trail is not None:
            line = next(ref.lineno for ref in _references(c.written[name]) if _named(ref) == trail[1])
            c.error(c.files[name].filename, f"template includes itself: {' → '.join(trail)}", line)


def _cycle_from(c: _Compiling, start: str) -> list[str] | None:
    """A path of includes from ``start`` back to it, found without recursion, or None."""
    todo: list[list[str]] = [[start]]
    seen: set[str] = set()
    while todo:
        trail = todo.pop()
        for ref in _references(c.written.get(trail[-1], nodes.Template([]))):  # the file's own lines
            target = _named(ref)
            if target == start:
                return [*trail, start]
            if target is not None and target not in seen:
                seen.add(target)
                todo.append([*trail, target])
    return None


def _named(ref: nodes.Expr) -> str | None:
    return ref.value if isinstance(ref, nodes.Const) and isinstance(ref.value, str) else None


def _references(tree: nodes.Template) -> Iterator[nodes.Expr]:
    for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        yield node.template  # type: ignore[attr-defined]


def _compile_templates(c: _Compiling, env: TailorSandbox) -> dict[str, Template]:
    compiled = {}
    for name in sorted(c.trees):
        file = c.files[name]
        try:
            compiled[name] = env.get_template(name)
        except (TemplateSyntaxError, TemplateAssertionError) as exc:
            c.error(file.filename, f"template: {exc.message}", c.written_line(file.filename, exc.lineno))
        except TemplateNotFound:
            pass  # reported by _parse with its line
    return compiled


def _closure(c: _Compiling, name: str) -> list[nodes.Template]:
    """The trees of a template and of everything it includes or imports."""
    trees = []
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen or current not in c.trees:
            continue
        seen.add(current)
        trees.append(c.trees[current])
        todo += [ref.value for ref in _references(c.trees[current]) if isinstance(ref, nodes.Const)]
    return trees


def _closure_reads(c: _Compiling, name: str, catalog: Catalog) -> tuple[Path, ...]:
    """What a template and everything it includes or imports reads."""
    paths: set[Path] = set()
    for tree in _closure(c, name):
        found, recommends = reads_of(tree)
        paths |= found
        if recommends:
            paths |= {("visitor", *path) for path in catalog.reads}
    return simplify(paths)


def _blocks(
    c: _Compiling,
    content_files: Sequence[tuple[str, ContentFile]],
    compiled: Mapping[str, Template],
    reads: Mapping[str, tuple[Path, ...]],
    needs: Mapping[str, tuple[Need, ...]],
) -> dict[str, Block]:
    blocks = {}
    for file, spec in content_files:
        for key, variant in spec.variants.items():
            render = variant.render
            if render is None:
                continue
            if render.template not in c.files:
                hint = suggest(render.template, c.files)
                c.error(
                    file,
                    f"unknown template '{render.template}' (looked in {TEMPLATES_DIR}/){hint}",
                    path=("variants", key, "render", "template"),
                )
                continue
            template = compiled.get(render.template)
            if template is None:
                continue  # its own problem is reported against the template file
            if not c.locales.default_missing:
                _check_param_messages(c, file, key, render.params, c.trees[render.template])
            for param, message in problems_of(render.params, needs[render.template], c.locales.choose(None, None)):
                c.error(file, message, path=("variants", key, "render", "params", param))
            blocks[key] = Block(
                key,
                template,
                reads[render.template],
                _frozen(render.params),
                _frozen(variant.content),
                render.fallback,
            )
    return blocks


def _check_param_messages(
    c: _Compiling, file: str, variant: str, params: Mapping[str, Any], tree: nodes.Template
) -> None:
    """``t(params.headline)`` needs ``params.headline`` to be a key of the default language."""
    for call in _translations(tree):
        arg = call.args[0]
        if not (isinstance(arg, nodes.Getattr) and isinstance(arg.node, nodes.Name) and arg.node.name == "params"):
            continue
        where = ("variants", variant, "render", "params", arg.attr)
        value = params.get(arg.attr)
        if not isinstance(value, str):
            c.error(file, f"the template translates params.{arg.attr}: give it a translation key", path=where[:-1])
        else:
            missing = _missing_message(c.locales, value)
            if missing:
                c.error(file, missing, path=where)


def _frozen(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))
