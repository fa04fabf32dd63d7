"""ZTNA access proxy engines, pure (bytes and ``now`` in, decisions and state out):
verify (device trust + sync record), channel (AEAD data channel), tlsend (memory-BIO mTLS),
connect (connect request), proxyconn (one proxied connection, proxy side).
"""
