"""ZTNA lab tools: trust material (pki), the EMS stand-in (ems), the FortiClient-like
TCP-forwarding client (client) and a kernel-socket reference access proxy (refproxy).
"""
