#!/bin/bash
# Prepares a Debian 12 host (or a privileged container) for fgcp-lab, as root.
# Idempotent: installs only missing Debian packages, creates .venv once,
# pip-installs only when requirements.txt/setup.py changed, starts Open vSwitch
# (userspace datapath) only when it is not running.  Safe to run twice.
# FGCP_SETUP_NO_OVS=1 skips the Open vSwitch step (image builds).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
STAMP="$VENV/.fgcp-lab-installed"
PACKAGES=(mininet openvswitch-switch tshark iperf3 ethtool nftables conntrackd conntrack
          keepalived iproute2 iputils-ping python3-venv make tcpdump procps)
OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl

say() { echo "setup-host: $*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-host: must run as root (try: sudo $0)" >&2
    exit 1
fi

# 1. Debian packages ----------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    say "Debian packages present"
fi

# 2. Python virtual environment (sees Debian's mininet module) ----------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
if ! grep -q "include-system-site-packages = true" "$VENV/pyvenv.cfg"; then
    echo "setup-host: $VENV was made without --system-site-packages (mininet invisible);" \
         "remove it and run again" >&2
    exit 1
fi

# 3. Python packages: pinned requirements + this project (editable) ----------
want="$(cat "$REPO/requirements.txt" "$REPO/setup.py" | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
importable() { (cd / && "$VENV/bin/python" -c "import fgcp, topologies, mininet, os_ken") 2>/dev/null; }
if [ "$want" != "$have" ] || ! importable; then
    say "pip install -r requirements.txt -e ."
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REPO/requirements.txt"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$REPO"
    echo "$want" > "$STAMP"
else
    say "Python packages up to date"
fi

# 4. Open vSwitch, userspace datapath -----------------------------------------
if [ "${FGCP_SETUP_NO_OVS:-0}" = 1 ]; then
    say "FGCP_SETUP_NO_OVS=1: not starting Open vSwitch (e.g. docker build)"
    exit 0
fi
vswitchd_running() { ovs-appctl -t ovs-vswitchd version >/dev/null 2>&1; }
if ovs-vsctl --timeout=5 show >/dev/null 2>&1 && vswitchd_running; then
    say "Open vSwitch running"
else
    say "starting Open vSwitch"
    # ovs-ctl starts ovsdb-server, then tries to load the kernel module before
    # ovs-vswitchd: without module support it skips that; on a kernel that has
    # module support but no openvswitch module it gives up, so fall back to
    # starting ovs-vswitchd ourselves (the userspace datapath needs no module).
    "$OVS_CTL" start --system-id=random || true
    if ! vswitchd_running; then
        "$OVS_CTL" --no-ovs-vswitchd start --system-id=random
        mkdir -p /var/run/openvswitch /var/log/openvswitch
        ovs-vswitchd unix:/var/run/openvswitch/db.sock -vconsole:emer -vsyslog:err \
            -vfile:info --no-chdir --log-file=/var/log/openvswitch/ovs-vswitchd.log \
            --pidfile=/var/run/openvswitch/ovs-vswitchd.pid --detach --monitor
    fi
fi
# Prove the userspace datapath works: add and delete a netdev bridge.
probe="fgcpprobe$$"
if ! ovs-vsctl --timeout=10 add-br "$probe" -- set bridge "$probe" datapath_type=netdev; then
    echo "setup-host: Open vSwitch cannot create a userspace (netdev) bridge" >&2
    exit 1
fi
ovs-vsctl --timeout=10 del-br "$probe"
say "Open vSwitch userspace datapath OK ($(ovs-vsctl --version | head -1))"
say "done"
