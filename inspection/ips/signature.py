"""F-SBID custom signature parser: ``parse_signature(text) -> Signature``.

A pure parser of the supported subset (docs/ips.md); every error is a
``SignatureError`` that names the keyword and the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_SIGNATURE_LEN = 4095  # FortiOS `set signature` var-string limit
MAX_NAME_LEN = 63
MAX_PCRE_WIDTH = 256  # cap of an unbounded --pcre's width for the carry-over (docs/ips.md)
SERVICES = ("HTTP", "ICCP")
PROTOCOLS = ("tcp", "udp", "icmp")
FLOWS = ("from_client", "from_server", "bi_direction")
CONTEXTS = ("packet",)
UNSUPPORTED_CONTEXTS = ("packet_origin", "uri", "header", "body", "host", "banner")
ICCP_KEYWORDS = ("iccp_service", "iccp_item", "iccp_domain", "iccp_anomaly", "iccp_pdu_size")
REQUIRED = ("name", "service", "flow")


class SignatureError(ValueError):
    """A signature that does not parse; ``keyword`` names the offending keyword."""

    def __init__(self, keyword: str, reason: str) -> None:
        self.keyword = keyword
        self.reason = reason
        super().__init__(f"--{keyword}: {reason}" if keyword else reason)


@dataclass(frozen=True, slots=True)
class PortSet:
    """A --src_port/--dst_port value: inclusive ranges, optionally negated."""

    ranges: tuple[tuple[int, int], ...]
    negated: bool = False

    def __contains__(self, port: int) -> bool:
        inside = any(lo <= port <= hi for lo, hi in self.ranges)
        return inside != self.negated


@dataclass(frozen=True, slots=True)
class Content:
    """One --pattern or --pcre with its modifiers (a matcher expression)."""

    kind: str  # "pattern" | "pcre"
    data: bytes  # literal bytes, or the regex source
    no_case: bool = False
    regex_flags: str = ""  # pcre flags kept: i s m
    distance: int | None = None
    within: int | None = None
    offset: int | None = None
    depth: int | None = None
    min_width: int = 0
    max_width: int = 0  # capped at MAX_PCRE_WIDTH for unbounded regexes
    anchored: bool = False  # pcre with a leading ^: only at the start of the stream

    @property
    def relative(self) -> bool:
        return self.distance is not None or self.within is not None


@dataclass(frozen=True, slots=True)
class IccpMatch:
    """The ICCP emulator keywords of a signature: one IccpEvent satisfies all."""

    service: str | None = None
    item: str | None = None
    domain: str | None = None
    anomaly: bool = False
    pdu_size: tuple[str, int] | None = None  # (op, n), op in "=", ">", "<"
    no_case: bool = False


@dataclass(frozen=True, slots=True)
class Signature:
    """A parsed F-SBID signature."""

    name: str
    service: str
    flow: str
    text: str
    attack_id: int | None = None
    protocol: str | None = None
    src_port: PortSet | None = None
    dst_port: PortSet | None = None
    contents: tuple[Content, ...] = ()
    iccp: IccpMatch | None = None


def _split_options(body: str) -> list[tuple[str, str | None]]:
    """Split ``--kw value; --kw "v;a\\"l"; --flag;`` into (keyword, raw value) pairs."""
    options: list[tuple[str, str | None]] = []
    i, n = 0, len(body)
    while i < n:
        while i < n and body[i] in " \t\r\n;":
            i += 1
        if i >= n:
            break
        if not body.startswith("--", i):
            raise SignatureError("", f"expected '--keyword' at {body[i:i + 20]!r}")
        j = i + 2
        while j < n and (body[j].isalnum() or body[j] == "_"):
            j += 1
        keyword = body[i + 2:j].lower()
        if not 1 <= len(keyword) <= 19:
            raise SignatureError(keyword, "a keyword has 1 to 19 characters")
        while j < n and body[j] in " \t":
            j += 1
        if j >= n or body[j] == ";":
            options.append((keyword, None))
            i = j + 1
            continue
        if body[j] == '"':
            k, out = j + 1, []
            while k < n and body[k] != '"':
                if body[k] == "\\" and k + 1 < n:
                    out.append(body[k:k + 2])
                    k += 2
                else:
                    out.append(body[k])
                    k += 1
            if k >= n:
                raise SignatureError(keyword, "unterminated quoted value")
            value = "".join(out)
            k += 1
            while k < n and body[k] in " \t":
                k += 1
            if k < n and body[k] != ";":
                raise SignatureError(keyword, "expected ';' after the quoted value")
            options.append((keyword, value))
            i = k + 1
        else:
            k = body.find(";", j)
            k = n if k < 0 else k
            options.append((keyword, body[j:k].strip()))
            i = k + 1
    return options


