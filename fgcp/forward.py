"""Forwarding plane of one member: a pure per-frame decision (ARP, ping, policy, NAT, TCP).

``Forwarder.handle`` takes one received frame and the time and appends the
frames to transmit; the daemon around it does the I/O (fgcp/ring.py).
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Interface

from fgcp.checksum import TTL_DEC_DELTA, checksum, delta16, delta32, fold
from fgcp.inspecthook import Inspector, Verdict, reset_frames
from fgcp.model import MemberConfig
from fgcp.nat import NatAllocator
from fgcp.packet import (
    ARP_REPLY,
    ARP_REQUEST,
    BROADCAST_MAC,
    ETH_P_ARP,
    ETH_P_IP,
    FAST,
    ICMP_ECHO,
    ICMP_ECHOREPLY,
    ICMP_ERROR_TYPES,
    ICMP_TIME_EXCEEDED,
    TCP_HDR,
    ZERO_MAC,
    MalformedFrame,
    build_arp,
    build_icmp_echo_reply,
    build_icmp_error,
    parse_arp,
    tcp_wscale,
)
from fgcp.policy import PolicyTable
from fgcp.ratelimit import TokenBucket
from fgcp.routing import ArpCache, RouteTable
from fgcp.session import (
    CONNECTIONLESS,
    PICKUP,
    SYNCED,
    Rewrite,
    Session,
    SessionTable,
    Timeouts,
)
from fgcp.tcptrack import (
    DROP,
    PASS,
    PS_SYN_SENT,
    PS_TIME_WAIT,
    mark_pickup,
    new_peers,
    proto_state,
    track,
)

__all__ = ["Forwarder", "Out", "PortSpec"]

log = logging.getLogger(__name__)

_fast_unpack = FAST.unpack_from
_tcp_unpack = TCP_HDR.unpack_from
_h_unpack = struct.Struct("!H").unpack_from
_h_pack = struct.Struct("!H").pack_into
_hh_pack = struct.Struct("!HH").pack_into
_from_bytes = int.from_bytes
_ip_pack = struct.Struct("!BBHII").pack_into  # TTL, proto, checksum, src, dst at 22

_TH_FIN, _TH_SYN, _TH_RST, _TH_ACK = 0x01, 0x02, 0x04, 0x10
_BAD_INPUT = (struct.error, IndexError, ValueError)
ICMP_ERROR_RATE = 1000.0  # ICMP errors per second (Linux net.ipv4.icmp_msgs_per_sec)
ICMP_ERROR_BURST = 50  # Linux net.ipv4.icmp_msgs_burst

# frames to transmit: (egress port index, frame)
Out = list[tuple[int, bytes | bytearray]]


@dataclass(frozen=True, slots=True)
class PortSpec:
    """One forwarding port: ``name`` is the FortiOS port name (port1, ...)."""

    index: int
    name: str
    mac: bytes


class Forwarder:
    """Stateful firewall + source NAT + router of one member (pure, time passed in)."""

    def __init__(self, cfg: MemberConfig, ports: list[PortSpec],
                 nat_range: tuple[int, int] = (1024, 65535),
                 timeouts: Timeouts | None = None, inspector: Inspector | None = None) -> None:
        self.cfg = cfg
        self.inspector = inspector
        self.ports: dict[int, PortSpec] = {p.index: p for p in ports}
        self.port_names: dict[int, str] = {p.index: p.name for p in ports}
        self.port_index: dict[str, int] = {p.name: p.index for p in ports}
        self.port_macs: dict[int, bytes] = {p.index: p.mac for p in ports}
        self.counters: Counter[str] = Counter()
        self.active = True
        self.routes = RouteTable(cfg, self.port_index)
        self.arp = ArpCache()
        self.policies = PolicyTable(cfg)
        self.nat = NatAllocator(*nat_range)
        self.sessions = SessionTable(
            cfg.session_table_max, on_remove=self._on_remove,
            timeouts=timeouts or Timeouts(tcp_established=cfg.session_ttl.default))
        self.on_session_event: Callable[[str, Session], None] | None = None
        self._keys = self.sessions.keys
        self._arp_hdr = self.arp.hdr
        self._icmp_errors = TokenBucket(ICMP_ERROR_RATE, ICMP_ERROR_BURST)
        self._ping_ports = {self.port_index[n] for n, i in cfg.interfaces.items()
                            if n in self.port_index and "ping" in i.allowaccess}
        self._accept: dict[int, frozenset[bytes]] = {}
        self._accept_fast: dict[int, frozenset[bytes]] = {}
        self._local: dict[int, int] = {}
        self._rebuild_accept()
        self._rebuild_local()

    # -- control (daemon / HA) ------------------------------------------------
    def set_active(self, active: bool) -> None:
        """A standby member forwards nothing and answers no ARP."""
        self.active = active
        self._rebuild_accept()

    def set_port_mac(self, index: int, mac: bytes) -> None:
        """Source MAC of the port (e.g. the HA virtual MAC) for ARP and forwarding."""
        if index not in self.ports or len(mac) != 6:
            raise ValueError(f"bad port {index} or MAC {mac!r}")
        self.port_macs[index] = bytes(mac)
        self.arp.set_port_mac(index, bytes(mac))
        self._rebuild_accept()

    def add_address(self, index: int, addr: IPv4Interface | str) -> None:
        """Add an interface address (and its connected route) to a port."""
        if index not in self.ports:
            raise ValueError(f"unknown port {index}")
        self.routes.add_address(index, IPv4Interface(addr))
        self._routing_changed()

    def remove_address(self, index: int, addr: IPv4Interface | str) -> bool:
        """Remove an interface address; False when it was not configured."""
        done = self.routes.remove_address(index, IPv4Interface(addr))
        if done:
            self._routing_changed()
        return done

    def expire(self, now: float) -> int:
        """Remove expired sessions (and stale ARP queues); returns sessions removed."""
        dropped = self.arp.purge(now)
        if dropped:
            self.counters["arp_unresolved"] += dropped
        return self.sessions.expire(now)

    def install_session(self, s: Session, now: float, pickup: bool = True) -> bool:
        """Install a session received by session sync (NAT port reserved, TCP loose pickup)."""
        if s.nat and not self.nat.reserve(s.nat_ip, s.proto, s.nat_port):
            self.counters["sync_nat_clash"] += 1
            return False
        s.flags |= SYNCED
        if pickup and s.tcp is not None:
            s.flags |= PICKUP
            mark_pickup(s.tcp)
        s.rw = None
        s.timeout = 0
        s.expires = 0.0
        if not self.sessions.add(s, now):
            if s.nat:
                self.nat.release(s.nat_ip, s.proto, s.nat_port)
            self.counters["sync_install_failed"] += 1
            return False
        if self.inspector is not None and self.inspector.on_new(s):
            s.inspect = True
        return True

    def gratuitous_arps(self, index: int) -> list[tuple[int, bytearray]]:
        """Gratuitous ARP frames announcing the port's addresses with its current MAC."""
        mac = self.port_macs[index]
        return [(index, build_arp(ARP_REQUEST, mac, int(a.ip), BROADCAST_MAC, ZERO_MAC, int(a.ip)))
                for a in self.routes.addresses(index)]

    # -- the per-frame path ---------------------------------------------------
    def handle(self, port_index: int, frame: bytearray, now: float, out: Out) -> None:
        """Process one received frame; append (port, frame) for each frame to send."""
        try:
            if len(frame) < 42:
                self._slow(port_index, frame, now, out)
                return
            dmac, et, vihl, totlen, frag, ttl, proto, src, dst, sport, dport, w3, w4 = \
                _fast_unpack(frame, 0)
            acc = self._accept_fast.get(port_index)
            if (et != 0x0800 or vihl != 0x45 or frag & 0x3FFF or totlen < 28
                    or totlen + 14 > len(frame) or acc is None or dmac not in acc):
                self._slow(port_index, frame, now, out)
                return
            # L4 checksum first, so that a damaged frame changes no state.  Inline RFC 1071
            # (see checksum.checksum): the bytes from the IPv4 source address to the end,
            # read as one number, are congruent mod 0xFFFF to the sum of their 16-bit
            # words, i.e. pseudo-header addresses + segment; add protocol and length: an
            # intact segment sums to 0 mod 0xFFFF (odd lengths are padded with a zero).
            if proto == 6:
                key = (6, src, sport, dst, dport)
                c = _from_bytes(frame[26:14 + totlen], "big")
                if totlen & 1:
                    c <<= 8
                if (c + totlen - 14) % 0xFFFF:  # + 6 + (totlen - 20)
                    self.counters["tcp_bad_checksum"] += 1
                    return
            elif proto == 17:
                key = (17, src, sport, dst, dport)
                if w3 < 8 or w3 + 20 > totlen:  # UDP length
                    self.counters["udp_bad_length"] += 1
                    return
                if w4:  # checksum 0: none computed (legal for IPv4)
                    c = _from_bytes(frame[26:34 + w3], "big")
                    if w3 & 1:
                        c <<= 8
                    if (c + 17 + w3) % 0xFFFF:
                        self.counters["udp_bad_checksum"] += 1
                        return
            elif proto == 1:
                t = sport >> 8
                if t == 8:
                    key = (1, src, w3, dst, 0)
                elif t == 0:
                    key = (1, src, 0, dst, w3)
                else:
                    self._slow(port_index, frame, now, out)
                    return
                c = _from_bytes(frame[34:14 + totlen], "big")
                if totlen & 1:
                    c <<= 8
                if c % 0xFFFF:
                    self.counters["icmp_bad_checksum"] += 1
                    return
            else:
                self._slow(port_index, frame, now, out)
                return
            fresh = False
            ent = self._keys.get(key)
            # TTL after un-NAT: a session's reply (to our NAT address) is forwarded too
            if ttl <= 1 and (ent is not None or dst not in self._local):
                self._ttl_expired(port_index, frame, src, dst, now, out)
                return
            if ent is not None and proto == 6 and ent[0].state == PS_TIME_WAIT \
                    and ent[1] == 0 and (frame[47] & 0x17) == _TH_SYN:
                # port reuse: a new SYN on a closed session starts a new one
                self.sessions.remove(ent[0])
                ent = None
            if ent is None:
                ent = self._new_flow(port_index, frame, now, out, proto, src, sport, dst,
                                     dport, totlen, key)
                if ent is None:
                    return
                fresh = True
            s, d = ent
            rw = s.rw
            if rw is None:
                rw = self._build_rw(s)
                if rw is None:
                    self.counters["no_route"] += 1
                    return
            out_port, nhk, nsrc, ndst, nsport, ndport, ipd, l4d = rw[d]
            if proto == 6:
                seq, ack, off, flags, win = _tcp_unpack(frame, 38)
                doff = (off >> 4) << 2
                if doff < 20 or doff + 20 > totlen:
                    self.counters["tcp_bad_header"] += 1
                    return
                if not fresh:
                    peers = s.tcp
                    if peers is None:
                        self.counters["tcp_no_state"] += 1
                        return
                    ws = tcp_wscale(frame, 34, doff) if flags & _TH_SYN else 0
                    if d:
                        r = track(peers[1], peers[0], flags, seq, ack, win, totlen - 20 - doff, ws)
                    else:
                        r = track(peers[0], peers[1], flags, seq, ack, win, totlen - 20 - doff, ws)
                    if r != PASS:
                        if r == DROP:
                            self.counters["tcp_out_of_window"] += 1
                            return
                        st = proto_state(peers[0], peers[1])
                        if st != s.state:
                            self.sessions.set_state(s, st, now)
                            if self.on_session_event is not None:
                                self.on_session_event("state", s)
                        if s.flags & PICKUP and not (peers[0].pickup or peers[1].pickup):
                            s.flags &= ~PICKUP
                if s.inspect and self._inspect_tcp(s, d, frame, seq, flags, doff, totlen, rw,
                                                   now, out):
                    return
                l4sum = 50
            elif proto == 17:
                if s.inspect and self._inspect_udp(s, d, frame, w3, now):
                    return
                l4sum = 40
                if d and not s.state:
                    s.state = 1  # a reply was seen: the synced copy follows
                    if self.on_session_event is not None:
                        self.on_session_event("state", s)
            else:
                l4sum = 36
            c = (~_h_unpack(frame, 24)[0] & 0xFFFF) + ipd
            c = (c & 0xFFFF) + (c >> 16)
            _ip_pack(frame, 22, ttl - 1, proto, ~((c & 0xFFFF) + (c >> 16)) & 0xFFFF, nsrc, ndst)
            if l4d:
                if proto == 1:
                    _h_pack(frame, 38, nsport)
                else:
                    _hh_pack(frame, 34, nsport, ndport)
                c = _h_unpack(frame, l4sum)[0]
                if c or proto != 17:
                    c = (~c & 0xFFFF) + l4d
                    c = (c & 0xFFFF) + (c >> 16)
                    c = ~((c & 0xFFFF) + (c >> 16)) & 0xFFFF
                    if not c and proto == 17:
                        c = 0xFFFF
                    _h_pack(frame, l4sum, c)
            s.last_seen = now
            s.expires = now + s.timeout
            if d:
                s.reply_packets += 1
                s.reply_bytes += totlen
            else:
                s.org_packets += 1
                s.org_bytes += totlen
            hdr = self._arp_hdr.get(nhk)
            if hdr is None:
                self._resolve(nhk, frame, now, out)
                return
            frame[0:12] = hdr
            out.append((out_port, frame))
        except _BAD_INPUT as e:
            self.counters["malformed"] += 1
            log.debug("malformed frame on port %s: %s", port_index, e)

    # -- slow paths -------------------------------------------------------------
    def _slow(self, port: int, frame: bytearray, now: float, out: Out) -> None:
        """Everything the fast path does not handle: ARP, local-in, validation."""
        c = self.counters
        n = len(frame)
        if port not in self.ports:
            c["bad_port"] += 1
            return
        if n < 14:
            c["eth_truncated"] += 1
            return
        et = _h_unpack(frame, 12)[0]
        if et == ETH_P_ARP:
            self._arp(port, frame, now, out)
            return
        if et != ETH_P_IP:
            c["non_ip"] += 1
            return
        if not self.active:
            c["standby_drop"] += 1
            return
        if bytes(frame[0:6]) not in self._accept[port]:
            c["not_for_us"] += 1
            return
        if n < 34:
            c["ip_truncated"] += 1
            return
        vihl = frame[14]
        if vihl >> 4 != 4:
            c["ip_bad_version"] += 1
            return
        ihl = (vihl & 15) << 2
        if ihl < 20:
            c["ip_bad_header"] += 1
            return
        totlen = _h_unpack(frame, 16)[0]
        if totlen < ihl or 14 + totlen > n:
            c["ip_bad_length"] += 1
            return
        if _h_unpack(frame, 20)[0] & 0x3FFF:
            c["ip_fragment"] += 1
            return
        if ihl > 20:
            c["ip_options"] += 1
            return
        proto = frame[23]
        l4len = totlen - 20
        if proto == 6:
            if l4len < 20:
                c["tcp_truncated"] += 1
                return
        elif proto == 17:
            if l4len < 8:
                c["udp_truncated"] += 1
                return
        elif proto == 1:
            if l4len < 8:
                c["icmp_truncated"] += 1
                return
            itype = frame[34]
            dst = int.from_bytes(frame[30:34], "big")
            if dst in self._local and itype == ICMP_ECHO:
                self._local_in(port, frame, proto, out)
                return
            if itype in ICMP_ERROR_TYPES:
                c["icmp_error_drop"] += 1
            elif itype not in (ICMP_ECHO, ICMP_ECHOREPLY):
                c["icmp_unsupported"] += 1
            else:
                c["malformed"] += 1
            return
        else:
            c["unsupported_proto"] += 1
            return
        c["malformed"] += 1  # a valid TCP/UDP packet never gets here

    def _local_in(self, port: int, frame: bytearray, proto: int, out: Out) -> None:
        c = self.counters
        if proto == 1 and frame[34] == ICMP_ECHO:
            if port in self._ping_ports:
                c["ping_reply"] += 1
                out.append((port, build_icmp_echo_reply(frame, self.port_macs[port])))
            else:
                c["ping_denied"] += 1
            return
        c["local_in_drop"] += 1

    def _arp(self, port: int, frame: bytearray, now: float, out: Out) -> None:
        c = self.counters
        try:
            a = parse_arp(frame)
        except MalformedFrame as e:
            c[e.reason] += 1
            return
        c["arp_rx"] += 1
        mine = self._local.get(a.tpa) == port
        if a.spa and (mine or a.oper == ARP_REPLY or self.arp.known(port, a.spa)) \
                and a.sha != BROADCAST_MAC and not a.sha[0] & 1 and self._on_link(port, a.spa):
            queued = self.arp.learn(port, a.spa, a.sha, self.port_macs[port], now)
            if queued:
                if self.active:
                    out.extend((port, f) for f in queued)
                    c["arp_queue_sent"] += len(queued)
                else:
                    c["standby_drop"] += len(queued)
        if a.oper == ARP_REQUEST and mine and a.spa != a.tpa:
            if not self.active:
                c["standby_arp_ignored"] += 1
                return
            mac = self.port_macs[port]
            out.append((port, build_arp(ARP_REPLY, mac, a.tpa, a.sha, a.sha, a.spa)))
            c["arp_reply_tx"] += 1

    def _on_link(self, port: int, ip: int) -> bool:
        for a in self.routes.addresses(port):
            net = a.network
            if (ip & int(net.netmask)) == int(net.network_address):
                return True
        return False

    def _resolve(self, nhk: tuple[int, int], frame: bytearray, now: float, out: Out) -> None:
        port, nh = nhk
        queued, request = self.arp.queue(port, nh, bytearray(frame), now)
        if not queued:
            self.counters["arp_queue_full"] += 1
        if request:
            src_ip = self.routes.source_for(port, nh)
            out.append((port, build_arp(ARP_REQUEST, self.port_macs[port], src_ip,
                                        BROADCAST_MAC, ZERO_MAC, nh)))
            self.counters["arp_request_tx"] += 1

    # -- inspection (fgcp/inspecthook.py) ----------------------------------------
    def _inspect_tcp(self, s: Session, d: int, frame: bytearray, seq: int, flags: int, doff: int,
                     totlen: int, rw: tuple[Rewrite, Rewrite], now: float, out: Out) -> bool:
        """Ask the inspector about a tracked segment; True when it must not be forwarded."""
        payload = bytes(frame[34 + doff:14 + totlen])
        insp = self.inspector
        if insp is None or not (payload or flags & (_TH_FIN | _TH_RST)):
            return False
        v = insp.on_payload(s, d, seq, payload, flags, now)
        if not v:
            return False
        if v != Verdict.RESET or s.tcp is None:
            self.counters["inspect_drop"] += 1  # DROP, or a value we do not know: fail closed
            return True
        self.counters["inspect_reset"] += 1
        for route, f in reset_frames(s, d, seq, rw):
            self._send(route, f, now, out)
        self.sessions.remove(s)  # reset both ways: nothing more passes (on_close, NAT freed)
        return True

    def _inspect_udp(self, s: Session, d: int, frame: bytearray, ulen: int, now: float) -> bool:
        """Ask the inspector about a datagram; True when it must not be forwarded."""
        insp = self.inspector
        if insp is None or not insp.on_payload(s, d, 0, bytes(frame[42:34 + ulen]), 0, now):
            return False
        self.counters["inspect_drop"] += 1
        return True

    def _ttl_expired(self, port: int, frame: bytearray, src: int, dst: int, now: float,
                     out: Out) -> None:
        """A datagram to forward arrived with TTL 0 or 1: ICMP time exceeded, as a router."""
        c = self.counters
        c["ttl_expired"] += 1
        if checksum(frame[14:34]):
            c["ip_bad_checksum"] += 1
            return
        # no ICMP error about a datagram to or from a broadcast/multicast/null/own address
        if (dst == 0xFFFFFFFF or dst >> 28 == 14 or src >> 28 >= 14 or not src
                or src >> 24 == 127 or src in self._local):
            return
        if not self._icmp_errors.take(now):
            c["icmp_error_ratelimited"] += 1
            return
        me = self.routes.source_for(port, src)
        back = self.routes.lookup(src)
        if not me or back is None:
            c["no_route"] += 1
            return
        err = build_icmp_error(frame, ICMP_TIME_EXCEEDED, 0, me)
        c["icmp_time_exceeded_tx"] += 1
        self._send(back, err, now, out)

    def _send(self, route: tuple[int, int], frame: bytearray, now: float,
              out: Out) -> None:
        """Send a frame the member originates via ``route`` (egress port, next hop)."""
        hdr = self._arp_hdr.get(route)
        if hdr is None:
            self._resolve(route, frame, now, out)
            return
        frame[0:12] = hdr
        out.append((route[0], frame))

    def _new_flow(self, port: int, frame: bytearray, now: float, out: Out, proto: int,
                  src: int, sport: int, dst: int, dport: int, totlen: int,
                  key: tuple[int, int, int, int, int]) -> tuple[Session, int] | None:
        """Policy decision for a packet without a session; creates the session."""
        c = self.counters
        if dst in self._local:
            self._local_in(port, frame, proto, out)
            return None
        if dst == 0xFFFFFFFF or dst >> 28 == 14 or src >> 28 >= 14:
            c["ip_broadcast"] += 1
            return None
        if checksum(frame[14:34]):
            c["ip_bad_checksum"] += 1
            return None
        flags = seq = win = doff = 0
        if proto == 6:
            seq, _ack, off, flags, win = _tcp_unpack(frame, 38)
            doff = (off >> 4) << 2
            if doff < 20 or doff + 20 > totlen:
                c["tcp_bad_header"] += 1
                return None
            if (flags & (_TH_SYN | _TH_ACK | _TH_RST)) != _TH_SYN:
                c["no_session"] += 1
                c["tcp_not_syn"] += 1
                return None
            svc_port = dport
        elif proto == 1:
            if frame[34] != ICMP_ECHO:
                c["no_session"] += 1
                return None
            svc_port = ICMP_ECHO
        else:
            svc_port = dport
        route = self.routes.lookup(dst)
        if route is None:
            c["no_route"] += 1
            return None
        out_port = route[0]
        in_name = self.port_names[port]
        out_name = self.port_names[out_port]
        pol = self.policies.match(in_name, out_name, proto, src, dst, svc_port)
        if pol is None:
            c["no_policy"] += 1
            return None
        if pol.action != "accept":
            c["policy_deny"] += 1
            c[f"policy_deny.{pol.policyid}"] += 1
            return None
        if proto == 1:
            ident = key[2]
            orig = (src, ident, dst, 0)
        else:
            ident = sport
            orig = (src, sport, dst, dport)
        nat_ip = nat_port = 0
        if pol.nat:
            nat_ip = self.routes.source_for(out_port, route[1])
            got = self.nat.allocate(nat_ip, proto, ident) if nat_ip else None
            if got is None:
                c["nat_exhausted"] += 1
                return None
            nat_port = got
        if proto == 1:
            reply = (dst, 0, nat_ip or src, nat_port if pol.nat else ident)
        else:
            reply = (dst, dport, nat_ip or src, nat_port if pol.nat else sport)
        s = Session(
            sid=self.sessions.next_sid(), proto=proto, orig=orig, reply=reply,
            in_intf=in_name, out_intf=out_name, policy_id=pol.policyid, nat=pol.nat,
            nat_ip=nat_ip, nat_port=nat_port, created=now, last_seen=now,
            inspection=pol.inspection_mode,
            flags=0 if proto == 6 else CONNECTIONLESS,
        )
        if proto == 6:
            ws = tcp_wscale(frame, 34, doff)
            s.tcp = new_peers(flags, seq, win, totlen - 20 - doff, ws)
            s.state = PS_SYN_SENT
        if not self.sessions.add(s, now):
            if pol.nat:
                self.nat.release(nat_ip, proto, nat_port)
            if len(self.sessions) >= self.sessions.max_sessions:
                c["session_table_full"] += 1
            else:
                c["session_clash"] += 1
            return None
        c["session_created"] += 1
        if self.inspector is not None and self.inspector.on_new(s):
            s.inspect = True
        if self.on_session_event is not None:
            self.on_session_event("add", s)
        return s, 0

    def _build_rw(self, s: Session) -> tuple[Rewrite, Rewrite] | None:
        """Precompute both directions' rewrites (egress, next hop, NAT checksum deltas)."""
        o_src, o_sport, o_dst, o_dport = s.orig
        r_src, r_sport, r_dst, r_dport = s.reply
        ro = self.routes.lookup(o_dst)
        rr = self.routes.lookup(o_src)
        if ro is None or rr is None:
            return None
        a_o = delta32(o_src, r_dst)  # orig direction: source becomes r_dst (NAT IP)
        a_r = delta32(r_dst, o_src)  # reply direction: destination back to o_src
        ipd_o = fold(a_o + TTL_DEC_DELTA)
        ipd_r = fold(a_r + TTL_DEC_DELTA)
        if s.proto == 1:
            l4_o = fold(delta16(o_sport, r_dport))
            l4_r = fold(delta16(r_dport, o_sport))
            new_o = (r_dst, o_dst, r_dport, 0)
            new_r = (r_src, o_src, o_sport, 0)
        else:
            l4_o = fold(a_o + delta16(o_sport, r_dport))
            l4_r = fold(a_r + delta16(r_dport, o_sport))
            new_o = (r_dst, o_dst, r_dport, o_dport)
            new_r = (r_src, o_src, r_sport, o_sport)
        rw = ((ro[0], ro, *new_o, ipd_o, l4_o), (rr[0], rr, *new_r, ipd_r, l4_r))
        s.rw = rw
        return rw

    def _on_remove(self, s: Session) -> None:
        if s.inspect and self.inspector is not None:
            self.inspector.on_close(s)
        if s.nat:
            self.nat.release(s.nat_ip, s.proto, s.nat_port)
        if self.on_session_event is not None:
            self.on_session_event("remove", s)

    def _routing_changed(self) -> None:
        self._rebuild_local()
        for s in self.sessions:
            s.rw = None

    def _rebuild_local(self) -> None:
        self._local = {int(a.ip): p for p, addrs in self.routes.all_addresses().items()
                       for a in addrs}

    def _rebuild_accept(self) -> None:
        self._accept = {i: frozenset({p.mac, self.port_macs[i]}) for i, p in self.ports.items()}
        self._accept_fast = dict(self._accept) if self.active else {}
