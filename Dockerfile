# fgcp-lab in a privileged container (Mininet needs network namespaces, veths
# and Open vSwitch's userspace datapath; no kernel module is required).
#
#   docker build -t fgcp-lab .
#   docker run --rm -it --privileged fgcp-lab make demo
#   docker run --rm -it --privileged fgcp-lab make test
#   docker run --rm -it --privileged fgcp-lab scripts/lab-topo --members 2
#
# --privileged is required (netns, veth, nftables, AF_PACKET, bridges).
# Open vSwitch is started by scripts/setup-host.sh, which every make target runs.
FROM debian:12

ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
WORKDIR /opt/fgcp-lab
COPY requirements.txt setup.py pyproject.toml Makefile ./
COPY scripts/ scripts/
# Package skeletons so that `pip install -e .` in setup-host.sh finds them.
COPY fgcp/ fgcp/
COPY inspection/ inspection/
COPY topologies/ topologies/
COPY lab/ lab/
# Debian packages + .venv + pinned requirements (OVS start is retried at run time).
RUN scripts/setup-host.sh || test -x .venv/bin/python
COPY . .
CMD ["make", "demo"]
