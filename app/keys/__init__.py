"""API keys: created, listed, revoked and rotated by operators (CLI) and by keys:admin keys (API)."""
