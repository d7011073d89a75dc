"""Browser extensions a project uploads for its sessions (POST/GET/DELETE /v1/extensions)."""
