"""Tokenizer and parser of FortiOS CLI text: tree shape, line numbers, syntax errors."""

from __future__ import annotations

import pickle

import pytest

from fgcp.confparse import ConfigError, Word, parse, tokenize_line

TEXT = """\
#config-version=lab
config system ha
    set group-name "my \\"lab\\""   # trailing comment
    set hbdev "port3" 50 "port4" 50

    unset monitor
end
config firewall policy
    edit 7
        set comments 'say "hi"'
        set name "a b"
    next
    edit 8
        config nested thing
            set x 1
        end
    next
end
"""


def test_tokenize_quotes_escapes_and_comments() -> None:
    words = tokenize_line('  set comments "say \\"hi\\" \\\\ # not a comment" x # c', 4)
    assert [w.text for w in words] == [
        "set",
        "comments",
        'say "hi" \\ # not a comment',
        "x",
    ]
    assert [w.quoted for w in words] == [False, False, True, False]
    assert all(w.line == 4 for w in words)


def test_tokenize_empty_quoted_value_and_single_quotes() -> None:
    words = tokenize_line("set alias \"\" 'a b'", 1)
    assert words[2] == Word("", 1, quoted=True)
    assert words[3] == Word("a b", 1, quoted=True)


def test_tree_has_sections_edits_settings_with_line_numbers() -> None:
    blocks = parse(TEXT, "t.conf")
    assert [b.name for b in blocks] == ["system ha", "firewall policy"]
    ha, pol = blocks
    assert (ha.line, ha.end_line) == (2, 7)
    assert [(s.key, s.line, s.unset) for s in ha.settings] == [
        ("group-name", 3, False),
        ("hbdev", 4, False),
        ("monitor", 6, True),
    ]
    assert ha.settings[0].values == (Word('my "lab"', 3, quoted=True),)
    assert [w.text for w in ha.settings[1].values] == ["port3", "50", "port4", "50"]
    assert ha.settings[2].values == ()
    assert [(e.name.text, e.line, e.end_line) for e in pol.edits] == [
        ("7", 9, 12),
        ("8", 13, 17),
    ]
    assert pol.edits[0].settings[0].values[0].text == 'say "hi"'
    assert pol.edits[0].settings[1].values[0].text == "a b"
    nested = pol.edits[1].blocks[0]
    assert nested.path == ("nested", "thing")
    assert (nested.line, nested.settings[0].line) == (14, 15)


def test_crlf_and_blank_input() -> None:
    assert parse("") == []
    assert parse("\n  \n# only a comment\n") == []
    blocks = parse("config system global\r\n  set hostname X\r\nend\r\n")
    assert blocks[0].settings[0].values[0].text == "X"


