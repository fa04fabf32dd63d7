"""Value types of the configuration schema: each turns the words of one ``set`` into a value.

``Int``, ``Choice``, ``Flag``, ``Text``, ... parse and check (raising ``Invalid`` with the
reason); fgcp/config/schema.py declares which key has which type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address, IPv4Interface, IPv4Network

from fgcp.confparse import Word

__all__ = [
    "Choice",
    "Choices",
    "Flag",
    "HbdevPairs",
    "IPAddress",
    "Int",
    "InterfaceIP",
    "Invalid",
    "Names",
    "Password",
    "PortRanges",
    "Subnet",
    "Text",
    "ValueType",
    "integer",
    "ip_and_prefix",
    "ipv4",
    "one",
    "prefixlen",
]


class Invalid(Exception):
    """A value failed validation; the reader turns it into a ConfigError (source, line, key)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def one(words: Sequence[Word]) -> str:
    if len(words) != 1:
        raise Invalid(f"expects one value, got {len(words)}")
    return words[0].text


MAX_DIGITS = 20  # beyond any range of the schema (u64 has 20 digits); int() has a limit


def integer(text: str, lo: int, hi: int) -> int:
    if not re.fullmatch(r"-?[0-9]+", text):
        raise Invalid(f"{text[:24]!r} is not an integer")
    digits = len(text.lstrip("-").lstrip("0"))
    if digits > MAX_DIGITS:
        raise Invalid(f"an integer of {digits} digits is out of range {lo}-{hi}")
    value = int(text)
    if not lo <= value <= hi:
        raise Invalid(f"{value} is out of range {lo}-{hi}")
    return value


def ipv4(text: str) -> IPv4Address:
    try:
        return IPv4Address(text)
    except AddressValueError:
        raise Invalid(f"{text!r} is not a valid IPv4 address") from None


def prefixlen(mask: str) -> int:
    """Prefix length of a dotted netmask (``255.255.255.0``) or of ``/24``'s ``24``."""
    if re.fullmatch(r"[0-9]{1,2}", mask):
        length = int(mask)
        if length > 32:
            raise Invalid(f"/{mask} is not a valid prefix length (0-32)")
        return length
    try:
        bits = int(IPv4Address(mask))
    except AddressValueError:
        raise Invalid(f"{mask!r} is not a valid netmask") from None
    inverse = ~bits & 0xFFFFFFFF
    if inverse & (inverse + 1):
        raise Invalid(f"{mask!r} is not a valid netmask")
    return 32 - inverse.bit_length()


def ip_and_prefix(words: Sequence[Word]) -> tuple[IPv4Address, int]:
    """``a.b.c.d m.m.m.m`` (two words) or ``a.b.c.d/len`` (one word)."""
    if len(words) == 2:
        return ipv4(words[0].text), prefixlen(words[1].text)
    if len(words) == 1 and "/" in words[0].text:
        addr, _, length = words[0].text.partition("/")
        return ipv4(addr), prefixlen(length)
    if len(words) == 1:
        ipv4(words[0].text)  # a bad address is the clearer error
        raise Invalid(
            f"{words[0].text!r} needs a netmask (a.b.c.d m.m.m.m or a.b.c.d/len)"
        )
    raise Invalid(f"expects an address and a netmask, got {len(words)} values")


class ValueType:
    """Base of the schema's value types."""

    def parse(self, words: Sequence[Word]) -> object:
        raise NotImplementedError

    def names(self, value: object) -> Iterable[str]:
        """Object names this value refers to (for cross-reference checks)."""
        if isinstance(value, str):
            return (value,) if value else ()
        if isinstance(value, tuple):
            return tuple(v for v in value if isinstance(v, str))
        return ()


@dataclass(frozen=True)
class Int(ValueType):
    lo: int
    hi: int

    def parse(self, words: Sequence[Word]) -> int:
        return integer(one(words), self.lo, self.hi)


@dataclass(frozen=True)
class Choice(ValueType):
    options: tuple[str, ...]

    def parse(self, words: Sequence[Word]) -> str:
        text = one(words)
        if text not in self.options:
            raise Invalid(f"{text!r} is not one of {', '.join(self.options)}")
        return text


@dataclass(frozen=True)
class Flag(ValueType):
    """``enable`` / ``disable`` -> bool."""

    def parse(self, words: Sequence[Word]) -> bool:
        return Choice(("enable", "disable")).parse(words) == "enable"


