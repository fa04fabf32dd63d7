"""Declared schema of a member's FortiOS-style configuration and its loader.

One module per ``config <path>`` family (system.py, router.py, firewall.py: Section +
builder), values.py/schema.py/reader.py the vocabulary, loader.py the ``TABLES`` list,
summary.py and cli.py ``check-config``.  Adding a table: docs/architecture.md.
"""

from fgcp.config.cli import check_config, main
from fgcp.config.firewall import IPS_SENSORS, predefined_addresses, predefined_services
from fgcp.config.loader import SCHEMA, TABLES, load_config, parse_config
from fgcp.config.summary import summarize
from fgcp.confparse import ConfigError

__all__ = [
    "IPS_SENSORS",
    "SCHEMA",
    "TABLES",
    "ConfigError",
    "check_config",
    "load_config",
    "main",
    "parse_config",
    "predefined_addresses",
    "predefined_services",
    "summarize",
]