def _unescape(value: str) -> str:
    """Remove the backslash escapes of a quoted value (\\" \\; \\\\ \\|)."""
    return re.sub(r"\\(.)", r"\1", value)


def parse_pattern(value: str) -> bytes:
    """Decode a --pattern value: text with ``|hex hex|`` byte runs and ``\\`` escapes."""
    out = bytearray()
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch == "\\":
            if i + 1 >= n:
                raise SignatureError("pattern", "dangling backslash")
            out += value[i + 1].encode("utf-8")
            i += 2
        elif ch == "|":
            end = value.find("|", i + 1)
            if end < 0:
                raise SignatureError("pattern", "unterminated |hex| run")
            digits = value[i + 1:end].replace(" ", "")
            if len(digits) % 2 or not re.fullmatch(r"[0-9A-Fa-f]*", digits):
                raise SignatureError("pattern", f"bad hex run |{value[i + 1:end]}|")
            out += bytes.fromhex(digits)
            i = end + 1
        else:
            out += ch.encode("utf-8")
            i += 1
    return bytes(out)


def parse_ports(keyword: str, value: str) -> PortSet:
    """``80``, ``!80``, ``1024:``, ``:1023``, ``8000:8080``, lists ``80,443,8000:8080``."""
    negated = value.startswith("!")
    body = value[1:] if negated else value
    ranges = []
    for part in body.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d*):(\d*)|(\d+)", part)
        if not m or part == ":":
            raise SignatureError(keyword, f"bad port {part!r} (N, N:M, :M, N:, lists with ',')")
        if m.group(3) is not None:
            lo = hi = int(m.group(3))
        else:
            lo = int(m.group(1) or 0)
            hi = int(m.group(2) or 65535)
        if not 0 <= lo <= hi <= 65535:
            raise SignatureError(keyword, f"bad port range {part!r}")
        ranges.append((lo, hi))
    return PortSet(tuple(ranges), negated)


def _int(keyword: str, value: str | None, lo: int = 0, hi: int = 65535) -> int:
    if value is None or not re.fullmatch(r"\d+", value.split(",")[0].strip()):
        raise SignatureError(keyword, f"needs an integer, got {value!r}")
    head, _, ctx = value.partition(",")
    if ctx and ctx.strip() not in CONTEXTS:
        raise SignatureError(keyword, f"context {ctx.strip()!r} not supported (packet only)")
    n = int(head)
    if not lo <= n <= hi:
        raise SignatureError(keyword, f"{n} out of range {lo}..{hi}")
    return n


def _anchors(tree: object) -> int:
    """How many ^ $ \\A \\Z assertions a parsed regex holds (nested groups included)."""
    from re import _constants as sre  # type: ignore[attr-defined]
    ends = (sre.AT_BEGINNING, sre.AT_BEGINNING_STRING, sre.AT_END, sre.AT_END_STRING,
            sre.AT_BEGINNING_LINE, sre.AT_END_LINE)
    if isinstance(tree, tuple) and len(tree) == 2 and tree[0] is sre.AT:
        return int(tree[1] in ends)
    items = getattr(tree, "data", tree)
    if isinstance(items, (list, tuple)):
        return sum(_anchors(x) for x in items)
    return 0


