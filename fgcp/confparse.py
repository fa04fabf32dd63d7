"""Tokenizer and parser of FortiOS CLI configuration text (config/edit/set/next/end).

Produces a tree of ``Block``/``Edit``/``Setting`` nodes carrying line numbers;
it knows no keys or sections (``fgcp.config`` holds the schema).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Block",
    "ConfigError",
    "Edit",
    "Setting",
    "Word",
    "decode",
    "parse",
    "split_lines",
    "tokenize_line",
]


class ConfigError(ValueError):
    """One configuration error, located by source file, line and key.

    ``str()`` reads ``fgt1.conf:12: key 'priority': 300 is out of range 0-255``
    (``key`` is None for syntax errors; ``line`` is 0 when no line applies).
    """

    def __init__(self, source: str, line: int, key: str | None, reason: str) -> None:
        self.source = source
        self.line = line
        self.key = key
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        if self.key is not None:
            return f"{where}: key {self.key!r}: {self.reason}"
        return f"{where}: {self.reason}"

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, int, str | None, str]]:
        # keep pickling (multiprocessing, pytest-xdist) working
        return (type(self), (self.source, self.line, self.key, self.reason))


@dataclass(frozen=True)
class Word:
    """One token: its text (quotes removed, escapes resolved) and where it was."""

    text: str
    line: int
    quoted: bool = False


@dataclass
class Setting:
    """``set <key> <values...>`` or ``unset <key>`` (then ``values`` is empty)."""

    key: str
    values: tuple[Word, ...]
    line: int
    unset: bool = False


@dataclass
class Edit:
    """``edit <name>`` ... ``next`` inside a table section."""

    name: Word
    line: int
    settings: list[Setting] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    end_line: int = 0


@dataclass
class Block:
    """``config <path words>`` ... ``end``: settings, edits and nested blocks in order."""

    path: tuple[str, ...]
    line: int
    settings: list[Setting] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    end_line: int = 0

    @property
    def name(self) -> str:
        """The section name as written after ``config``, e.g. ``system ha``."""
        return " ".join(self.path)


_QUOTES = ('"', "'")
_BOM = "\ufeff"
_COMMANDS = ("config", "edit", "set", "unset", "next", "end")


def tokenize_line(text: str, line: int, source: str = "<string>") -> list[Word]:
    """Split one line into words.

    Whitespace separates words; ``"..."`` or ``'...'`` quote a word, inside
    which a backslash escapes the next character (``\\"``, ``\\\\``); a ``#``
    that starts a word begins a comment running to the end of the line.
    """
    words: list[Word] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "#":
            break
        if ch in _QUOTES:
            quote = ch
            i += 1
            buf: list[str] = []
            while True:
                if i >= n:
                    raise ConfigError(
                        source, line, None, f"unterminated quote ({quote})"
                    )
                ch = text[i]
                if ch == "\\":
                    if i + 1 >= n:
                        raise ConfigError(
                            source, line, None, f"unterminated quote ({quote})"
                        )
                    buf.append(text[i + 1])
                    i += 2
                    continue
                if ch == quote:
                    i += 1
                    break
                buf.append(ch)
                i += 1
            if i < n and not text[i].isspace():
                raise ConfigError(
                    source,
                    line,
                    None,
                    f"missing space after closing quote before {text[i]!r}",
                )
            words.append(Word("".join(buf), line, quoted=True))
            continue
        start = i
        while i < n and not text[i].isspace():
            if text[i] in _QUOTES:
                raise ConfigError(
                    source,
                    line,
                    None,
                    f"unexpected quote inside word {text[start : i + 1]!r}",
                )
            i += 1
        words.append(Word(text[start:i], line))
    return words


def decode(data: bytes, source: str = "<string>") -> str:
    """Configuration file bytes -> text: UTF-8, an optional byte-order mark dropped.

    Bytes that are not UTF-8 raise ``ConfigError`` naming the line and column.
    """
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = start + exc.start
        line = data.count(b"\n", 0, at) + 1
        col = at - (data.rfind(b"\n", 0, at) + 1) + 1
        raise ConfigError(source, line, None,
                          f"not UTF-8: byte {data[at]:#04x} at column {col}") from None


def split_lines(text: str) -> list[str]:
    """Lines of a configuration text: only ``\\n`` (or ``\\r\\n``) ends a line.

    Form feed, NEL, U+2028 and the other characters ``str.splitlines`` also
    breaks on stay inside their line (a comment, a quoted string); a leading
    byte-order mark is dropped.
    """
    if text.startswith(_BOM):
        text = text[1:]
    return [ln.removesuffix("\r") for ln in text.split("\n")]


def parse(text: str | bytes, source: str = "<string>") -> list[Block]:
    """Parse a whole configuration text into its top-level ``config`` blocks.

    Raises ``ConfigError`` on syntax errors: unterminated quotes, unknown
    commands, ``set``/``edit``/``next``/``end`` where they cannot be, a
    ``config`` or ``edit`` left open at the end of the text.  Bytes are
    decoded first (``decode``: UTF-8, byte-order mark accepted).
    """
    if isinstance(text, bytes):
        text = decode(text, source)
    top: list[Block] = []
    # Stack of open nodes: Block or Edit, innermost last.
    stack: list[Block | Edit] = []
    for lineno, raw in enumerate(split_lines(text), start=1):
        words = tokenize_line(raw, lineno, source)
        if not words:
            continue
        cmd, args = words[0], words[1:]
        if cmd.quoted or cmd.text not in _COMMANDS:
            raise ConfigError(
                source,
                lineno,
                None,
                f"unknown command {cmd.text!r} (expected one of {', '.join(_COMMANDS)})",
            )
        inner = stack[-1] if stack else None
        if cmd.text == "config":
            if not args:
                raise ConfigError(source, lineno, None, "'config' needs a section name")
            block = Block(tuple(w.text for w in args), lineno)
            if inner is None:
                top.append(block)
            else:
                inner.blocks.append(block)
            stack.append(block)
        elif cmd.text == "edit":
            if not isinstance(inner, Block):
                where = (
                    "outside 'config'"
                    if inner is None
                    else "inside 'edit' (missing 'next'?)"
                )
                raise ConfigError(source, lineno, None, f"'edit' {where}")
            if len(args) != 1:
                raise ConfigError(
                    source,
                    lineno,
                    None,
                    f"'edit' takes exactly one name, got {len(args)}",
                )
            entry = Edit(args[0], lineno)
            inner.edits.append(entry)
            stack.append(entry)
        elif cmd.text in ("set", "unset"):
            if inner is None:
                raise ConfigError(
                    source, lineno, None, f"'{cmd.text}' outside 'config'"
                )
            if not args:
                raise ConfigError(source, lineno, None, f"'{cmd.text}' needs a key")
            key = args[0]
            if key.quoted:
                raise ConfigError(
                    source, lineno, None, f"key {key.text!r} must not be quoted"
                )
            if cmd.text == "set":
                if len(args) < 2:
                    raise ConfigError(source, lineno, key.text, "'set' needs a value")
                inner.settings.append(Setting(key.text, tuple(args[1:]), lineno))
            else:
                if len(args) != 1:
                    raise ConfigError(
                        source, lineno, key.text, "'unset' takes no value"
                    )
                inner.settings.append(Setting(key.text, (), lineno, unset=True))
        elif cmd.text == "next":
            if not isinstance(inner, Edit):
                raise ConfigError(source, lineno, None, "'next' outside 'edit'")
            if args:
                raise ConfigError(source, lineno, None, "'next' takes no argument")
            inner.end_line = lineno
            stack.pop()
        else:  # end
            if inner is None:
                raise ConfigError(source, lineno, None, "'end' outside 'config'")
            if isinstance(inner, Edit):
                raise ConfigError(
                    source,
                    lineno,
                    None,
                    f"'end' inside 'edit {inner.name.text}' (line {inner.line}): missing 'next'",
                )
            if args:
                raise ConfigError(source, lineno, None, "'end' takes no argument")
            inner.end_line = lineno
            stack.pop()
    if stack:
        open_node = stack[-1]
        if isinstance(open_node, Edit):
            what = f"'edit {open_node.name.text}' is not closed by 'next'"
        else:
            what = f"'config {open_node.name}' is not closed by 'end'"
        raise ConfigError(source, open_node.line, None, f"{what} (end of file reached)")
    return top
