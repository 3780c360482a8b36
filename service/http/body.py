"""Request bodies → wire structs, strictly: one decoder that every route and the CLI share.

What a body must be, checked in this order so the client hears the first thing wrong:

1. JSON by its headers: ``Content-Type: application/json`` and no ``Content-Encoding``
   (anything else is 415: a gzip body or a form is not "bad JSON", it is not JSON);
2. UTF-8 (RFC 8259 §8.1), said with the byte offset of the first bad sequence;
3. of the wire type, with no type coercion: ``"true"`` is not a bool and ``5`` is not a time;
4. without duplicate keys, whose "last one wins" meaning differs between parsers;
5. with every integer small enough to be a float: the conditions and the models compare numbers
   as floats, and ``float(10**400)`` raises.

Steps 4 and 5 are a second pass with the standard library's parser, whose hooks see every
object's keys and every integer's digits. That pass costs several times msgspec's whole decode,
so it runs only when a cheap look at the text says it could find something (``_may_need_the_pass``):
a run of 309 digits, or a key that may repeat. A page view whose strings (keys and values alike)
are all different and unescaped cannot repeat a key; a batch, whose recipients share their keys,
is counted instead (``_keys_may_repeat``: msgspec's tree against the text, in C). Skipping the
pass never changes an answer, with one exception at the edge: nesting is then limited by msgspec
alone (about 990 levels, the same "nests too deeply" as the pass's limit a few levels shallower).
Only when the pass finds a problem does a third, slower pass locate it, so that the error names
its JSON path.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

import msgspec

from service.core.errors import RequestError, TailorError
from service.http.hints import unknown_field_hint

T = TypeVar("T")

JSON_MEDIA_TYPES = frozenset({"application/json"})
LARGE_BODY_BYTES = 256 * 1024
FLOAT_MAX = sys.float_info.max
FLOAT_MAX_DIGITS = len(str(int(FLOAT_MAX)))  # 309: fewer digits always fit, more never do
_LONG_DIGITS = b"0" * FLOAT_MAX_DIGITS  # searched in the text with every digit made a 0, every other byte a space
_DIGITS_AS_ZEROS = bytes(ord("0") if chr(byte).isdigit() and byte < 128 else ord(" ") for byte in range(256))
_ALL_BUT_QUOTES_AND_COLONS = bytes(byte for byte in range(256) if byte not in b'":')
_QUOTE_OR_COLON_ESCAPE = re.compile(rb'\\(?:"|u00(?:22|3[aA]))')
# The standard parser recurses once per level (RecursionError near 1,000): fewer openings than
# this cannot nest deep enough, and no page view comes close.
_DEEP_OPENINGS = 200


class UnsupportedMediaError(TailorError):
    """A body that is not plain JSON by its Content-Type or Content-Encoding."""


class _Found(TailorError):  # noqa: N818 - a signal between the hooks and the pass, never raised beyond it
    """Raised by the hooks of the check pass: something to locate."""


class Headers(Protocol):
    """A request's headers by lower-case name: a dict, Litestar's headers or granian's RSGI ones."""

    def get(self, key: str, default: Any = None, /) -> Any: ...

    def __contains__(self, key: object) -> bool: ...


def check_headers(headers: Headers | Mapping[str, str]) -> None:
    """Refuse bodies that are not plain JSON by their headers (415), before reading them as JSON."""
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in JSON_MEDIA_TYPES:
        # granian's RSGI headers leave out a value that is not ASCII, so "none" may be an unreadable one
        shown = f"'{media_type}'" if media_type else "a missing or non-ASCII Content-Type"
        raise UnsupportedMediaError(f"send the body as application/json, not {shown}")
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaError(f"send the body without Content-Encoding (got '{encoding}')")


def decode(body: bytes, kind: type[T]) -> T:
    """The body as ``kind``, or a RequestError naming the JSON path of the first problem."""
    if not body:
        raise RequestError("the request body is empty; send a JSON object", "$")
    text = _text(body)
    if _plainly_distinct(text):  # a page view: straight into the wire structs
        tree: Any = _PLAIN
        value = _typed(text, kind)
    else:  # a batch: parsed once, the tree both converted to ``kind`` and counted for repeated keys
        tree = _tree(body)
        converted = _converted(tree, kind)
        value = _typed(text, kind) if converted is None else converted  # refused: the typed decoder says why
    if _may_need_the_pass(text, body, tree):
        _check_keys_and_numbers(text)
    return value


