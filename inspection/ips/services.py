"""Service recognition for --service: a session's first client bytes, not its port.

HTTP: a request line (method, space, request target); ICCP: ``looks_like_iccp`` of
the ICCP decoder (TPKT + COTP). ``None`` while too few bytes arrived to decide.
"""

from __future__ import annotations

import re
from collections.abc import Callable

HEAD_MAX = 64  # client bytes kept to decide; past this the service is "other"
HTTP_METHODS = (b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH",
                b"CONNECT", b"TRACE")
_HTTP_START = re.compile(rb"([A-Z]{3,7}) (/|\*|[a-zA-Z][a-zA-Z0-9+.-]*://|[^ /]+:\d)")


def looks_like_http(head: bytes) -> bool | None:
    """True for ``GET /...``-style request starts, False when clearly not, None: wait."""
    m = _HTTP_START.match(head)
    if m:
        return m.group(1) in HTTP_METHODS
    if len(head) < 12 and any((meth + b" ").startswith(head[:len(meth) + 1])
                              for meth in HTTP_METHODS):
        return None  # a request start still possible: wait for more bytes
    return False


def detect_service(head: bytes, looks_like_iccp: Callable[[bytes], bool | None] | None
                   ) -> str | None:
    """"ICCP", "HTTP", "other", or None (undecided) from the first client bytes."""
    iccp = looks_like_iccp(head) if looks_like_iccp is not None else False
    if iccp:
        return "ICCP"
    http = looks_like_http(head)
    if http:
        return "HTTP"
    if iccp is None or http is None:
        return None if len(head) < HEAD_MAX else "other"
    return "other"
