"""Settings for in-process tests, said as a deployment says them: by their environment variables."""
from __future__ import annotations

import os
from unittest import mock

from core.config import Config, load


def config_with(**variables: object) -> Config:
    """The Config a process started with these variables (beside the run's own environment) reads.

    Tests name settings by the variables the README documents, so a regrouping of
    core/config.py cannot leave a test setting a field that no longer exists.
    """
    with mock.patch.dict(os.environ, {name: str(value) for name, value in variables.items()}):
        return load()
