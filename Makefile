# fgcp-lab entry points.  Every target runs the idempotent host set-up first
# (root: Debian packages, .venv, pip install, userspace Open vSwitch).

VENV   := .venv
PY     := $(VENV)/bin/python
SUDO   := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: setup demo topo-demo test lint typecheck unit mininet

setup:
	$(SUDO) scripts/setup-host.sh

# Default demo: the failover experiment of lab/scenarios/default.yaml (SIGKILL of the
# primary under TCP/UDP/ICMP traffic, session pickup on): live progress, summary table,
# JSON + PNG + HTML under results/; exits non-zero if a TCP stream was lost.
demo: setup
	$(SUDO) $(VENV)/bin/fgcp-lab run lab/scenarios/default.yaml

# The previous demo: lab up, ping + UDP + TCP c1 -> sv1 through fgt1, session list, down.
topo-demo: setup
	$(SUDO) $(VENV)/bin/fgcp-lab topo --demo

lint: setup
	$(VENV)/bin/ruff check .

# mypy --strict (pyproject.toml [tool.mypy]): the member package, the umbrella CLI, the lab,
# the topologies and the inspection engines (tests/ not yet); the only relaxations are per
# module, for the untyped Mininet, os-ken, pyiec61850 and asn1tools (see the
# [[tool.mypy.overrides]] there).
TYPED := fgcp fgcplab lab topologies inspection
typecheck: setup
	$(VENV)/bin/mypy --strict $(TYPED)

# Whole suite: lint, unit tests (no root) and Mininet tests (root).
test: setup
	$(VENV)/bin/ruff check .
	$(MAKE) --no-print-directory typecheck
	$(SUDO) $(VENV)/bin/pytest -q tests

unit: setup
	$(VENV)/bin/pytest -q tests/unit

mininet: setup
	$(SUDO) $(VENV)/bin/pytest -q tests/mininet
