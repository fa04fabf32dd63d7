-- fgcp-lab session-sync frames (ethertype 0x8892): Wireshark/tshark Lua dissector.
-- Layout: docs/protocol.md "Session sync" (big-endian, version 2). Usage:
--   tshark -X lua_script:wireshark/fgcp_sync.lua -r capture.pcap -V
-- or copy this file to ~/.local/lib/wireshark/plugins/.
-- The heartbeat dissector for 0x8890 is wireshark/fgcp.lua (a separate file).

local p = Proto("fgcp_sync", "FGCP Session Sync (fgcp-lab)")

local TYPES = {
    [1] = "DATA", [2] = "ACK", [3] = "NACK", [4] = "HELLO", [5] = "ALIVE",
    [6] = "BULK_REQ", [7] = "BULK_BEGIN", [8] = "BULK_END",
}
local OPS = { [1] = "ADD", [2] = "UPDATE", [3] = "DELETE" }
local INSPECTION = { [0] = "flow", [1] = "proxy", [2] = "ztna", [3] = "none" }
local HEADER_LEN = 60
local AUTH_LEN = 32

local f = p.fields
f.magic = ProtoField.uint16("fgcp_sync.magic", "Magic", base.HEX)
f.version = ProtoField.uint8("fgcp_sync.version", "Version")
f.type = ProtoField.uint8("fgcp_sync.type", "Type", base.DEC, TYPES)
f.flags = ProtoField.uint8("fgcp_sync.flags", "Flags", base.HEX)
f.flag_auth = ProtoField.bool("fgcp_sync.flags.auth", "Authenticated", 8, nil, 0x02)
f.flag_resend = ProtoField.bool("fgcp_sync.flags.resend", "Retransmission", 8, nil, 0x04)
f.flag_bulk = ProtoField.bool("fgcp_sync.flags.bulk", "Bulk sync in progress", 8, nil, 0x08)
f.group_id = ProtoField.uint16("fgcp_sync.group_id", "Group ID")
f.serial = ProtoField.string("fgcp_sync.serial", "Sender serial")
f.epoch = ProtoField.uint64("fgcp_sync.epoch", "Sender epoch (run)", base.HEX)
f.counter = ProtoField.uint64("fgcp_sync.counter", "Frame counter")
f.stream = ProtoField.uint32("fgcp_sync.stream", "Stream ID", base.HEX)
f.seq = ProtoField.uint32("fgcp_sync.seq", "Sequence number")
f.ack = ProtoField.uint32("fgcp_sync.ack", "Cumulative acknowledgement")
f.time_ms = ProtoField.uint32("fgcp_sync.time_ms", "Sender time (ms)")
f.records = ProtoField.uint16("fgcp_sync.records", "Record / range count")
f.length = ProtoField.uint16("fgcp_sync.length", "Payload length")
f.total = ProtoField.uint32("fgcp_sync.total", "Bulk total")
f.nonce = ProtoField.uint64("fgcp_sync.nonce", "Challenge nonce", base.HEX)
f.echo = ProtoField.uint64("fgcp_sync.echo", "Echoed nonce", base.HEX)
f.auth = ProtoField.bytes("fgcp_sync.auth", "HMAC-SHA256")

f.gap_from = ProtoField.uint32("fgcp_sync.gap.from", "Missing from")
f.gap_to = ProtoField.uint32("fgcp_sync.gap.to", "Missing to")