@dataclass(frozen=True)
class Text(ValueType):
    maxlen: int
    pattern: str = ""  # regex every value must fully match (empty: any)
    pattern_help: str = ""

    def check(self, text: str) -> str:
        if len(text) > self.maxlen:
            raise Invalid(f"{text!r} is longer than {self.maxlen} characters")
        if self.pattern and not re.fullmatch(self.pattern, text):
            raise Invalid(f"{text!r} is not a valid name ({self.pattern_help})")
        return text

    def parse(self, words: Sequence[Word]) -> str:
        return self.check(one(words))


@dataclass(frozen=True)
class Password(Text):
    def parse(self, words: Sequence[Word]) -> str:
        if words and words[0].text == "ENC" and not words[0].quoted:
            raise Invalid(
                "encrypted passwords (ENC ...) are not supported: write it in clear"
            )
        return self.check(one(words))


@dataclass(frozen=True)
class Names(ValueType):
    """One or more names, each at most ``maxlen`` long, none repeated."""

    maxlen: int = 79

    def parse(self, words: Sequence[Word]) -> tuple[str, ...]:
        seen: list[str] = []
        for w in words:
            Text(self.maxlen).check(w.text)
            if not w.text:
                raise Invalid("empty name")
            if w.text in seen:
                raise Invalid(f"{w.text!r} is listed twice")
            seen.append(w.text)
        return tuple(seen)


@dataclass(frozen=True)
class Choices(ValueType):
    """One or more keywords out of ``options``."""

    options: tuple[str, ...]

    def parse(self, words: Sequence[Word]) -> tuple[str, ...]:
        out: list[str] = []
        for w in words:
            if w.text not in self.options:
                raise Invalid(f"{w.text!r} is not one of {', '.join(self.options)}")
            if w.text not in out:
                out.append(w.text)
        return tuple(out)


@dataclass(frozen=True)
class IPAddress(ValueType):
    """One IPv4 address; ``0.0.0.0`` means unset (None)."""

    def parse(self, words: Sequence[Word]) -> IPv4Address | None:
        addr = ipv4(one(words))
        return None if int(addr) == 0 else addr


@dataclass(frozen=True)
class InterfaceIP(ValueType):
    """Interface address with its netmask; ``0.0.0.0 0.0.0.0`` means none."""

    def parse(self, words: Sequence[Word]) -> IPv4Interface | None:
        addr, length = ip_and_prefix(words)
        if int(addr) == 0 and length == 0:
            return None
        iface = IPv4Interface((addr, length))
        if length <= 30 and addr == iface.network.network_address:
            raise Invalid(f"{iface} is the network address of its subnet")
        if length <= 30 and addr == iface.network.broadcast_address:
            raise Invalid(f"{iface} is the broadcast address of its subnet")
        return iface


@dataclass(frozen=True)
class Subnet(ValueType):
    """A network (``a.b.c.d m.m.m.m`` or ``a.b.c.d/len``) without host bits."""

    def parse(self, words: Sequence[Word]) -> IPv4Network:
        addr, length = ip_and_prefix(words)
        net = IPv4Network((addr, length), strict=False)
        if net.network_address != addr:
            raise Invalid(f"{addr}/{length} has host bits set (did you mean {net}?)")
        return net


@dataclass(frozen=True)
class HbdevPairs(ValueType):
    """``"port3" 50 "port4" 50``: heartbeat interfaces with their priorities."""

    def parse(self, words: Sequence[Word]) -> tuple[tuple[str, int], ...]:
        if len(words) % 2:
            raise Invalid(f"expects interface/priority pairs, got {len(words)} values")
        pairs: list[tuple[str, int]] = []
        for name_w, prio_w in zip(words[0::2], words[1::2]):
            name = Text(15).check(name_w.text)
            if any(name == n for n, _ in pairs):
                raise Invalid(f"{name!r} is listed twice")
            try:
                prio = integer(prio_w.text, 0, 512)
            except Invalid as exc:
                raise Invalid(f"priority of {name!r}: {exc.reason}") from None
            pairs.append((name, prio))
        return tuple(pairs)

    def names(self, value: object) -> Iterable[str]:
        assert isinstance(value, tuple)
        return tuple(name for name, _ in value)


@dataclass(frozen=True)
class PortRanges(ValueType):
    """``80``, ``1000-2000`` (destination ports), several allowed."""

    def parse(self, words: Sequence[Word]) -> tuple[tuple[int, int], ...]:
        out: list[tuple[int, int]] = []
        for w in words:
            text = w.text
            if ":" in text:
                raise Invalid(f"{text!r}: source port ranges (':') are not supported")
            lo_s, dash, hi_s = text.partition("-")
            lo = integer(lo_s, 1, 65535)
            hi = integer(hi_s, 1, 65535) if dash else lo
            if lo > hi:
                raise Invalid(f"{text!r}: low port is above high port")
            out.append((lo, hi))
        return tuple(out)
