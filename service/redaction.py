"""URLs as they may be shown: without the credentials operators put in them.

A bundle origin's URL often carries a secret: ``https://user:password@host/...`` or a presigned
query string (``?X-Amz-Signature=...``). Logs, start-up messages and API answers show
``redact_url(url)`` instead: the scheme, host, port and path stay (they say which origin), the
user information, every query value and the fragment become ``***``. ``scrub(text, url)`` removes
the URL and its secret parts from any other text, such as an HTTP library's error message.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
MIN_SECRET_CHARS = 3  # shorter parts ("a", "1") would mask every occurrence of a letter in a message


def redact_url(url: str) -> str:
    """``https://***@host/path?key=***#***``: what identifies the origin, nothing that grants access."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        return MASK  # not parseable: nothing of it can be shown safely
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if "@" in parts.netloc:
        netloc = f"{MASK}@{netloc}"
    query = "&".join(_masked_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    fragment = MASK if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _masked_pair(pair: str) -> str:
    """``key=***``; a part without ``=`` may be an opaque token itself, so all of it is masked."""
    key, equals, _ = pair.partition("=")
    return f"{key}={MASK}" if equals else MASK


def secrets_of(url: str) -> list[str]:
    """The parts of ``url`` that must not be shown, raw and percent-decoded, longest first."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = {url}
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        found.add(userinfo)
        found.update(userinfo.split(":", 1)[1:])  # the password; a bare user name is too common a word
    if parts.query:
        found.add(parts.query)
        for pair in parts.query.split("&"):
            key, equals, value = pair.partition("=")
            found.add(value if equals else key)
    if parts.fragment:
        found.add(parts.fragment)
    found |= {unquote(secret) for secret in found}
    return sorted((s for s in found if len(s) >= MIN_SECRET_CHARS), key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with ``url`` shown redacted and every secret part of it masked."""
    text = text.replace(url, redact_url(url))
    for secret in secrets_of(url):
        text = text.replace(secret, MASK)
    return text


class ScrubFilter(logging.Filter):
    """Masks one URL's secrets in every record of a logger (for libraries that log the URLs they fetch)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message, self.url)
        if record.exc_info:  # an exception's text may quote the URL too; formatters would print it later
            trace = logging.Formatter().formatException(record.exc_info)
            if scrub(trace, self.url) != trace:
                cleaned, record.exc_info, record.exc_text = f"{cleaned}\n{scrub(trace, self.url)}", None, None
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
