"""Packaging of fgcp-lab: the emulated FortiGate member, inspection engines,
Mininet topologies and experiments; console scripts ``fgcpd`` and ``fgcp-lab``.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def requirements() -> list[str]:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="fgcp-lab",
    version="0.1.0",
    description="Packet-level lab emulator of FortiGate HA clustering (FGCP)",
    python_requires=">=3.11",
    packages=find_packages(include=["fgcp*", "inspection*", "topologies*", "lab*", "fgcplab*"]),
    package_data={"topologies": ["configs/*.conf"]},
    install_requires=requirements(),
    entry_points={
        "console_scripts": [
            "fgcpd = fgcp.daemon:main",
            "fgcp-lab = fgcplab.cli:main",
        ],
    },
)
