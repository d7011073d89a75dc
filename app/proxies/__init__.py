"""Saved upstream proxies a session's traffic can be routed through."""
