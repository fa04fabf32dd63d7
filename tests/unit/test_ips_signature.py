"""F-SBID signature parser: the supported subset parses, every error names its keyword."""

import pytest

from inspection.ips import SignatureError, parse_signature
from inspection.ips.signature import MAX_SIGNATURE_LEN

BASE = '--name "x"; --service HTTP; --flow from_client;'


def parse(body: str, base: str = BASE):
    return parse_signature(f"F-SBID( {base} {body} )")


def test_full_signature_parses():
    s = parse_signature(
        'F-SBID( --name "Write_Breaker"; --attack_id 4242; --protocol tcp; --service ICCP; '
        '--flow from_client; --dst_port 102; --src_port 1024:; '
        '--pattern "|03 00|"; --context packet; --pattern "Brk\\"1\\;"; --no_case; '
        '--distance 2; --within 40; --pcre "/oper[a-z]+/i"; --iccp_service write; '
        '--iccp_item "XCBR1"; --no_case; )')
    assert (s.name, s.attack_id, s.protocol, s.service, s.flow) == (
        "Write_Breaker", 4242, "tcp", "ICCP", "from_client")
    assert 102 in s.dst_port and 101 not in s.dst_port
    assert 1024 in s.src_port and 65535 in s.src_port and 1023 not in s.src_port
    first, second, third = s.contents
    assert first.data == b"\x03\x00" and not first.no_case and not first.relative
    assert second.data == b'Brk"1;' and second.no_case
    assert (second.distance, second.within) == (2, 40)
    assert third.kind == "pcre" and third.data == b"oper[a-z]+" and third.regex_flags == "i"
    assert s.iccp.service == "write" and s.iccp.item == "XCBR1" and s.iccp.no_case


def test_keywords_are_case_insensitive_and_flow_reversed_accepted():
    s = parse_signature('F-SBID( --NAME x; --Service http; --FLOW from_server,reversed; )')
    assert (s.name, s.service, s.flow) == ("x", "HTTP", "from_server")


def test_port_forms():
    s = parse("--dst_port 80,443,8000:8080; --src_port !:1023;")
    assert all(p in s.dst_port for p in (80, 443, 8000, 8080))
    assert 81 not in s.dst_port and 8081 not in s.dst_port
    assert 1024 in s.src_port and 1023 not in s.src_port


def test_hex_runs_and_escapes():
    s = parse('--pattern "a|41 42|b\\|c\\\\";')
    assert s.contents[0].data == b"aABb|c\\"


@pytest.mark.parametrize("body, base, keyword", [
    ("--bogus 1;", BASE, "bogus"),
    ("", '--service HTTP; --flow from_client;', "name"),
    ("", '--name x; --flow from_client;', "service"),
    ("", '--name x; --service HTTP;', "flow"),
    ("", '--name x; --service SMTP; --flow from_client;', "service"),
    ("", '--name x; --service HTTP; --flow upstream;', "flow"),
    ("", f'--name {"n" * 64}; --service HTTP; --flow from_client;', "name"),
    ("--name y;", BASE, "name"),
    ("--attack_id 12;", BASE, "attack_id"),
    ("--attack_id abc;", BASE, "attack_id"),
    ("--protocol sctp;", BASE, "protocol"),
    ("--dst_port 70000;", BASE, "dst_port"),
    ("--src_port 9:1;", BASE, "src_port"),
    ("--dst_port http;", BASE, "dst_port"),
    ("--pattern;", BASE, "pattern"),
    ('--pattern "|4|";', BASE, "pattern"),
    ('--pattern "|zz|";', BASE, "pattern"),
    ('--pattern "|41";', BASE, "pattern"),
    ('--pattern "!abc";', BASE, "pattern"),
    ('--pattern "||";', BASE, "pattern"),
    ("--no_case;", BASE, "no_case"),
    ('--pattern a; --no_case; --no_case;', BASE, "no_case"),
    ('--pattern a; --context uri;', BASE, "context"),
    ('--pattern a; --context body;', BASE, "context"),
    ('--pattern a; --context nowhere;', BASE, "context"),
    ("--distance 3;", BASE, "distance"),
    ('--pattern a; --distance x;', BASE, "distance"),
    ('--pattern a; --within 3;', BASE, "within"),
    ('--pattern a; --pattern bcd; --within 2;', BASE, "within"),
    ('--pattern abc; --depth 2;', BASE, "depth"),
    ('--pcre "abc";', BASE, "pcre"),
    ('--pcre "/a(/";', BASE, "pcre"),
    ('--pcre "/a/q";', BASE, "pcre"),
    ('--pcre "/a/"; --no_case;', BASE, "no_case"),
    ('--iccp_service write;', BASE, "iccp_service"),
    ('--iccp_pdu_size >=9;', '--name x; --service ICCP; --flow from_client;', "iccp_pdu_size"),
    ('--iccp_anomaly 1;', '--name x; --service ICCP; --flow from_client;', "iccp_anomaly"),
    ('--iccp_item;', '--name x; --service ICCP; --flow from_client;', "iccp_item"),
    ('--pattern "abc;', BASE, "pattern"),
])
def test_errors_name_the_keyword(body, base, keyword):
    with pytest.raises(SignatureError) as err:
        parse(body, base)
    assert err.value.keyword == keyword
    assert str(err.value).startswith(f"--{keyword}: ")


def test_header_and_length_errors():
    with pytest.raises(SignatureError, match="F-SBID"):
        parse_signature('--name x; --service HTTP; --flow from_client;')
    long = f'F-SBID( {BASE} --pattern "{"a" * MAX_SIGNATURE_LEN}"; )'
    with pytest.raises(SignatureError, match="4095"):
        parse_signature(long)
    ok = f'F-SBID( {BASE} --pattern "a"; )'
    padded = ok.replace('"a"', '"' + "a" * (MAX_SIGNATURE_LEN - len(ok) + 1) + '"')
    assert len(padded) == MAX_SIGNATURE_LEN
    assert len(parse_signature(padded).contents[0].data) > 4000


def test_unbounded_pcre_width_is_capped():
    s = parse('--pcre "/ab.*cd/s";')
    assert s.contents[0].min_width == 4 and s.contents[0].max_width == 256
