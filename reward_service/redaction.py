"""Credentials never leave the process: URLs are shown and logged without their user-info secrets.

A judge or Redis URL may carry ``user:password@`` (or a token as the user name). Everything the service
shows (``/readyz``, error messages) goes through :func:`redact_url` / :func:`redact_text`, and
:func:`install_log_redaction` adds a filter that rewrites any such URL in a log record, so a library
that logs its request URLs (httpx logs one INFO line per call) cannot leak them either.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

#: ``scheme://userinfo@``: the user-info part of any URL in free text.
_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^\s/@:]*)(?P<password>:[^\s/@]*)?@"
)
MASK = "***"


def _masked_userinfo(match: re.Match[str]) -> str:
    # With a password the user name is kept (it says which account); alone it may itself be a token.
    if match["password"] is not None:
        return f"{match['scheme']}{match['user']}:{MASK}@"
    return f"{match['scheme']}{MASK}@"


def redact_text(text: str) -> str:
    """``text`` with the secret part of every URL's user-info replaced by ``***``."""
    if "@" not in text:
        return text
    return _USERINFO.sub(_masked_userinfo, text)


def redact_url(url: str) -> str:
    """``url`` without its password (or a bare user-info token), for logs and ``/readyz``."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    userinfo = f"{parts.username}:{MASK}" if parts.password is not None else MASK
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}{port}"))


class RedactingFilter(logging.Filter):
    """Rewrites credentials in URLs of a record's message (formatted with its arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = RedactingFilter()

#: Loggers of libraries that log URLs; a filter on the logger itself holds whatever handler is used.
_URL_LOGGERS = ("httpx", "httpcore", "redis", "uvicorn.error")


def install_log_redaction() -> None:
    """Add the redacting filter to the root handlers and to the loggers of libraries that log URLs."""
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    for name in (*_URL_LOGGERS, "reward_service"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