SYNTAX_ERRORS = [
    ("unterminated-quote", 'config system global\nset hostname "FGT1\nend\n', 2, "unterminated quote"),
    ("unterminated-after-escape", 'config a\nset x "ab\\"\nend\n', 2, "unterminated quote"),
    ("quote-inside-word", 'config a\nset x ab"c"\nend\n', 2, "unexpected quote"),
    ("no-space-after-quote", 'config a\nset x "ab"c\nend\n', 2, "missing space after closing quote"),
    ("missing-end", "config system ha\nset priority 1\n", 1, "'config system ha' is not closed by 'end'"),
    ("missing-end-nested", "config a\nedit 1\nnext\nconfig b\nend\n", 1, "'config a' is not closed"),
    ("missing-next-at-eof", "config a\nedit 1\nset x 1\n", 2, "'edit 1' is not closed by 'next'"),
    ("next-outside-edit", "config system ha\nnext\nend\n", 2, "'next' outside 'edit'"),
    ("next-at-top", "next\n", 1, "'next' outside 'edit'"),
    ("set-outside-config", "set hostname X\n", 1, "'set' outside 'config'"),
    ("unset-outside-config", "\nunset hostname\n", 2, "'unset' outside 'config'"),
    ("end-outside-config", "config a\nend\nend\n", 3, "'end' outside 'config'"),
    ("edit-outside-config", "edit 1\n", 1, "'edit' outside 'config'"),
    ("edit-inside-edit", "config a\nedit 1\nedit 2\nnext\nend\n", 3, "missing 'next'"),
    ("end-inside-edit", "config a\nedit 1\nend\n", 3, "'end' inside 'edit 1' (line 2)"),
    ("edit-two-names", "config a\nedit 1 2\nnext\nend\n", 2, "exactly one name"),
    ("config-no-name", "config\nend\n", 1, "'config' needs a section name"),
    ("set-no-key", "config a\nset\nend\n", 2, "'set' needs a key"),
    ("set-no-value", "config a\nset x\nend\n", 2, "'set' needs a value"),
    ("unset-with-value", "config a\nunset x 1\nend\n", 2, "'unset' takes no value"),
    ("quoted-key", 'config a\nset "x" 1\nend\n', 2, "must not be quoted"),
    ("next-with-arg", "config a\nedit 1\nnext 2\nend\n", 3, "'next' takes no argument"),
    ("end-with-arg", "config a\nend now\n", 2, "'end' takes no argument"),
    ("unknown-command", "config a\nappend x 1\nend\n", 2, "unknown command 'append'"),
    ("quoted-command", '"config" a\n', 1, "unknown command 'config'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [case[1:] for case in SYNTAX_ERRORS],
    ids=[case[0] for case in SYNTAX_ERRORS],
)
def test_syntax_error(text: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, "x.conf")
    err = info.value
    assert (err.source, err.line) == ("x.conf", line)
    assert reason in err.reason
    assert str(err).startswith(f"x.conf:{line}: ")


def test_config_error_str_and_pickle() -> None:
    err = ConfigError("fgt1.conf", 12, "priority", "300 is out of range 0-255")
    assert str(err) == "fgt1.conf:12: key 'priority': 300 is out of range 0-255"
    assert str(ConfigError("f.conf", 3, None, "boom")) == "f.conf:3: boom"
    assert (
        str(ConfigError("f.conf", 0, None, "cannot read file"))
        == "f.conf: cannot read file"
    )
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.source, copy.line, copy.key, copy.reason) == (
        err.source,
        err.line,
        err.key,
        err.reason,
    )
    assert isinstance(err, ValueError)


# -- issue 13 item 8: line breaks, byte-order mark, encoding -----------------------------------

@pytest.mark.parametrize("char", ["\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_splitlines_breaks_do_not_end_a_line_in_comments_or_quotes(char: str) -> None:
    text = (f"config system ha  # page{char}break y\n"
            f"    set group-name \"a{char}b\"\n"
            "end\n")
    (ha,) = parse(text, "x.conf")
    (s,) = ha.settings
    assert s.key == "group-name" and s.values[0].text == f"a{char}b" and s.line == 2
    assert ha.end_line == 3


def test_crlf_lines_and_line_numbers() -> None:
    blocks = parse(TEXT.replace("\n", "\r\n"), "t.conf")
    ha = blocks[0]
    assert (ha.line, ha.end_line) == (2, 7)
    assert ha.settings[0].values[0].text == 'my "lab"'


def test_byte_order_mark_accepted_as_text_and_bytes() -> None:
    for text in ("\ufeff" + TEXT, ("\ufeff" + TEXT).encode()):
        blocks = parse(text, "t.conf")
        assert [b.name for b in blocks] == ["system ha", "firewall policy"]
        assert blocks[0].line == 2


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_non_utf8_file_error_names_file_and_line(bom: bytes) -> None:
    data = bom + b'config system ha\n    set group-name "caf\xe9"\nend\n'
    with pytest.raises(ConfigError) as e:
        parse(data, "x.conf")
    assert e.value.line == 2
    assert str(e.value) == "x.conf:2: not UTF-8: byte 0xe9 at column 24"


def test_load_config_accepts_bom_and_crlf(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fgcp.config import load_config

    path = tmp_path / "fgt.conf"
    path.write_bytes(b"\xef\xbb\xbfconfig system global  # a\x0cset x\xe2\x80\xa8y\r\n"
                     b"    set hostname \"fgt1\"\r\nend\r\n")
    assert load_config(path).hostname == "fgt1"