f.rec_op = ProtoField.uint8("fgcp_sync.rec.op", "Operation", base.DEC, OPS)
f.rec_len = ProtoField.uint16("fgcp_sync.rec.len", "Record length")
f.rec_version = ProtoField.uint64("fgcp_sync.rec.version", "Version")
f.rec_proto = ProtoField.uint8("fgcp_sync.rec.proto", "Protocol")
f.rec_state = ProtoField.uint8("fgcp_sync.rec.state", "Protocol state")
f.rec_rflags = ProtoField.uint8("fgcp_sync.rec.rflags", "Record flags", base.HEX)
f.rec_nat = ProtoField.bool("fgcp_sync.rec.nat", "NAT", 8, nil, 0x01)
f.rec_has_tcp = ProtoField.bool("fgcp_sync.rec.has_tcp", "TCP windows present", 8, nil, 0x02)
f.rec_inspection = ProtoField.string("fgcp_sync.rec.inspection", "Inspection mode")
f.rec_sflags = ProtoField.uint16("fgcp_sync.rec.sflags", "Session flags", base.HEX)
f.rec_policy = ProtoField.uint32("fgcp_sync.rec.policy_id", "Policy ID")
f.rec_src = ProtoField.ipv4("fgcp_sync.rec.src", "Source")
f.rec_sport = ProtoField.uint16("fgcp_sync.rec.sport", "Source port")
f.rec_dst = ProtoField.ipv4("fgcp_sync.rec.dst", "Destination")
f.rec_dport = ProtoField.uint16("fgcp_sync.rec.dport", "Destination port")
f.rec_rsrc = ProtoField.ipv4("fgcp_sync.rec.reply_src", "Reply source")
f.rec_rsport = ProtoField.uint16("fgcp_sync.rec.reply_sport", "Reply source port")
f.rec_rdst = ProtoField.ipv4("fgcp_sync.rec.reply_dst", "Reply destination")
f.rec_rdport = ProtoField.uint16("fgcp_sync.rec.reply_dport", "Reply destination port")
f.rec_nat_ip = ProtoField.ipv4("fgcp_sync.rec.nat_ip", "NAT IP")
f.rec_nat_port = ProtoField.uint16("fgcp_sync.rec.nat_port", "NAT port")
f.rec_created = ProtoField.uint32("fgcp_sync.rec.created_ms", "Created (sender ms)")
f.tcp_seqlo = ProtoField.uint32("fgcp_sync.rec.tcp.seqlo", "seqlo")
f.tcp_seqhi = ProtoField.uint32("fgcp_sync.rec.tcp.seqhi", "seqhi")
f.tcp_max_win = ProtoField.uint16("fgcp_sync.rec.tcp.max_win", "max_win")
f.tcp_wscale = ProtoField.uint8("fgcp_sync.rec.tcp.wscale", "wscale", base.HEX)
f.tcp_state = ProtoField.uint8("fgcp_sync.rec.tcp.state", "Peer state")
f.rec_in = ProtoField.string("fgcp_sync.rec.in_intf", "In interface")
f.rec_out = ProtoField.string("fgcp_sync.rec.out_intf", "Out interface")
f.ext_type = ProtoField.uint16("fgcp_sync.rec.ext.type", "Extension type", base.HEX,
    { [0x0100] = "IPS", [0x0200] = "ZTNA" })
f.ext_len = ProtoField.uint16("fgcp_sync.rec.ext.len", "Extension length")
f.ext_value = ProtoField.bytes("fgcp_sync.rec.ext.value", "Extension value")

local e_malformed = ProtoExpert.new("fgcp_sync.malformed", "Malformed session-sync frame",
    expert.group.MALFORMED, expert.severity.ERROR)
p.experts = { e_malformed }

local function ipstr(tvb, off)
    return tostring(tvb(off, 4):ipv4())
end

