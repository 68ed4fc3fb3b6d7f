"""Link and file URL checks: http/https only, no userinfo, no control characters, bounded."""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_URL_CHARS = 2048


def url_problem(url: str) -> str | None:
    """Why `url` is not an acceptable link, or None when it is."""
    if len(url) > MAX_URL_CHARS:
        return f"URL longer than {MAX_URL_CHARS} characters"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F or ch.isspace() for ch in url):
        return "URL contains control characters or whitespace"
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"malformed URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"URL scheme {parts.scheme or '(none)'!r} not allowed (http or https only)"
    if "@" in parts.netloc:
        return "URL must not contain user information (user@host)"
    if not parts.hostname:
        return "URL has no host"
    return None
