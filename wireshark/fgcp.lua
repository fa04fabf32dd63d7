-- fgcp.lua: Wireshark/tshark dissector for the fgcp-lab FGCP frames.
-- Heartbeat (ethertype 0x8890); session sync (0x8892) is in fgcp_sync.lua.
--
-- Usage:  tshark -X lua_script:wireshark/fgcp.lua -r capture.pcap -V
--         tshark -X lua_script:wireshark/fgcp.lua -r capture.pcap -T fields \
--                -e fgcp.group -e fgcp.serial -e fgcp.priority -e fgcp.state
-- or copy it into the personal Lua plugins folder (Help > About > Folders).
-- Layout: docs/protocol.md.  All integers are little-endian.

local HB_MAGIC = 0x4746

local mode_names = { [1] = "a-a", [2] = "a-p" }
local state_names = { [1] = "hello", [2] = "work", [3] = "standby" }
local role_names = { [0] = "none", [1] = "primary", [2] = "secondary" }
local tlv_names = {
    [0x00] = "end",
    [0x0B] = "vcluster-id",
    [0x0C] = "priority",
    [0x0D] = "override",
    [0x2A] = "interfaces",
    [0x3C] = "checksums",
    [0x80] = "ha-uptime-ms",
    [0x81] = "ha-state",
    [0x82] = "role",
    [0x83] = "monitor",
    [0x84] = "sequence",
    [0x85] = "timers",
    [0x86] = "sync-complete",
    [0x87] = "failover-set",
    [0x88] = "members",
    [0x89] = "uptime-resets",
    [0x8A] = "hostname",
    [0x8B] = "primary",
    [0x8C] = "epoch",
    [0x8D] = "challenge",
    [0x8E] = "response",
}

