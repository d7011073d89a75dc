"""A project's default create options (GET/PUT /v1/session-defaults)."""