def _typed(text: str, kind: type[T]) -> T:
    try:
        return _decoder(kind).decode(text)
    except msgspec.ValidationError as exc:
        error = _validation_error(str(exc))
        error = RequestError(error.message + unknown_field_hint(kind, error.where, error.message), error.where)
        # inside free-form attributes msgspec names no key ("$.visitor.attributes[...]"): find it
        raise (_locate_number(text) if "[...]" in error.where else None) or error from None
    except msgspec.DecodeError as exc:
        raise RequestError(f"the body is not valid JSON: {_decode_reason(text, exc)}", "$") from None
    except RecursionError:  # msgspec gives up on JSON nested thousands deep before any limit of ours
        raise RequestError("the JSON nests too deeply", "$") from None


_LONE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_PAIR = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def _decode_reason(text: str, exc: msgspec.DecodeError) -> str:
    """msgspec's reason, but where it says "truncated" of a whole document that holds an escaped UTF-16
    surrogate (``\\ud800``): that escape, not the end, is what it could not read."""
    reason = str(exc)
    if reason == "Input data was truncated" and _LONE_SURROGATE.search(_SURROGATE_PAIR.sub("", text)):
        return "a \\uD800-\\uDFFF escape that is not a valid surrogate pair (JSON text must be Unicode)"
    return reason


_DECODERS: dict[Any, msgspec.json.Decoder[Any]] = {}


def _decoder(kind: type[T]) -> msgspec.json.Decoder[T]:
    """One decoder per wire type: ``msgspec.json.decode(type=...)`` looks the type up on every call."""
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS[kind] = msgspec.json.Decoder(kind, strict=True)
    return decoder


_PLAIN = object()  # no tree needed: no key can repeat
_UNREADABLE = object()  # no tree: msgspec refused the text as JSON (the typed decoder says why)
_UNASKED = object()


def _tree(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return _UNREADABLE


def _converted(tree: Any, kind: type[T]) -> T | None:
    """``tree`` as ``kind`` with the typed decoder's own rules (strict), or None where they refuse it.

    ``tests/test_http_body.py`` holds it to the typed decoder on generated bodies of every request
    type: the same value wherever this one accepts, so only a refusal needs the typed decoder.
    """
    if tree is _UNREADABLE:
        return None
    try:
        return msgspec.convert(tree, kind, strict=True)
    except msgspec.ValidationError:
        return None


def _plainly_distinct(text: str) -> bool:
    """Are the text's strings (keys and values alike) all different and unescaped? Then no key repeats.

    Without a backslash, a valid text's quotes are exactly its strings' delimiters, so every
    other piece between quotes is a string. (An escape could spell one key two ways.) Every step
    runs in C: 1 to 2 µs for a page view, against 7 to 28 µs for the pass.
    """
    if "\\" in text or text.count("{") + text.count("[") >= _DEEP_OPENINGS:
        return False
    strings = text.split('"')[1::2]
    return len(set(strings)) == len(strings)


def _may_need_the_pass(text: str, body: bytes, tree: Any = _UNASKED) -> bool:
    """Could the key and number pass find anything in this (valid JSON) text? False only when it cannot.

    A run of 309 digits may be an integer beyond a float. A page view's strings are plainly
    distinct; a batch repeats its keys in every recipient, so its tree is counted instead.
    """
    if len(body) >= FLOAT_MAX_DIGITS and _LONG_DIGITS in body.translate(_DIGITS_AS_ZEROS):
        return True
    if tree is _UNASKED:
        tree = _PLAIN if _plainly_distinct(text) else _tree(body)
    if tree is _PLAIN:
        return False
    return tree is _UNREADABLE or _keys_may_repeat(body, tree)


def _keys_may_repeat(body: bytes, tree: Any) -> bool:
    """Could an object of this valid JSON hold a key twice? Counted in C, without the stdlib pass.

    msgspec's own decoding (``tree``) keeps an object's last value for a repeated key, so its
    tree has fewer keys than the text exactly when some object repeats one. Both are counted as
    the quotes that a colon follows once everything but quotes and colons is deleted: each key
    adds one, and so does each string holding a colon. Encoded again, the tree has the same
    strings less those of dropped members, with the same colons, as long as no escape spells a
    quote or a colon: those texts go to the pass. So an equal count means no key repeats
    (``tests/test_http_body.py`` holds it to the pass on generated texts).
    """
    if b"\\" in body and _QUOTE_OR_COLON_ESCAPE.search(body) is not None:
        return True
    try:
        encoded = msgspec.json.encode(tree)
    except RecursionError:
        return True
    return _key_marks(encoded) != _key_marks(body)


def _key_marks(text: bytes) -> int:
    """Keys plus strings holding a colon, in a JSON text whose quotes are all delimiters."""
    return text.translate(None, _ALL_BUT_QUOTES_AND_COLONS).count(b'":')


async def decode_off_the_loop(body: bytes, kind: type[T]) -> T:
    """``decode``, in a worker thread for a big body: a batch decodes beside the loop, which serves page views."""
    if len(body) > LARGE_BODY_BYTES:
        return await asyncio.to_thread(decode, body, kind)
    return decode(body, kind)


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"the body is not valid UTF-8: byte {exc.start} ({body[exc.start]:#04x})", "$") from None


