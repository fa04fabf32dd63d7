# fgcp-lab in a privileged container (Mininet needs network namespaces, veths
# and Open vSwitch's userspace datapath; no kernel module is required).
#
#   docker build -t fgcp-lab .
#   docker run --rm -it --privileged fgcp-lab                 # make demo
#   docker run --rm --privileged fgcp-lab make test
#   docker run --rm -it --privileged fgcp-lab scripts/lab-topo --members 2
#
# --privileged is required (netns, veth, bridges, nftables, AF_PACKET).
# Open vSwitch is started at run time by scripts/setup-host.sh, which every
# make target runs first (idempotent; packages and .venv are already baked in).
FROM debian:12

ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
WORKDIR /opt/fgcp-lab
# Explicit copies: never pick up a host .venv from the build context.
COPY requirements.txt setup.py pyproject.toml Makefile ./
COPY .ci/ .ci/
COPY scripts/ scripts/
COPY fgcp/ fgcp/
COPY inspection/ inspection/
COPY topologies/ topologies/
COPY lab/ lab/
COPY tests/ tests/
COPY docs/ docs/
COPY wireshark/ wireshark/
COPY README.md ./
# No init system at build time: keep package scripts from starting services.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
RUN FGCP_SETUP_NO_OVS=1 scripts/setup-host.sh
CMD ["make", "demo"]
