"""Failover experiment scenarios: the YAML schema (defaults and types in one place),
the loader that rejects unknown keys, and the typed `Scenario` the runner executes.

A scenario names the topology size, each member's FortiOS configuration (a file
or inline text, plus ``ha:`` settings applied to every member), the traffic mix
and the faults with their times. Errors name the file and the key:
``scenario.yaml: faults[1].kind: unknown fault 'explode' (expected one of ...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
CONFIG_DIR = REPO_ROOT / "topologies" / "configs"

# -- fault kinds --------------------------------------------------------------
FAULT_KINDS: dict[str, str] = {
    "kill-primary": "SIGKILL of the primary's fgcpd (the member stops forwarding)",
    "power-off": "the member's daemon killed and every link down (power cut)",
    "monitor-link-down": "a monitored link of the member down (default port1)",
    "hb-link-cut": "one heartbeat link of the member down (default port3)",
    "split-brain": "every heartbeat link of the member down, restored after `duration`",
    "sync-link-down": "the session-sync link of the member down (default port5)",
    "old-primary-back": "the member taken down by the last kill/power-off comes back",
    "failover-set": "`execute ha failover set 1` on the member (unset after `duration`)",
}
RESTORABLE = {"monitor-link-down", "hb-link-cut", "split-brain", "sync-link-down",
              "failover-set", "power-off"}
DEFAULT_PORT = {"monitor-link-down": "port1", "hb-link-cut": "port3",
                "sync-link-down": "port5"}
DEFAULT_DURATION = {"split-brain": 3.0}
TARGETS = ("primary", "secondary")

# -- defaults (the only place they live) ----------------------------------------
DEFAULTS: dict[str, Any] = {
    "name": None,  # file stem
    "description": "",
    "topology": {"clients": 1, "servers": 1, "members": 2},
    "ha": {"hb-interval": 1, "hb-lost-threshold": 3, "hello-holddown": 5,
           "ha-uptime-diff-margin": 5, "arps-interval": 1},
    "traffic": {
        "tcp": {"conns": 20, "rate": 50.0, "client": "c1", "server": "sv1", "port": 5001},
        "udp": {"flows": 1, "interval": 0.01, "client": "c1", "server": "sv1", "port": 5002},
        "ping": {"interval": 0.01, "client": "c1", "server": "sv1"},
        "short_tcp": {"rate": 10.0, "timeout": 1.0, "client": "c1", "server": "sv1",
                      "port": 5003},
        # real ICCP peers (lab.probes.iccp): one benign association and, with `attack`,
        # a breaker write split across the first fault (`split`: item or a byte count)
        "iccp": {"rate": 5.0, "attack": True, "split": "item", "client": "c1",
                 "server": "sv1", "port": 102},
    },
    "warmup": 2.0,
    "settle": 3.0,
    "reference": {"advert_int": None, "conntrack_sync": True},
    "soak": {"failovers": 6, "interval": 8.0},
    "expect": {"tcp_survived": None, "split_brain": None, "max_tcp_gap_ms": None,
               "member_errors": None, "iccp_association": None, "iccp_attack": None,
               "iccp_inspected_after_failover": None},
}
FAULT_DEFAULTS: dict[str, Any] = {"at": None, "member": "primary", "port": None,
                                  "duration": None}
TRAFFIC_LIMITS = {"tcp": {"conns": (1, 2000), "rate": (0.1, 10000.0), "port": (1, 65535)},
                  "udp": {"flows": (1, 200), "interval": (0.0005, 10.0), "port": (1, 65535)},
                  "ping": {"interval": (0.002, 10.0)},
                  "short_tcp": {"rate": (0.1, 1000.0), "timeout": (0.05, 30.0),
                                "port": (1, 65535)},
                  "iccp": {"rate": (0.1, 200.0), "port": (1, 65535)}}
OPT_IN_TRAFFIC = ("iccp",)  # only when the scenario names it
# expect: values each ICCP expectation takes (lab.analysis.check_expectations)
EXPECT_CHOICES = {"iccp_association": ("survived", "broken"),
                  "iccp_attack": ("blocked", "answered"),
                  "iccp_inspected_after_failover": ("on", "uninspected", "-")}


class ScenarioError(ValueError):
    """A scenario file is invalid; the message names the file and the key."""

    def __init__(self, source: str, key: str, message: str) -> None:
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")
        self.source = source
        self.key = key


@dataclass(frozen=True)
class Fault:
    """One fault: ``kind`` applied ``at`` seconds after traffic start to ``member``
    ("primary", "secondary" or a member name); restored after ``duration`` if set."""

    kind: str
    at: float
    member: str = "primary"
    port: str | None = None
    duration: float | None = None


@dataclass(frozen=True)
class MemberSpec:
    name: str
    text: str  # the FortiOS configuration with the scenario's ha settings applied
    source: str  # file path or "inline"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    clients: int
    servers: int
    members: tuple[MemberSpec, ...]
    ha: dict[str, Any]
    traffic: dict[str, dict[str, Any]]  # kind -> settings; absent kinds are off
    faults: tuple[Fault, ...]
    warmup: float
    settle: float
    reference: dict[str, Any] = field(default_factory=dict)
    soak: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, Any] = field(default_factory=dict)  # only the keys given
    source: str = "<scenario>"

    @property
    def duration(self) -> float:
        """Traffic time: last fault (or its restore) + settle."""
        ends = [f.at + (f.duration or 0.0) for f in self.faults]
        return max([self.warmup, *ends]) + self.settle

    @property
    def pickup(self) -> bool:
        return str(self.ha.get("session-pickup", "disable")) == "enable"

    def hb_detect_s(self) -> float:
        """hb-interval x hb-lost-threshold in seconds (FGCP's detection budget)."""
        return self.hb_interval_s() * int(self.ha["hb-lost-threshold"])

    def hb_interval_s(self) -> float:
        """hb-interval in seconds (units of 100 ms, or 10 ms with
        ``hb-interval-in-milliseconds: 10ms``)."""
        unit = 0.01 if str(self.ha.get("hb-interval-in-milliseconds")) == "10ms" else 0.1
        return int(self.ha["hb-interval"]) * unit

    def advert_int(self) -> float:
        """VRRP advert interval for the reference: given, or the comparable one
        (3 x advert = hb-interval x hb-lost-threshold), at least 0.01 s."""
        given = self.reference.get("advert_int")
        if given is not None:
            return float(given)
        return max(0.01, round(self.hb_detect_s() / 3.0, 2))

    def member_names(self) -> list[str]:
        return [m.name for m in self.members]


# -- validation helpers -----------------------------------------------------------
class _Ctx:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> ScenarioError:
        return ScenarioError(self.source, key, message)

    def mapping(self, value: object, key: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping, got {_kind(value)}")
        return value

    def known(self, value: Mapping[str, Any], allowed: Sequence[str], key: str) -> None:
        for k in value:
            if k not in allowed:
                where = f"{key}.{k}" if key else str(k)
                raise self.fail(where, f"unknown key (expected one of {', '.join(allowed)})")

    def number(self, value: object, key: str, lo: float, hi: float,
               integer: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"expected a number, got {_kind(value)} {value!r}")
        if integer and not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {value!r}")
        if not lo <= value <= hi:
            raise self.fail(key, f"{value} is out of range ({lo:g}-{hi:g})")
        return value

    def text(self, value: object, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {_kind(value)}")
        return value


def _kind(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing",
            bool: "a boolean"}.get(type(value), type(value).__name__)



# -- member configurations ------------------------------------------------------
def default_config_path(member: str) -> Path:
    """The shipped configuration of ``member``: topologies/configs/sync-<member>.conf."""
    return CONFIG_DIR / f"sync-{member}.conf"


def _member_specs(ctx: _Ctx, raw: object, names: list[str], ha: Mapping[str, Any],
                  base_dir: Path) -> tuple[MemberSpec, ...]:
    from fgcp.config import parse_config
    from fgcp.confparse import ConfigError
    from topologies.lab import LabError, ha_config_text

    given = ctx.mapping(raw, "members")
    for k in given:
        if k not in names:
            raise ctx.fail(f"members.{k}", f"no such member in the topology "
                           f"(members: {', '.join(names)})")
    specs = []
    for name in names:
        key = f"members.{name}"
        entry = ctx.mapping(given.get(name), key)
        ctx.known(entry, ("file", "text"), key)
        if "file" in entry and "text" in entry:
            raise ctx.fail(key, "give either `file` or `text`, not both")
        if "text" in entry:
            text, source = ctx.text(entry["text"], f"{key}.text"), "inline"
            conf_key = f"{key}.text"
        else:
            path = (Path(ctx.text(entry["file"], f"{key}.file")) if "file" in entry
                    else default_config_path(name))
            conf_key = f"{key}.file"
            if not path.is_absolute():
                cands = [base_dir / path, REPO_ROOT / path]
                path = next((p for p in cands if p.is_file()), cands[0])
            if not path.is_file():
                what = "" if "file" in entry else " (no shipped default for this member)"
                raise ctx.fail(conf_key, f"no such file {path}{what}")
            text, source = path.read_text(), str(path)
        try:
            text = ha_config_text(text, ha, f"{key} ({source})")
            parse_config(text, f"{key} ({source})")
        except (ConfigError, LabError) as exc:
            raise ctx.fail(conf_key, str(exc)) from None
        specs.append(MemberSpec(name, text, source))
    return tuple(specs)


# -- the loader --------------------------------------------------------------------
def _faults(ctx: _Ctx, raw: object, names: list[str]) -> tuple[Fault, ...]:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise ctx.fail("faults", f"expected a list, got {_kind(raw)}")
    out: list[Fault] = []
    prev_at = 0.0
    for i, item in enumerate(raw):
        key = f"faults[{i}]"
        if isinstance(item, str):  # shorthand: "kill-primary@2"
            kind, _, at_text = item.partition("@")
            item = {"kind": kind} | ({"at": _float_or(ctx, at_text, f"{key}")} if at_text else {})
        entry = ctx.mapping(item, key)
        ctx.known(entry, ("kind", *FAULT_DEFAULTS), key)
        if "kind" not in entry:
            raise ctx.fail(f"{key}.kind", "missing (expected one of "
                           f"{', '.join(FAULT_KINDS)})")
        kind = entry["kind"]
        if kind not in FAULT_KINDS:
            raise ctx.fail(f"{key}.kind", f"unknown fault {kind!r} (expected one of "
                           f"{', '.join(FAULT_KINDS)})")
        e = {**FAULT_DEFAULTS, **entry}
        at = e["at"]
        if at is None:
            at = prev_at + (2.0 if not out else 4.0)
        at = float(ctx.number(at, f"{key}.at", 0.0, 3600.0))
        if at < prev_at:
            raise ctx.fail(f"{key}.at", f"{at:g} is before the previous fault ({prev_at:g}); "
                           "faults run in order")
        member = ctx.text(e["member"], f"{key}.member")
        if member not in (*TARGETS, *names):
            raise ctx.fail(f"{key}.member", f"unknown member {member!r} (expected one of "
                           f"{', '.join((*TARGETS, *names))})")
        port = e["port"]
        if port is not None:
            if kind not in DEFAULT_PORT:
                raise ctx.fail(f"{key}.port", f"fault {kind!r} takes no port")
            port = ctx.text(port, f"{key}.port")
            if port not in ("port1", "port2", "port3", "port4", "port5"):
                raise ctx.fail(f"{key}.port", f"unknown port {port!r} (port1-port5)")
        elif kind in DEFAULT_PORT:
            port = DEFAULT_PORT[kind]
        duration = e["duration"] if e["duration"] is not None else DEFAULT_DURATION.get(kind)
        if duration is not None:
            if kind not in RESTORABLE:
                raise ctx.fail(f"{key}.duration", f"fault {kind!r} is not restored "
                               f"(restorable: {', '.join(sorted(RESTORABLE))})")
            duration = float(ctx.number(duration, f"{key}.duration", 0.1, 600.0))
        if kind == "old-primary-back" and not any(
                f.kind in ("kill-primary", "power-off") and f.duration is None for f in out):
            raise ctx.fail(f"{key}.kind", "old-primary-back needs an earlier kill-primary "
                           "or power-off (without duration)")
        out.append(Fault(kind, at, member, port, duration))
        prev_at = at + (duration or 0.0)
    return tuple(out)


def _float_or(ctx: _Ctx, text: str, key: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ctx.fail(f"{key}.at", f"expected a number after '@', got {text!r}") from None


def _traffic(ctx: _Ctx, raw: object, clients: int, servers: int) -> dict[str, dict[str, Any]]:
    given = ctx.mapping(raw, "traffic") if raw is not None else default_traffic()
    ctx.known(given, tuple(DEFAULTS["traffic"]), "traffic")
    out: dict[str, dict[str, Any]] = {}
    for kind, val in given.items():
        key = f"traffic.{kind}"
        if val is False or val is None:
            continue
        entry = {} if val is True else ctx.mapping(val, key)
        defaults = DEFAULTS["traffic"][kind]
        ctx.known(entry, tuple(defaults), key)
        e = {**defaults, **entry}
        for k, (lo, hi) in TRAFFIC_LIMITS[kind].items():
            integer = k in ("conns", "flows", "port")
            e[k] = ctx.number(e[k], f"{key}.{k}", lo, hi, integer)
        if kind == "iccp":
            _iccp_traffic(ctx, e, key)
        for k, prefix, count in (("client", "c", clients), ("server", "sv", servers)):
            host = ctx.text(e[k], f"{key}.{k}")
            valid = [f"{prefix}{i}" for i in range(1, count + 1)]
            if host not in valid:
                raise ctx.fail(f"{key}.{k}", f"unknown host {host!r} (expected one of "
                               f"{', '.join(valid)})")
        out[kind] = e
    return out


def default_traffic() -> dict[str, dict[str, Any]]:
    """The traffic of a scenario without a ``traffic:`` section: every kind but the
    opt-in ones (OPT_IN_TRAFFIC), with its defaults."""
    return {k: dict(v) for k, v in DEFAULTS["traffic"].items() if k not in OPT_IN_TRAFFIC}


def _iccp_traffic(ctx: _Ctx, e: dict[str, Any], key: str) -> None:
    if not isinstance(e["attack"], bool):
        raise ctx.fail(f"{key}.attack", f"expected true or false, got {e['attack']!r}")
    split = e["split"]
    if split != "item" and (isinstance(split, bool) or not isinstance(split, int)
                            or not 1 <= split <= 1000):
        raise ctx.fail(f"{key}.split", f"expected item or a byte count (1-1000), got "
                       f"{split!r}")


def _ha(ctx: _Ctx, raw: object) -> dict[str, Any]:
    given = ctx.mapping(raw, "ha")
    out = dict(DEFAULTS["ha"])
    for k, v in given.items():
        if not isinstance(k, str) or not k.replace("-", "").isalnum():
            raise ctx.fail(f"ha.{k}", "expected a FortiOS `config system ha` key")
        if isinstance(v, bool):  # YAML on/off/yes/no
            v = "enable" if v else "disable"
        if not isinstance(v, (int, float, str)):
            raise ctx.fail(f"ha.{k}", f"expected a value, got {_kind(v)}")
        out[k] = v
    unit = out.get("hb-interval-in-milliseconds", "100ms")
    if unit not in ("100ms", "10ms"):
        raise ctx.fail("ha.hb-interval-in-milliseconds", f"expected 100ms or 10ms, got {unit!r}")
    return out


def _expect(ctx: _Ctx, raw: object) -> dict[str, Any]:
    given = ctx.mapping(raw, "expect")
    ctx.known(given, tuple(DEFAULTS["expect"]), "expect")
    out = dict(given)
    if "tcp_survived" in out:
        v = out["tcp_survived"]
        if v not in ("all", "none") and (isinstance(v, bool) or not isinstance(v, int)
                                         or v < 0):
            raise ctx.fail("expect.tcp_survived", f"expected all, none or a count, got {v!r}")
    if "split_brain" in out and out["split_brain"] not in ("resolved", "none"):
        raise ctx.fail("expect.split_brain", f"expected resolved or none, got "
                       f"{out['split_brain']!r}")
    if "max_tcp_gap_ms" in out:
        ctx.number(out["max_tcp_gap_ms"], "expect.max_tcp_gap_ms", 1, 600000)
    if "member_errors" in out and out["member_errors"] != "none":
        raise ctx.fail("expect.member_errors", f"expected none, got {out['member_errors']!r}")
    for k, choices in EXPECT_CHOICES.items():
        if k in out and out[k] not in choices:
            raise ctx.fail(f"expect.{k}", f"expected one of {', '.join(choices)}, got "
                           f"{out[k]!r}")
    return out


def parse_scenario(data: object, source: str = "<scenario>",
                   base_dir: Path | None = None) -> Scenario:
    """Validate a scenario's parsed YAML (``data``); ScenarioError names the key."""
    ctx = _Ctx(source)
    if data is None:
        data = {}
    top = ctx.mapping(data, "")
    ctx.known(top, ("name", "description", "topology", "members", "ha", "traffic", "faults",
                    "warmup", "settle", "reference", "soak", "expect"), "")
    topo_raw = ctx.mapping(top.get("topology"), "topology")
    ctx.known(topo_raw, tuple(DEFAULTS["topology"]), "topology")
    topo = {**DEFAULTS["topology"], **topo_raw}
    clients = int(ctx.number(topo["clients"], "topology.clients", 1, 40, True))
    servers = int(ctx.number(topo["servers"], "topology.servers", 1, 40, True))
    nmembers = int(ctx.number(topo["members"], "topology.members", 1, 4, True))
    names = [f"fgt{i}" for i in range(1, nmembers + 1)]
    ha = _ha(ctx, top.get("ha"))
    members = _member_specs(ctx, top.get("members"), names, ha,
                            base_dir or Path.cwd())
    traffic = _traffic(ctx, top.get("traffic"), clients, servers)
    faults = _faults(ctx, top.get("faults"), names)
    warmup = float(ctx.number(top.get("warmup", DEFAULTS["warmup"]), "warmup", 0.5, 600))
    settle = float(ctx.number(top.get("settle", DEFAULTS["settle"]), "settle", 0.5, 600))
    if faults and faults[0].at < 0.5:
        raise ctx.fail("faults[0].at", "the first fault needs at least 0.5 s of traffic before it")
    ref_raw = ctx.mapping(top.get("reference"), "reference")
    ctx.known(ref_raw, tuple(DEFAULTS["reference"]), "reference")
    reference = {**DEFAULTS["reference"], **ref_raw}
    if reference["advert_int"] is not None:
        ctx.number(reference["advert_int"], "reference.advert_int", 0.01, 255)
    if not isinstance(reference["conntrack_sync"], bool):
        raise ctx.fail("reference.conntrack_sync", "expected true or false")
    soak_raw = ctx.mapping(top.get("soak"), "soak")
    ctx.known(soak_raw, tuple(DEFAULTS["soak"]), "soak")
    soak = {**DEFAULTS["soak"], **soak_raw}
    ctx.number(soak["failovers"], "soak.failovers", 1, 1000, True)
    ctx.number(soak["interval"], "soak.interval", 2.0, 600)
    expect = _expect(ctx, top.get("expect"))
    for k in EXPECT_CHOICES:
        if k in expect and "iccp" not in traffic:
            raise ctx.fail(f"expect.{k}", "needs traffic.iccp")
    if "iccp_attack" in expect and not traffic["iccp"]["attack"]:
        raise ctx.fail("expect.iccp_attack", "needs traffic.iccp.attack: true")
    name = top.get("name") or Path(source).stem
    return Scenario(
        name=ctx.text(name, "name"), description=ctx.text(top.get("description", ""),
                                                          "description"),
        clients=clients, servers=servers, members=members, ha=ha, traffic=traffic,
        faults=faults, warmup=warmup, settle=settle, reference=reference, soak=soak,
        expect=expect, source=source,
    )


def load_yaml(path: str | Path) -> Any:
    """The parsed YAML of a scenario file (ScenarioError on I/O or syntax errors)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(str(path), "", f"cannot read: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(path.name, "", f"{where}invalid YAML: {problem}") from None


def resolve_path(name: str | Path) -> Path:
    """A scenario path as given, or a shipped one by name (``default`` ->
    lab/scenarios/default.yaml)."""
    p = Path(name)
    if p.exists() or p.suffix in (".yaml", ".yml") or "/" in str(name):
        return p
    return SCENARIO_DIR / f"{name}.yaml"


def load_scenario(path: str | Path,
                  override: Callable[[dict[str, Any]], None] | None = None) -> Scenario:
    """Load and validate a scenario file; ``override`` may edit the raw data first
    (CLI flags), so flags are validated like the file."""
    path = resolve_path(path)
    data = load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(path.name, "", f"expected a mapping at the top, got {_kind(data)}")
    if override is not None:
        override(data)
    return parse_scenario(data, path.name, path.parent)


def shipped_scenarios() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.yaml"))
