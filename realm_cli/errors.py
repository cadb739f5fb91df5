"""User-facing errors: the CLI prints these as one line, never as a traceback; and what may go into one."""

import re


class RealmError(Exception):
    """A mistake in what the user asked for (bad recipe, unknown name, malformed file, missing model)."""


BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every given secret and any ``Bearer <token>`` replaced by ``***``: what a server echoes back
    (an error body quoting our Authorization header) must never reach stderr, a log or an output file."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return BEARER.sub(r"\1 ***", text)


def excerpt(text: str, limit: int = 200) -> str:
    """At most ``limit`` characters of ``text``, cut at a word boundary and marked with an ellipsis when cut."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(",;:") + " …"