def _validation_error(message: str) -> RequestError:
    """msgspec says ``Expected `str`, got `int` - at `$.visitor.id```: split the path off the message."""
    text, marker, where = message.rpartition(" - at `")
    if not marker:
        return RequestError(message, "$")
    return RequestError(text, where.rstrip("`"))


def _check_keys_and_numbers(text: str) -> None:
    try:
        json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_fits_a_float)
    except _Found:
        raise _locate(text) from None
    except RecursionError:
        raise RequestError("the JSON nests too deeply", "$") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> None:
    if len(pairs) > 1 and len({key for key, _ in pairs}) != len(pairs):
        raise _Found


def _fits_a_float(digits: str) -> None:
    if _too_large(digits):
        raise _Found


def _too_large(digits: str) -> bool:
    count = len(digits.lstrip("-"))
    # Compare by digit count first: int() refuses texts beyond 4,300 digits (CVE-2020-10735).
    return count > FLOAT_MAX_DIGITS or (count == FLOAT_MAX_DIGITS and abs(int(digits)) > FLOAT_MAX)


class _Pairs(list[tuple[str, Any]]):
    """An object's members in order, duplicates kept (the locating pass only)."""


class _HugeInt(str):
    """An integer's digits that no float can hold (the locating pass only)."""

    __slots__ = ()


class _HugeFloat(str):
    """A number's text that is beyond a float's range, such as ``1e999`` (the locating pass only)."""

    __slots__ = ()


class DuplicateKeyError(RequestError):
    """A key given twice: ``where`` is the key's path, ``holder`` the object's that holds it (a second
    ``context`` is an error of the body, not of the context: OFREP tells the two apart)."""

    def __init__(self, key: str, holder: str) -> None:
        super().__init__(f"duplicate key '{key}'", f"{holder}.{key}")
        self.holder = holder


def _locate(text: str) -> RequestError:
    """Parse again keeping every member, and name the first duplicate key or huge integer."""
    tree = json.loads(text, object_pairs_hook=_Pairs, parse_int=_keep_huge)
    found = _find(tree, "$")
    return found or RequestError("the JSON has a duplicate key or an integer too large", "$")


def _keep_huge(digits: str) -> int | _HugeInt:
    return _HugeInt(digits) if _too_large(digits) else int(digits)


def _locate_number(text: str) -> RequestError | None:
    """The first number beyond a float's range, by its path; None when there is none (or no tree)."""
    try:
        tree = json.loads(text, object_pairs_hook=_Pairs, parse_int=_keep_huge, parse_float=_keep_finite)
    except (ValueError, RecursionError):
        return None
    return _find(tree, "$", duplicates=False)


def _keep_finite(text: str) -> float | _HugeFloat:
    number = float(text)
    return number if math.isfinite(number) else _HugeFloat(text)


