"""``config router static``: the schema of static routes and their model builder.

One ``Table`` (schema ``STATIC`` + builder) plugged into fgcp/config/loader.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

from fgcp.config.reader import Fields, Reader, Table, as_int
from fgcp.config.schema import IFNAME, Key, Section, keys
from fgcp.config.values import Int, IPAddress, Subnet
from fgcp.confparse import Block
from fgcp.model import ANY_NET, StaticRoute

__all__ = ["STATIC", "STATIC_TABLE"]

# fmt: off
STATIC = Section("router static", keys(
    dst=Key(Subnet(), ANY_NET),
    gateway=Key(IPAddress(), None),
    device=Key(IFNAME, "", ref="interface"),
    distance=Key(Int(1, 255), 10),
), entry=Int(1, 4_294_967_295), what="route", ident="seq", required=("device",))
# fmt: on


def _static(r: Reader, blocks: Sequence[Block]) -> Fields:
    routes = tuple(
        StaticRoute(
            seq=as_int(ident),
            dst=v.typed("dst", IPv4Network),
            gateway=v.typed("gateway", IPv4Address),
            device=v.text("device"),
            distance=v.integer("distance"),
        )
        for ident, _edit, v in r.table(STATIC, blocks)
    )
    return {"routes": routes}


STATIC_TABLE = Table(STATIC, _static)