local p_hb = Proto("fgcp", "FGCP heartbeat (fgcp-lab)")
local f = {
    magic = ProtoField.uint16("fgcp.magic", "Magic", base.HEX),
    mode = ProtoField.uint8("fgcp.mode", "Mode", base.DEC, mode_names),
    flags = ProtoField.uint8("fgcp.flags", "Flags", base.HEX),
    flag_enc = ProtoField.bool("fgcp.flags.encrypted", "Encrypted", 8, nil, 0x01),
    flag_auth = ProtoField.bool("fgcp.flags.authenticated", "Authenticated", 8, nil, 0x02),
    group = ProtoField.string("fgcp.group", "Group name"),
    unknown1 = ProtoField.uint16("fgcp.unknown1", "Unknown", base.HEX),
    group_id = ProtoField.uint16("fgcp.group_id", "Group ID", base.DEC),
    unknown2 = ProtoField.bytes("fgcp.unknown2", "Unknown"),
    port = ProtoField.string("fgcp.port", "Heartbeat port"),
    revision = ProtoField.uint16("fgcp.revision", "Config revision", base.DEC),
    config_hash = ProtoField.uint16("fgcp.config_hash", "Config hash", base.HEX),
    serial = ProtoField.string("fgcp.serial", "Serial number"),
    tlv = ProtoField.none("fgcp.tlv", "TLV"),
    tlv_type = ProtoField.uint16("fgcp.tlv.type", "Type", base.HEX, tlv_names),
    tlv_len = ProtoField.uint16("fgcp.tlv.len", "Length", base.DEC),
    tlv_value = ProtoField.bytes("fgcp.tlv.value", "Value"),
    vcluster = ProtoField.uint8("fgcp.vcluster", "Vcluster ID", base.DEC),
    priority = ProtoField.uint8("fgcp.priority", "Priority", base.DEC),
    override = ProtoField.uint8("fgcp.override", "Override", base.DEC, { [0] = "disable", [1] = "enable" }),
    if_count = ProtoField.uint16("fgcp.interfaces.count", "Interface count", base.DEC),
    iface = ProtoField.none("fgcp.iface", "Interface"),
    if_name = ProtoField.string("fgcp.iface.name", "Name"),
    if_mac = ProtoField.ether("fgcp.iface.mac", "MAC"),
    if_flags = ProtoField.uint8("fgcp.iface.flags", "Flags", base.HEX),
    if_admin = ProtoField.bool("fgcp.iface.admin_up", "Admin up", 8, nil, 0x01),
    if_oper = ProtoField.bool("fgcp.iface.oper_up", "Oper up", 8, nil, 0x02),
    if_mon = ProtoField.bool("fgcp.iface.monitored", "Monitored", 8, nil, 0x04),
    if_elig = ProtoField.bool("fgcp.iface.ha_eligible", "HA eligible", 8, nil, 0x08),
    checksum = ProtoField.bytes("fgcp.checksum", "Checksum"),
    uptime = ProtoField.uint64("fgcp.uptime_ms", "HA uptime (ms)", base.DEC),
    state = ProtoField.uint8("fgcp.state", "HA state", base.DEC, state_names),
    role = ProtoField.uint8("fgcp.role", "Role claimed", base.DEC, role_names),
    failed = ProtoField.uint16("fgcp.failed_monitors", "Failed monitored ports", base.DEC),
    monitored = ProtoField.uint16("fgcp.monitored", "Monitored ports", base.DEC),
    seq = ProtoField.uint64("fgcp.seq", "Sequence counter", base.DEC),
    hb_interval = ProtoField.uint8("fgcp.hb_interval", "hb-interval", base.DEC, nil, 0x7F),
    hb_unit = ProtoField.uint8("fgcp.hb_unit_10ms", "hb-interval in 10 ms units", base.DEC, nil, 0x80),
    hb_lost = ProtoField.uint8("fgcp.hb_lost_threshold", "hb-lost-threshold", base.DEC),
    holddown = ProtoField.uint16("fgcp.hello_holddown", "hello-holddown (s)", base.DEC),
    sync = ProtoField.uint8("fgcp.sync_complete", "Bulk sync complete", base.DEC),
    failover = ProtoField.uint8("fgcp.failover_set", "Failover set", base.DEC),
    member = ProtoField.string("fgcp.member", "Member seen"),
    resets = ProtoField.uint16("fgcp.uptime_resets", "Uptime resets", base.DEC),
    hostname = ProtoField.string("fgcp.hostname", "Hostname"),
    primary = ProtoField.string("fgcp.primary", "Primary (as seen by sender)"),
    auth = ProtoField.bytes("fgcp.auth", "HMAC-SHA256 trailer"),
    epoch = ProtoField.uint64("fgcp.epoch", "Epoch (random per run)", base.HEX),
    challenge = ProtoField.none("fgcp.challenge", "Challenge"),
    chal_serial = ProtoField.string("fgcp.challenge.serial", "Challenged serial"),
    chal_epoch = ProtoField.uint64("fgcp.challenge.epoch", "Challenged epoch", base.HEX),
    chal_nonce = ProtoField.uint64("fgcp.challenge.nonce", "Nonce", base.HEX),
    response = ProtoField.none("fgcp.response", "Response"),
    resp_serial = ProtoField.string("fgcp.response.serial", "Challenger serial"),
    resp_nonce = ProtoField.uint64("fgcp.response.nonce", "Nonce echoed", base.HEX),
}
local fl = {}
for _, v in pairs(f) do
    fl[#fl + 1] = v
end
p_hb.fields = fl

local e_malformed = ProtoExpert.new("fgcp.malformed", "Malformed FGCP heartbeat", expert.group.MALFORMED, expert.severity.ERROR)
p_hb.experts = { e_malformed }

local function cstr(range)
    -- ASCII up to the first NUL, never past the field (a 16-byte serial has none)
    local s = range:raw()
    local z = s:find("\0", 1, true)
    if z ~= nil then
        s = s:sub(1, z - 1)
    end
    return s
end

local function add_le_uint(tree, field, range)
    return tree:add_le(field, range)
end

local function dissect_interfaces(tvb, tree, off, len)
    if len < 2 then
        return
    end
    local count = tvb(off, 2):le_uint()
    tree:add_le(f.if_count, tvb(off, 2))
    if len == 2 then
        return
    end
    local zrange = tvb(off + 2, len - 2)
    local ok, raw = pcall(function()
        return zrange:uncompress("Interface records (zlib)")
    end)
    if not ok or raw == nil then
        return
    end
    for i = 0, count - 1 do
        local o = i * 23
        if o + 23 > raw:len() then
            break
        end
        local it = tree:add(f.iface, raw(o, 23))
        local name = cstr(raw(o, 16))
        it:append_text(": " .. name)
        it:add(f.if_name, raw(o, 16), name)
        it:add(f.if_mac, raw(o + 16, 6))
        local ft = it:add(f.if_flags, raw(o + 22, 1))
        ft:add(f.if_admin, raw(o + 22, 1))
        ft:add(f.if_oper, raw(o + 22, 1))
        ft:add(f.if_mon, raw(o + 22, 1))
        ft:add(f.if_elig, raw(o + 22, 1))
    end
end

-- value decoders by TLV type: function(tvb, tree, offset, length) -> summary text
local tlv_decoders = {
    [0x0B] = function(tvb, t, o) t:add(f.vcluster, tvb(o, 1)); return tostring(tvb(o, 1):uint()) end,
    [0x0C] = function(tvb, t, o) t:add(f.priority, tvb(o, 1)); return tostring(tvb(o, 1):uint()) end,
    [0x0D] = function(tvb, t, o) t:add(f.override, tvb(o, 1)); return tvb(o, 1):uint() ~= 0 and "enable" or "disable" end,
    [0x2A] = function(tvb, t, o, l) dissect_interfaces(tvb, t, o, l); return tostring(tvb(o, 2):le_uint()) .. " interfaces" end,
    [0x3C] = function(tvb, t, o)
        for i = 0, 2 do
            t:add(f.checksum, tvb(o + 16 * i, 16))
        end
        return ""
    end,
    [0x80] = function(tvb, t, o) add_le_uint(t, f.uptime, tvb(o, 8)); return tostring(tvb(o, 8):le_uint64()) .. " ms" end,
    [0x81] = function(tvb, t, o) t:add(f.state, tvb(o, 1)); return state_names[tvb(o, 1):uint()] or "?" end,
    [0x82] = function(tvb, t, o) t:add(f.role, tvb(o, 1)); return role_names[tvb(o, 1):uint()] or "?" end,
    [0x83] = function(tvb, t, o)
        add_le_uint(t, f.failed, tvb(o, 2))
        add_le_uint(t, f.monitored, tvb(o + 2, 2))
        return tvb(o, 2):le_uint() .. "/" .. tvb(o + 2, 2):le_uint() .. " failed"
    end,
    [0x84] = function(tvb, t, o) add_le_uint(t, f.seq, tvb(o, 8)); return tostring(tvb(o, 8):le_uint64()) end,
    [0x85] = function(tvb, t, o)
        t:add(f.hb_interval, tvb(o, 1))
        t:add(f.hb_unit, tvb(o, 1))
        t:add(f.hb_lost, tvb(o + 1, 1))
        add_le_uint(t, f.holddown, tvb(o + 2, 2))
        return ""
    end,
    [0x86] = function(tvb, t, o) t:add(f.sync, tvb(o, 1)); return tvb(o, 1):uint() ~= 0 and "yes" or "pending" end,
    [0x87] = function(tvb, t, o) t:add(f.failover, tvb(o, 1)); return tvb(o, 1):uint() ~= 0 and "set" or "unset" end,
    [0x88] = function(tvb, t, o, l)
        for i = 0, math.floor(l / 16) - 1 do
            t:add(f.member, tvb(o + 16 * i, 16), cstr(tvb(o + 16 * i, 16)))
        end
        return tostring(math.floor(l / 16))
    end,
    [0x89] = function(tvb, t, o) add_le_uint(t, f.resets, tvb(o, 2)); return tostring(tvb(o, 2):le_uint()) end,
    [0x8A] = function(tvb, t, o, l) t:add(f.hostname, tvb(o, l)); return tvb(o, l):string() end,
    [0x8B] = function(tvb, t, o) t:add(f.primary, tvb(o, 16), cstr(tvb(o, 16))); return cstr(tvb(o, 16)) end,
    [0x8C] = function(tvb, t, o) add_le_uint(t, f.epoch, tvb(o, 8)); return tvb(o, 8):le_uint64():tohex(16) end,
    [0x8D] = function(tvb, t, o, l)
        for i = 0, math.floor(l / 32) - 1 do
            local r = tvb(o + 32 * i, 32)
            local ct = t:add(f.challenge, r)
            ct:add(f.chal_serial, r(0, 16), cstr(r(0, 16)))
            add_le_uint(ct, f.chal_epoch, r(16, 8))
            add_le_uint(ct, f.chal_nonce, r(24, 8))
            ct:append_text(": " .. cstr(r(0, 16)))
        end
        return tostring(math.floor(l / 32))
    end,
    [0x8E] = function(tvb, t, o, l)
        for i = 0, math.floor(l / 24) - 1 do
            local r = tvb(o + 24 * i, 24)
            local rt = t:add(f.response, r)
            rt:add(f.resp_serial, r(0, 16), cstr(r(0, 16)))
            add_le_uint(rt, f.resp_nonce, r(16, 8))
            rt:append_text(": " .. cstr(r(0, 16)))
        end
        return tostring(math.floor(l / 24))
    end,
}
-- expected lengths of the fixed-size TLVs: others are shown raw, never misread
local tlv_fixed = {
    [0x0B] = 1, [0x0C] = 1, [0x0D] = 1, [0x3C] = 48, [0x80] = 8, [0x81] = 1, [0x82] = 1,
    [0x83] = 4, [0x84] = 8, [0x85] = 4, [0x86] = 1, [0x87] = 1, [0x89] = 2, [0x8B] = 16, [0x8C] = 8,
}

function p_hb.dissector(tvb, pinfo, tree)
    local n = tvb:len()
    if n < 88 or tvb(0, 2):le_uint() ~= HB_MAGIC then
        return 0
    end
    pinfo.cols.protocol = "FGCP-HB"
    local root = tree:add(p_hb, tvb())
    root:add_le(f.magic, tvb(0, 2))
    root:add(f.mode, tvb(2, 1))
    local flags = tvb(3, 1):uint()
    local ft = root:add(f.flags, tvb(3, 1))
    ft:add(f.flag_enc, tvb(3, 1))
    ft:add(f.flag_auth, tvb(3, 1))
    local group = cstr(tvb(4, 32))
    root:add(f.group, tvb(4, 32), group)
    root:add_le(f.unknown1, tvb(36, 2))
    root:add_le(f.group_id, tvb(38, 2))
    root:add(f.unknown2, tvb(40, 12))
    local port = cstr(tvb(52, 16))
    root:add(f.port, tvb(52, 16), port)
    root:add_le(f.revision, tvb(68, 2))
    root:add_le(f.config_hash, tvb(70, 2))
    local serial = cstr(tvb(72, 16))
    root:add(f.serial, tvb(72, 16), serial)

    local info = string.format("Cluster: %s(%d) SN: %s port: %s", group, tvb(38, 2):le_uint(), serial, port)
    local tend = n
    if bit.band(flags, 0x02) ~= 0 then
        tend = n - 32
    end
    local off = 88
    while off + 4 <= tend do
        local ttype = tvb(off, 2):le_uint()
        local tlen = tvb(off + 2, 2):le_uint()
        if off + 4 + tlen > tend then
            root:add_proto_expert_info(e_malformed, "TLV runs past the end of the frame")
            break
        end
        local tt = root:add(f.tlv, tvb(off, 4 + tlen))
        tt:add_le(f.tlv_type, tvb(off, 2))
        tt:add_le(f.tlv_len, tvb(off + 2, 2))
        local name = tlv_names[ttype] or string.format("unknown 0x%02x", ttype)
        local text = ""
        local dec = tlv_decoders[ttype]
        local want = tlv_fixed[ttype]
        if tlen > 0 then
            tt:add(f.tlv_value, tvb(off + 4, tlen))
        end
        if dec ~= nil and (want == nil or want == tlen) and (ttype ~= 0x2A or tlen >= 2) then
            text = dec(tvb, tt, off + 4, tlen) or ""
            if ttype == 0x0C then
                info = info .. " prio: " .. text
            elseif ttype == 0x81 then
                info = info .. " " .. text
            end
        end
        tt:set_text(string.format("TLV %s (t=0x%02x, l=%d)%s", name, ttype, tlen, text ~= "" and (": " .. text) or ""))
        off = off + 4 + tlen
        if ttype == 0 then
            break
        end
    end
    if bit.band(flags, 0x02) ~= 0 and n >= 120 then
        root:add(f.auth, tvb(n - 32, 32))
    end
    pinfo.cols.info = info
    return n
end

-- Session sync (0x8892) is decoded by wireshark/fgcp_sync.lua (its own Proto
-- "fgcp_sync"); load both:  -X lua_script:wireshark/fgcp.lua -X lua_script:wireshark/fgcp_sync.lua
-- This table is the hook for further ethertypes of the lab (0x8891, 0x8893, ...).
FGCP_LAB_ETHERTYPES = FGCP_LAB_ETHERTYPES or {}
FGCP_LAB_ETHERTYPES[0x8890] = p_hb

DissectorTable.get("ethertype"):add(0x8890, p_hb)
