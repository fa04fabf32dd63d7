"""Predefined IPS sensors: a small signature set that stands in for FortiGuard's.

FortiOS ships sensors (``default``, ``all_default``, ``protect_client``, ...) that select
signatures of its FortiGuard database by severity, target and action.  The emulator has
no FortiGuard database: ``SIGNATURES`` is a handful of F-SBID signatures (attack ids
9901-9999 are reserved for them) covering the services the engine decodes (HTTP, ICCP),
and ``SENSORS`` selects among them the way the FortiOS sensor of that name selects
(docs/ips.md "Predefined sensors").  ``sensor_rules(name)`` gives a predefined sensor's
rules, or None when ``name`` is not one; a configured sensor of the same name replaces it
(the caller's choice, fgcp/ipsinspector.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from inspection.ips.ruleset import Rule
from inspection.ips.signature import Signature, parse_signature

__all__ = ["SENSORS", "SIGNATURES", "Predefined", "sensor_rules"]


@dataclass(frozen=True, slots=True)
class Predefined:
    """One predefined signature: F-SBID text, its default action and severity."""

    text: str
    action: str  # the signature's default action: pass | block
    severity: str  # info | low | medium | high | critical


def _sig(name: str, attack_id: int, body: str) -> str:
    return f'F-SBID( --name "{name}"; --attack_id {attack_id}; {body} )'


SIGNATURES: tuple[Predefined, ...] = (
    Predefined(_sig("HTTP.URI.Directory.Traversal", 9901,
                    '--protocol tcp; --service HTTP; --flow from_client; --pattern "../../";'),
               "block", "high"),
    Predefined(_sig("HTTP.Windows.Cmd.Exe.Access", 9902,
                    '--protocol tcp; --service HTTP; --flow from_client; '
                    '--pattern "cmd.exe"; --no_case;'), "block", "critical"),
    Predefined(_sig("HTTP.SQL.Injection.Union.Select", 9903,
                    '--protocol tcp; --service HTTP; --flow from_client; '
                    '--pcre "/union\\s+(all\\s+)?select/i";'), "block", "high"),
    Predefined(_sig("HTTP.Bash.Function.Definition", 9904,
                    '--protocol tcp; --service HTTP; --flow from_client; --pattern "() {";'),
               "block", "critical"),
    Predefined(_sig("HTTP.Client.EICAR.Test.File", 9905,
                    '--protocol tcp; --service HTTP; --flow from_server; '
                    '--pattern "EICAR-STANDARD-ANTIVIRUS-TEST-FILE";'), "block", "medium"),
    Predefined(_sig("ICCP.MMS.Malformed.PDU", 9906,
                    "--service ICCP; --flow bi_direction; --iccp_anomaly;"), "block", "high"),
    Predefined(_sig("ICCP.TASE2.Oversized.PDU", 9907,
                    "--service ICCP; --flow bi_direction; --iccp_pdu_size >8192;"),
               "block", "medium"),
    Predefined(_sig("ICCP.MMS.Control.Point.Write", 9908,
                    '--protocol tcp; --service ICCP; --flow from_client; --iccp_service write; '
                    '--iccp_item "$CO$";'), "pass", "medium"),
    Predefined(_sig("HTTP.Scanner.Nikto.User.Agent", 9909,
                    '--protocol tcp; --service HTTP; --flow from_client; --pattern "Nikto";'),
               "pass", "low"),
)

_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
Select = Callable[[Predefined, Signature], bool]


def _medium_up(p: Predefined, s: Signature) -> bool:
    return _RANK[p.severity] >= _RANK["medium"]


# name -> (meaning, which signatures, entry action: None = the signature's default action)
SENSORS: dict[str, tuple[str, Select, str | None]] = {
    "default": ("critical, high and medium severity signatures, their default action",
                _medium_up, None),
    "all_default": ("every signature, its default action", lambda p, s: True, None),
    "all_default_pass": ("every signature, action pass (logged only)",
                         lambda p, s: True, "pass"),
    "high_security": ("every signature, action block", lambda p, s: True, "block"),
    "protect_client": ("signatures against clients (traffic from servers), default action",
                       lambda p, s: s.flow in ("from_server", "bi_direction"), None),
    "protect_http_server": ("HTTP signatures against servers (from clients), default action",
                            lambda p, s: s.service == "HTTP" and s.flow == "from_client", None),
    "protect_email_server": ("mail signatures: none (no mail decoder); stream anomalies only",
                             lambda p, s: False, None),
    "wifi-default": ("as default", _medium_up, None),
}


def sensor_rules(name: str) -> list[Rule] | None:
    """The rules of predefined sensor ``name`` (entry id 1), None if it is not one."""
    spec = SENSORS.get(name)
    if spec is None:
        return None
    _meaning, select, action = spec
    rules = []
    for p in SIGNATURES:
        sig = parse_signature(p.text)
        if select(p, sig):
            rules.append(Rule(signature=sig, action=action or p.action, severity=p.severity,
                              entry_id=1))
    return rules
