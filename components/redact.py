"""Credentials out of everything ragtune prints: ``scheme://user:password@host`` becomes ``scheme://***@host``.

A tracking URI, a DVC remote or an S3 endpoint may carry a user and password in its URL; an error
message that quotes the URL (a refused connection, a failed preflight) would print them in a CI log.
:func:`redact` is the one place that removes them: :func:`flows.common.fail` passes every error line
through it, and :class:`RedactingFilter` every log record of the CLI's handlers.
"""

from __future__ import annotations

import logging
import re

# scheme://userinfo@ : userinfo is everything up to the first "@" before any "/", "?", "#" or whitespace
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^\s/?#@]+)@")
MASK = "***"


def redact(text: str) -> str:
    """``text`` with the user and password of every URL in it replaced by ``***``."""
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts the formatted message (and any exception text) of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = redact(formatted), None
        return True


def redact_logging() -> None:
    """Put a :class:`RedactingFilter` on every handler configured so far (the root's and every named logger's).

    Call it again after a library configures its own handlers (Prefect does when it is imported).
    """
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