local function dissect_record(tvb, tree, off, stop)
    if off + 3 > stop then
        tree:add_proto_expert_info(e_malformed, "truncated record header")
        return stop
    end
    local op = tvb(off, 1):uint()
    local blen = tvb(off + 1, 2):uint()
    local rend = off + 3 + blen
    if rend > stop then
        tree:add_proto_expert_info(e_malformed, "record runs past the frame")
        return stop
    end
    local t = tree:add(tvb(off, 3 + blen), "Record")
    t:add(f.rec_op, tvb(off, 1))
    t:add(f.rec_len, tvb(off + 1, 2))
    local b = off + 3
    t:add(f.rec_version, tvb(b, 8))
    t:add(f.rec_proto, tvb(b + 8, 1))
    local proto = tvb(b + 8, 1):uint()
    if op == 3 then
        if blen ~= 21 then
            t:add_proto_expert_info(e_malformed, "DELETE record length must be 21")
            return rend
        end
        t:add(f.rec_src, tvb(b + 9, 4)); t:add(f.rec_sport, tvb(b + 13, 2))
        t:add(f.rec_dst, tvb(b + 15, 4)); t:add(f.rec_dport, tvb(b + 19, 2))
        t:set_text(string.format("DELETE proto %d %s:%d > %s:%d", proto, ipstr(tvb, b + 9),
            tvb(b + 13, 2):uint(), ipstr(tvb, b + 15), tvb(b + 19, 2):uint()))
        return rend
    end
    if blen < 53 then
        t:add_proto_expert_info(e_malformed, "record too short")
        return rend
    end
    t:add(f.rec_state, tvb(b + 9, 1))
    local rflags = tvb(b + 10, 1):uint()
    local rf = t:add(f.rec_rflags, tvb(b + 10, 1))
    rf:add(f.rec_nat, tvb(b + 10, 1))
    rf:add(f.rec_has_tcp, tvb(b + 10, 1))
    t:add(f.rec_inspection, tvb(b + 10, 1), INSPECTION[math.floor(rflags / 4) % 4])
    t:add(f.rec_sflags, tvb(b + 11, 2))
    t:add(f.rec_policy, tvb(b + 13, 4))
    t:add(f.rec_src, tvb(b + 17, 4)); t:add(f.rec_sport, tvb(b + 21, 2))
    t:add(f.rec_dst, tvb(b + 23, 4)); t:add(f.rec_dport, tvb(b + 27, 2))
    t:add(f.rec_rsrc, tvb(b + 29, 4)); t:add(f.rec_rsport, tvb(b + 33, 2))
    t:add(f.rec_rdst, tvb(b + 35, 4)); t:add(f.rec_rdport, tvb(b + 39, 2))
    t:add(f.rec_nat_ip, tvb(b + 41, 4)); t:add(f.rec_nat_port, tvb(b + 45, 2))
    t:add(f.rec_created, tvb(b + 47, 4))
    local q = b + 51
    if math.floor(rflags / 2) % 2 == 1 then
        if q + 24 > rend then
            t:add_proto_expert_info(e_malformed, "truncated TCP window block")
            return rend
        end
        for i, name in ipairs({ "original", "reply" }) do
            local w = t:add(tvb(q, 12), "TCP window (" .. name .. " direction)")
            w:add(f.tcp_seqlo, tvb(q, 4)); w:add(f.tcp_seqhi, tvb(q + 4, 4))
            w:add(f.tcp_max_win, tvb(q + 8, 2)); w:add(f.tcp_wscale, tvb(q + 10, 1))
            w:add(f.tcp_state, tvb(q + 11, 1))
            q = q + 12
        end
    end
    for _, fld in ipairs({ f.rec_in, f.rec_out }) do
        if q >= rend then
            t:add_proto_expert_info(e_malformed, "truncated interface name")
            return rend
        end
        local n = tvb(q, 1):uint()
        if q + 1 + n > rend then
            t:add_proto_expert_info(e_malformed, "interface name runs past the record")
            return rend
        end
        if n > 0 then t:add(fld, tvb(q + 1, n)) else t:add(fld, tvb(q, 1), "") end
        q = q + 1 + n
    end
    while q < rend do
        if q + 4 > rend then
            t:add_proto_expert_info(e_malformed, "truncated extension TLV")
            return rend
        end
        local elen = tvb(q + 2, 2):uint()
        if q + 4 + elen > rend then
            t:add_proto_expert_info(e_malformed, "extension TLV runs past the record")
            return rend
        end
        local x = t:add(tvb(q, 4 + elen), "Extension")
        x:add(f.ext_type, tvb(q, 2)); x:add(f.ext_len, tvb(q + 2, 2))
        if elen > 0 then x:add(f.ext_value, tvb(q + 4, elen)) end
        q = q + 4 + elen
    end
    t:set_text(string.format("%s v%s proto %d %s:%d > %s:%d", OPS[op] or "?",
        tostring(tvb(b, 8):uint64()), proto, ipstr(tvb, b + 17), tvb(b + 21, 2):uint(),
        ipstr(tvb, b + 23), tvb(b + 27, 2):uint()))
    return rend
