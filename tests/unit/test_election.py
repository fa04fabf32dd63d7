"""FGCP primary election, table-driven with cases taken from the FortiOS documentation.

Sources (selection order and examples):
- Override disabled: "connected monitored interfaces, age, device priority, serial
  number"; "with default settings ... the FortiGate with the highest serial number
  becomes the primary" -- FortiGate-6000 handbook, "Primary FortiGate-6000 selection
  with override disabled (default)",
  https://docs.fortinet.com/document/fortigate-6000/6.2.3/fortigate-6000-handbook/539981
- Override enabled: "connected monitored interfaces, device priority, age, serial
  number" -- https://docs.fortinet.com/document/fortigate-6000/6.2.3/fortigate-6000-handbook/427268
- Age and ha-uptime-diff-margin (5 minutes): A (priority 200) and B (100), override
  disabled; A rebooted 1 min after boot rejoins as primary (uptime difference < 5 min,
  priority decides); rebooted at 15 min it rejoins as secondary (uptime decides) --
  Fortinet community KB 197460, "Restoring HA Primary role after a failover using
  'diagnose sys ha reset-uptime'",
  https://community.fortinet.com/t5/FortiGate/Technical-Tip-Restoring-HA-Primary-role-after-a-failover-using/ta-p/197460
- "execute ha failover set 1" makes the primary give up its role --
  https://docs.fortinet.com/document/fortigate/6.4.5/administration-guide/684039
"""

from __future__ import annotations

import itertools

import pytest

from fgcp.election import Candidate, decide, elect, rank

A = "FGVM01TM00000001"
B = "FGVM01TM00000002"
C = "FGVM01TM00000003"
D = "FGVM01TM00000004"
MARGIN = 300


def c(
    serial: str,
    prio: int = 128,
    failed: int = 0,
    up: float = 1000.0,
    fo: bool = False,
    sync: bool = True,
):
    return Candidate(serial, prio, failed, up, fo, sync)


CASES = [
    # (id, candidates, override, expected primary, expected reason)
    ("defaults: highest serial", [c(A), c(B)], False, B, "serial"),
    ("defaults, override on: highest serial", [c(A), c(B)], True, B, "serial"),
    ("priority decides when uptimes are close", [c(A, 200), c(B, 100)], False, A, "priority"),
    (
        "KB 197460 t=1min reboot: uptime diff < 5 min, priority wins",
        [c(A, 200, up=120), c(B, 100, up=180)],
        False,
        A,
        "priority",
    ),
    (
        "KB 197460 t=15min reboot: uptime diff > 5 min, older wins",
        [c(A, 200, up=5), c(B, 100, up=900)],
        False,
        B,
        "uptime",
    ),
    (
        "uptime diff exactly the margin is not 'more than'",
        [c(A, 200, up=0), c(B, 100, up=300)],
        False,
        A,
        "priority",
    ),
    (
        "override enabled: priority before uptime",
        [c(A, 200, up=5), c(B, 100, up=90000)],
        True,
        A,
        "priority",
    ),
    (
        "override enabled, equal priority: uptime beyond margin",
        [c(A, 150, up=5000), c(B, 150, up=10)],
        True,
        A,
        "uptime",
    ),
    (
        "override enabled, equal priority, close uptimes: serial",
        [c(A, 150, up=50), c(B, 150, up=10)],
        True,
        B,
        "serial",
    ),
    (
        "failed monitored port loses (override off)",
        [c(A, 100, up=5000), c(B, 200, failed=1, up=9000)],
        False,
        A,
        "monitor",
    ),
    (
        "failed monitored port loses (override on)",
        [c(A, 100), c(B, 250, failed=1)],
        True,
        A,
        "monitor",
    ),
    ("fewer failed monitored ports wins", [c(A, failed=2), c(B, failed=1)], False, B, "monitor"),
    (
        "execute ha failover set 1 gives up primary",
        [c(A, 250, fo=True), c(B, 10)],
        True,
        B,
        "failover-flag",
    ),
    (
        "failover flag beats monitored ports",
        [c(A, failed=0, fo=True), c(B, failed=2)],
        False,
        B,
        "failover-flag",
    ),
    ("bulk sync pending does not take over", [c(A, 250, sync=False), c(B, 100)], True, B, "sync"),
    (
        "a failed port matters more than sync pending",
        [c(A, sync=False), c(B, failed=1)],
        False,
        A,
        "monitor",
    ),
    ("single member", [c(A, fo=True, failed=3)], False, A, "only-member"),
]


@pytest.mark.parametrize(
    ("cands", "override", "primary", "reason"), [x[1:] for x in CASES], ids=[x[0] for x in CASES]
)
def test_election_table(cands: list[Candidate], override: bool, primary: str, reason: str) -> None:
    d = decide(cands, override, MARGIN)
    assert d.primary == primary
    assert d.reason == reason
    assert elect(cands, override, MARGIN, now=0.0) == primary
    # the result never depends on the order the candidates are listed in
    for perm in itertools.permutations(cands):
        assert elect(list(perm), override, MARGIN) == primary


def test_four_members_full_order() -> None:
    cands = [c(A, 100), c(B, 200), c(C, 200, failed=1), c(D, 150)]
    assert [x.serial for x in rank(cands, False, MARGIN)] == [B, D, A, C]
    assert decide(cands, False, MARGIN).order == (B, D, A, C)


def test_non_transitive_uptimes_are_deterministic() -> None:
    # a ~ b and b ~ c within the margin, but a >> c: any input order gives one answer
    cands = [c(A, 100, up=0), c(B, 200, up=200), c(C, 150, up=400)]
    results = {elect(list(p), False, MARGIN) for p in itertools.permutations(cands)}
    assert len(results) == 1


def test_explain_uses_fortios_wording() -> None:
    assert decide([c(A, 200), c(B, 100)], True, MARGIN).explain() == (
        f"{A} is selected as the primary because it has the largest value of override priority."
    )
    assert decide([c(A)], False, MARGIN).explain() == (
        f"{A} is selected as the primary because it's the only member in the cluster."
    )
    assert (
        "uptime is larger than peer member " + A
        in decide([c(A, up=0), c(B, up=999)], False, MARGIN).explain()
    )


def test_errors() -> None:
    with pytest.raises(ValueError):
        decide([], False, MARGIN)
    with pytest.raises(ValueError):
        decide([c(A), c(A)], False, MARGIN)
