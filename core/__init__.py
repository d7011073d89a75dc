"""What every process shares: configuration, the store, the session state machine, CDP, snapshots, task dispatch.

``app/`` (the API), ``tasks/`` (the worker) and ``proxy/`` (the relay) stand on
this package and never on each other; the import-linter contract in
pyproject.toml fails the test command if that changes. Nothing here imports them.
"""
