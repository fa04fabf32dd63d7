"""Starts os-ken apps (os-ken has no osken-manager command any more).

``python -m topologies.launcher --port P [--host 127.0.0.1] [--app MOD]... [--log FILE]``
runs ``os_ken.controller.ofp_handler`` plus the given apps until SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import sys

DEFAULT_APP = "topologies.controller"


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m topologies.launcher", description=__doc__)
    ap.add_argument("--port", type=int, required=True, help="OpenFlow TCP listen port")
    ap.add_argument("--host", default="127.0.0.1", help="OpenFlow listen address")
    ap.add_argument("--app", action="append", help=f"os-ken app module (default {DEFAULT_APP})")
    ap.add_argument("--log", help="log file (default: stderr)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO,
        filename=args.log,
        format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    # Imported here: os-ken registers its options and hub at import time.
    from os_ken import cfg
    from os_ken.base import app_manager
    from os_ken.controller import controller  # noqa: F401 - registers ofp_* options

    cfg.CONF(
        args=["--ofp-tcp-listen-port", str(args.port), "--ofp-listen-host", args.host],
        project="os_ken",
    )
    apps = ["os_ken.controller.ofp_handler", *(args.app or [DEFAULT_APP])]
    logging.getLogger("fgcp.launcher").info(
        "starting %s on %s:%d", " ".join(apps), args.host, args.port
    )
    app_manager.AppManager.run_apps(apps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