def _find(node: Any, where: str, *, duplicates: bool = True) -> RequestError | None:
    if isinstance(node, _HugeInt):
        return RequestError(f"integer of {len(node.lstrip('-'))} digits is beyond a number's range (1.8e308)", where)
    if isinstance(node, _HugeFloat):
        return RequestError(f"number {node[:40]} is beyond a number's range (1.8e308)", where)
    if isinstance(node, _Pairs):
        seen: set[str] = set()
        for key, value in node:
            if duplicates and key in seen:
                return DuplicateKeyError(key, where)
            seen.add(key)
            if (found := _find(value, f"{where}.{key}", duplicates=duplicates)) is not None:
                return found
    elif isinstance(node, list):
        for index, item in enumerate(node):
            if (found := _find(item, f"{where}[{index}]", duplicates=duplicates)) is not None:
                return found
    return None


Receive = Callable[[], Awaitable[Any]]  # an ASGI receive: the next message of the request


class ClientGoneError(TailorError):
    """The client closed the connection, or broke the framing, before its body was complete."""


class BodyTimeoutError(TailorError):
    """The body did not arrive within the body read timeout: a slow client holding a connection."""


class BodyTooLargeError(TailorError):
    """The body is larger than the route allows."""


async def read_body(receive: Receive, *, limit: int, timeout_s: float, declared: str | None) -> bytes:
    """The whole body, within ``limit`` bytes and ``timeout_s`` seconds in total.

    The deadline covers the whole body, not each chunk: a client sending a byte a second
    would otherwise hold its connection (and a slot of the worker) for as long as it likes.
    """
    check_declared(declared, limit)
    return await within(timeout_s, _chunks(receive, limit))


def check_declared(declared: str | None, limit: int) -> None:
    """A 413 before reading anything when the declared length is already too large."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"the body is larger than {limit} bytes")


async def within(timeout_s: float, reading: Awaitable[T]) -> T:
    """``await reading``, or BodyTimeoutError once ``timeout_s`` have passed.

    ``asyncio.timeout`` arms and cancels a timer per request (several µs, the largest item of a
    page view's body read); here the deadline is an entry in a dict that one timer per event loop
    checks every ``DEADLINE_TICK_S``. A deadline may so be overrun by up to one tick.
    """
    task = asyncio.current_task()
    if task is None:  # not in a task (never so under a server): no one to cancel
        return await reading
    deadlines = _Deadlines.of(task.get_loop())
    deadlines.watch(task, timeout_s)
    try:
        return await reading
    except asyncio.CancelledError:
        if deadlines.expired(task):
            raise BodyTimeoutError(f"the body did not arrive within {timeout_s:g} seconds") from None
        raise
    finally:
        deadlines.reading.pop(task, None)
        deadlines.cancelled.discard(task)  # a cancel that lost the race with another error


DEADLINE_TICK_S = 0.1


class _Deadlines:
    """The bodies being read on one event loop and when each must be complete, checked by one timer."""

    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines]] = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reading: dict[asyncio.Task[Any], float] = {}
        self.cancelled: set[asyncio.Task[Any]] = set()  # cancelled by a deadline, not by anyone else
        self.timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Deadlines:
        found = cls._by_loop.get(loop)
        if found is None:
            found = cls._by_loop[loop] = cls(loop)
        return found

    def watch(self, task: asyncio.Task[Any], timeout_s: float) -> None:
        self.reading[task] = self.loop.time() + timeout_s
        if self.timer is None:
            self.timer = self.loop.call_later(min(DEADLINE_TICK_S, timeout_s), self._check)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Was ``task`` cancelled by its deadline? If so it is no longer cancelled: it answers 408."""
        if task not in self.cancelled:
            return False
        self.cancelled.discard(task)
        task.uncancel()
        return True

    def _check(self) -> None:
        now = self.loop.time()
        for task, due in list(self.reading.items()):
            if due <= now:
                del self.reading[task]
                self.cancelled.add(task)
                task.cancel()
        self.timer = self.loop.call_later(DEADLINE_TICK_S, self._check) if self.reading else None


async def _chunks(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError("the connection closed before the body was complete")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
        more = bool(message.get("more_body", False))
    return b"".join(chunks)
