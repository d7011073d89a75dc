"""The CDP relay and the web process that serves it beside the API."""
