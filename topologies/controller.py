"""os-ken shim of the lab's OpenFlow 1.3 fabric controller.

Parses packet-ins, asks `topologies.fabric.LearningFabric` what to do and
sends the resulting OpenFlow messages; logs every flow install/delete with a
timestamp (the log is the controller log file set up by the launcher).

Every datapath also gets a trap flow (priority ``ARP_TRAP_PRIORITY``): ARP from
a FortiGate virtual MAC (00:09:0f:09:*) goes to the controller, so a new
primary's gratuitous ARP is always seen, whatever flows exist.  Each move of a
virtual MAC is logged as one parseable line::

    reroute t=<epoch seconds> dpid=<hex> mac=<mac> from_port=<n|none> to_port=<n> ip=<ip>
"""

from __future__ import annotations

import logging
import time
from typing import ClassVar

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.controller import Datapath
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.lib.packet import arp, ethernet, packet
from os_ken.ofproto import ofproto_v1_3

from topologies.fabric import (
    FLOOD,
    Action,
    FlowDelete,
    FlowMod,
    LearningFabric,
    PacketOut,
    TableMiss,
)

LOG = logging.getLogger("fgcp.fabric")
ARP_TRAP_PRIORITY = 30
VMAC_MATCH = ("00:09:0f:09:00:00", "ff:ff:ff:ff:00:00")
ETH_TYPE_ARP = 0x0806


def garp_address(pkt: packet.Packet) -> str | None:
    """The announced IP if ``pkt`` is a gratuitous ARP (request or reply), else None."""
    a = pkt.get_protocol(arp.arp)
    if a is None or a.src_ip != a.dst_ip:
        return None
    return str(a.src_ip)


class FabricController(app_manager.OSKenApp):
    """L2 learning + virtual-MAC steering for every connected datapath."""

    OFP_VERSIONS: ClassVar[list[int]] = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fabric = LearningFabric()
        self.datapaths: dict[int, Datapath] = {}

    # -- events -----------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev: ofp_event.EventOFPSwitchFeatures) -> None:
        dp = ev.msg.datapath
        self.datapaths[dp.id] = dp
        LOG.info("switch-connected dpid=%016x", dp.id)
        self.apply(self.fabric.switch_up(dp.id))

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _dead(self, ev: ofp_event.EventOFPStateChange) -> None:
        dp = ev.datapath
        if dp.id is not None and self.datapaths.pop(dp.id, None) is not None:
            LOG.info("switch-disconnected dpid=%016x", dp.id)
            self.fabric.switch_down(dp.id)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev: ofp_event.EventOFPPacketIn) -> None:
        msg = ev.msg
        pkt = packet.Packet(msg.data)
        eth = pkt.get_protocol(ethernet.ethernet)
        if eth is None:
            return
        garp = garp_address(pkt)
        if garp is not None:
            LOG.info(
                "garp t=%.6f dpid=%016x in_port=%d mac=%s ip=%s",
                time.time(), msg.datapath.id, msg.match["in_port"], eth.src, garp,
            )
        actions = self.fabric.packet_in(
            msg.datapath.id, msg.match["in_port"], eth.src, eth.dst,
            time.monotonic(), garp_ip=garp,
        )
        self.apply(actions, data=msg.data)
        self._log_reroutes(garp or "")

    def _log_reroutes(self, ip: str = "") -> None:
        for r in self.fabric.reroutes:
            LOG.info(
                "reroute t=%.6f dpid=%016x mac=%s from_port=%s to_port=%d ip=%s",
                time.time(), r.dpid, r.mac,
                "none" if r.old_port is None else r.old_port, r.new_port, ip or "-",
            )
        self.fabric.reroutes.clear()

    # -- action -> OpenFlow -----------------------------------------------
    def apply(self, actions: list[Action], data: bytes | None = None) -> None:
        for act in actions:
            dp = self.datapaths.get(act.dpid)
            if dp is None:
                continue
            ofp, parser = dp.ofproto, dp.ofproto_parser
            if isinstance(act, TableMiss):
                out = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
                inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, out)]
                dp.send_msg(parser.OFPFlowMod(
                    datapath=dp, priority=0, match=parser.OFPMatch(), instructions=inst,
                ))
                LOG.info("flow-install dpid=%016x table-miss -> controller", act.dpid)
                match = parser.OFPMatch(eth_type=ETH_TYPE_ARP, eth_src=VMAC_MATCH)
                inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, out)]
                dp.send_msg(parser.OFPFlowMod(
                    datapath=dp, priority=ARP_TRAP_PRIORITY, match=match, instructions=inst,
                ))
                LOG.info("flow-install dpid=%016x arp from %s/%s -> controller "
                         "priority=%d", act.dpid, *VMAC_MATCH, ARP_TRAP_PRIORITY)
            elif isinstance(act, FlowMod):
                out = [parser.OFPActionOutput(act.out_port)]
                inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, out)]
                dp.send_msg(parser.OFPFlowMod(
                    datapath=dp, priority=act.priority,
                    match=parser.OFPMatch(eth_dst=act.eth_dst),
                    idle_timeout=act.idle_timeout, instructions=inst,
                ))
                LOG.info(
                    "flow-install dpid=%016x eth_dst=%s out_port=%d priority=%d "
                    "idle_timeout=%d reason=%s",
                    act.dpid, act.eth_dst, act.out_port, act.priority,
                    act.idle_timeout, act.reason,
                )
            elif isinstance(act, FlowDelete):
                dp.send_msg(parser.OFPFlowMod(
                    datapath=dp, command=ofp.OFPFC_DELETE, table_id=ofp.OFPTT_ALL,
                    out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                    match=parser.OFPMatch(eth_dst=act.eth_dst),
                ))
                LOG.info(
                    "flow-delete dpid=%016x eth_dst=%s reason=%s",
                    act.dpid, act.eth_dst, act.reason,
                )
            elif isinstance(act, PacketOut) and data is not None:
                port = ofp.OFPP_FLOOD if act.out_port == FLOOD else act.out_port
                dp.send_msg(parser.OFPPacketOut(
                    datapath=dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=act.in_port,
                    actions=[parser.OFPActionOutput(port)], data=data,
                ))