end

function p.dissector(tvb, pinfo, tree)
    if tvb:len() < HEADER_LEN then return 0 end
    if tvb(0, 2):uint() ~= 0x4653 then return 0 end
    pinfo.cols.protocol = "FGCP-SYNC"
    local ftype = tvb(3, 1):uint()
    local flags = tvb(4, 1):uint()
    local count = tvb(56, 2):uint()
    local plen = tvb(58, 2):uint()
    local auth = math.floor(flags / 2) % 2 == 1
    local t = tree:add(p, tvb(), "FGCP Session Sync")
    t:add(f.magic, tvb(0, 2))
    t:add(f.version, tvb(2, 1))
    t:add(f.type, tvb(3, 1))
    local ft = t:add(f.flags, tvb(4, 1))
    ft:add(f.flag_auth, tvb(4, 1)); ft:add(f.flag_resend, tvb(4, 1)); ft:add(f.flag_bulk, tvb(4, 1))
    t:add(f.group_id, tvb(6, 2))
    t:add(f.serial, tvb(8, 16))
    t:add(f.epoch, tvb(24, 8))
    t:add(f.counter, tvb(32, 8))
    t:add(f.stream, tvb(40, 4))
    t:add(f.seq, tvb(44, 4))
    t:add(f.ack, tvb(48, 4))
    t:add(f.time_ms, tvb(52, 4))
    t:add(f.records, tvb(56, 2))
    t:add(f.length, tvb(58, 2))
    local stop = HEADER_LEN + plen
    if stop > tvb:len() then
        t:add_proto_expert_info(e_malformed, "payload length runs past the frame")
        stop = tvb:len()
    end
    local tname = TYPES[ftype] or string.format("type %d", ftype)
    pinfo.cols.info = string.format("%s ctr=%s stream=0x%08x seq=%d ack=%d count=%d", tname,
        tostring(tvb(32, 8):uint64()), tvb(40, 4):uint(), tvb(44, 4):uint(), tvb(48, 4):uint(),
        count)
    local off = HEADER_LEN
    if ftype == 1 then
        for _ = 1, count do
            if off >= stop then
                t:add_proto_expert_info(e_malformed, "fewer records than the count says")
                break
            end
            off = dissect_record(tvb, t, off, stop)
        end
    elseif ftype == 3 then
        for _ = 1, count do
            if off + 8 > stop then
                t:add_proto_expert_info(e_malformed, "truncated gap range")
                break
            end
            local g = t:add(tvb(off, 8), string.format("Gap %d-%d", tvb(off, 4):uint(),
                tvb(off + 4, 4):uint()))
            g:add(f.gap_from, tvb(off, 4)); g:add(f.gap_to, tvb(off + 4, 4))
            off = off + 8
        end
    elseif (ftype == 7 or ftype == 8) and plen >= 4 then
        t:add(f.total, tvb(off, 4))
        if ftype == 7 and plen >= 12 then t:add(f.echo, tvb(off + 4, 8)) end
    elseif (ftype == 4 or ftype == 6) and plen >= 16 then
        t:add(f.nonce, tvb(off, 8))
        t:add(f.echo, tvb(off + 8, 8))
    end
    if auth and stop + AUTH_LEN <= tvb:len() then
        t:add(f.auth, tvb(stop, AUTH_LEN))
    end
    return tvb:len()
end

DissectorTable.get("ethertype"):add(0x8892, p)