def _pcre(value: str) -> tuple[bytes, str, int, int, bool]:
    m = re.fullmatch(r"/(.*)/([A-Za-z]*)", value, re.DOTALL)
    if not m:
        raise SignatureError("pcre", 'expected "/regex/flags"')
    source, flags = m.group(1), m.group(2)
    bad = set(flags) - set("ism")
    if bad:
        raise SignatureError("pcre", f"unsupported flag(s) {''.join(sorted(bad))} (i, s, m)")
    pyflags = (re.IGNORECASE if "i" in flags else 0) | (re.DOTALL if "s" in flags else 0) | (
        re.MULTILINE if "m" in flags else 0)
    try:
        compiled = re.compile(source.encode("latin-1"), pyflags)
    except (re.error, UnicodeEncodeError) as exc:
        raise SignatureError("pcre", f"bad regex: {exc}") from None
    tree = re._parser.parse(compiled.pattern, pyflags)  # type: ignore[attr-defined]
    lo, hi = tree.getwidth()
    if hi == 0:
        raise SignatureError("pcre", "regex matches only the empty string")
    from re import _constants as sre  # type: ignore[attr-defined]
    anchored = bool(tree.data) and tree.data[0] in (
        (sre.AT, sre.AT_BEGINNING), (sre.AT, sre.AT_BEGINNING_STRING)) and "m" not in flags
    if _anchors(tree) > int(anchored):
        raise SignatureError("pcre", "on a stream only a leading ^ (start of stream, no 'm' "
                                     "flag) is supported; no $, \\A, \\Z or other ^")
    return source.encode("latin-1"), flags, lo, min(hi, MAX_PCRE_WIDTH), anchored


def _iccp_size(value: str | None) -> tuple[str, int]:
    m = re.fullmatch(r"\s*([<>]?)\s*(\d+)\s*", value or "")
    if not m:
        raise SignatureError("iccp_pdu_size", f"expected N, >N or <N, got {value!r}")
    return (m.group(1) or "="), int(m.group(2))


def parse_signature(text: str) -> Signature:
    """Parse ``F-SBID( --name "x"; --service ICCP; --flow from_client; ... )``."""
    if len(text) > MAX_SIGNATURE_LEN:
        raise SignatureError("", f"signature longer than {MAX_SIGNATURE_LEN} characters")
    m = re.fullmatch(r"\s*F-SBID\s*\((.*)\)\s*", text, re.DOTALL | re.IGNORECASE)
    if not m:
        raise SignatureError("", "a signature is 'F-SBID( --keyword value; ... )'")
    seen: dict[str, str | None] = {}
    contents: list[dict[str, Any]] = []
    iccp: dict[str, Any] = {}
    last_target = ""  # what --no_case applies to: "content" or "iccp"
    for keyword, raw in _split_options(m.group(1)):
        value = None if raw is None else _unescape(raw)
        if keyword in ("name", "service", "flow", "attack_id", "protocol", "src_port",
                       "dst_port") and keyword in seen:
            raise SignatureError(keyword, "given twice")
        if keyword == "name":
            if not value or len(value) > MAX_NAME_LEN:
                raise SignatureError("name", f"needs 1 to {MAX_NAME_LEN} characters")
        elif keyword == "service":
            if (value or "").upper() not in SERVICES:
                raise SignatureError("service", f"{value!r} not supported ({', '.join(SERVICES)})")
            value = (value or "").upper()
        elif keyword == "flow":
            base = (value or "").split(",")[0].strip().lower()
            if base not in FLOWS or (value or "").count(",") > 1 or (
                    "," in (value or "") and (value or "").split(",")[1].strip() != "reversed"):
                raise SignatureError("flow", f"{value!r} is not {' | '.join(FLOWS)}[,reversed]")
            value = base
        elif keyword == "attack_id":
            value = str(_int("attack_id", value, 1000, 9999))
        elif keyword == "protocol":
            if (value or "").lower() not in PROTOCOLS:
                raise SignatureError("protocol", f"{value!r} is not tcp, udp or icmp")
            value = (value or "").lower()
        elif keyword in ("src_port", "dst_port"):
            if not value:
                raise SignatureError(keyword, "needs a port value")
        elif keyword == "pattern":
            if not raw:
                raise SignatureError("pattern", "needs a value")
            if raw.startswith("!"):
                raise SignatureError("pattern", "negated patterns ('!') are not supported")
            data = parse_pattern(raw)
            if not data:
                raise SignatureError("pattern", "empty pattern")
            contents.append({"kind": "pattern", "data": data, "min_width": len(data),
                             "max_width": len(data)})
            last_target = "content"
            continue
        elif keyword == "pcre":
            if not raw:
                raise SignatureError("pcre", "needs a value")
            source, flags, lo, hi, anchored = _pcre(raw)
            contents.append({"kind": "pcre", "data": source, "regex_flags": flags,
                             "min_width": lo, "max_width": hi, "anchored": anchored})
            last_target = "content"
            continue
        elif keyword in ("no_case", "context", "distance", "within", "offset", "depth"):
            if keyword == "no_case" and last_target == "iccp":
                if value is not None:
                    raise SignatureError("no_case", "takes no value")
                iccp["no_case"] = True
                continue
            if not contents:
                raise SignatureError(keyword, "must follow a --pattern or --pcre")
            last = contents[-1]
            if keyword in last:
                raise SignatureError(keyword, "given twice for the same pattern")
            if keyword == "no_case":
                if value is not None:
                    raise SignatureError("no_case", "takes no value")
                if last["kind"] == "pcre":
                    raise SignatureError("no_case", "use the pcre 'i' flag instead")
                last["no_case"] = True
            elif keyword == "context":
                ctx = (value or "").lower()
                if ctx in UNSUPPORTED_CONTEXTS:
                    raise SignatureError("context", f"{ctx!r} not supported here (packet only)")
                if ctx not in CONTEXTS:
                    raise SignatureError("context", f"unknown context {value!r}")
                last["context"] = ctx
            else:
                last[keyword] = _int(keyword, value, 0, 65535)
            continue
        elif keyword in ICCP_KEYWORDS:
            key = keyword[len("iccp_"):]
            if key in iccp:
                raise SignatureError(keyword, "given twice")
            if key == "anomaly":
                if value is not None:
                    raise SignatureError(keyword, "takes no value")
                iccp["anomaly"] = True
            elif key == "pdu_size":
                iccp["pdu_size"] = _iccp_size(value)
            else:
                if not value:
                    raise SignatureError(keyword, "needs a value")
                iccp[key] = value
                last_target = "iccp"
            continue
        else:
            raise SignatureError(keyword, "unknown keyword")
        seen[keyword] = value
    for keyword in REQUIRED:
        if keyword not in seen:
            raise SignatureError(keyword, "required keyword missing")
    if iccp and seen["service"] != "ICCP":
        raise SignatureError(next(k for k in ICCP_KEYWORDS if k[5:] in iccp),
                             "needs --service ICCP")
    for c in contents:
        c.pop("context", None)
        if c.get("depth") is not None and c["depth"] < c["min_width"]:
            raise SignatureError("depth", "shorter than its pattern")
        if c.get("within") is not None and c["within"] < c["min_width"]:
            raise SignatureError("within", "shorter than its pattern")
    if contents and contents[0].get("distance") is not None or contents and contents[0].get(
            "within") is not None:
        raise SignatureError("distance" if contents[0].get("distance") is not None
                             else "within", "the first pattern has no previous pattern")
    return Signature(
        name=seen["name"] or "",
        service=seen["service"] or "",
        flow=seen["flow"] or "",
        text=text,
        attack_id=int(aid) if (aid := seen.get("attack_id")) else None,
        protocol=seen.get("protocol"),
        src_port=parse_ports("src_port", seen["src_port"] or "") if "src_port" in seen else None,
        dst_port=parse_ports("dst_port", seen["dst_port"] or "") if "dst_port" in seen else None,
        contents=tuple(Content(**c) for c in contents),
        iccp=IccpMatch(**iccp) if iccp else None,
    )
