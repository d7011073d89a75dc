"""A create's browser options (and whether it records): the project's stored defaults under the create's own,
extensions checked."""
from __future__ import annotations

from flask_smorest import abort

from app.extensions import secret_box
from core.browser_options import OPTION_NAMES, merged, sealed
from core.store import Store

#: The project setting (core.store.projects) that holds its default create options.
DEFAULTS = "sessionDefaults"
#: The create option the defaults hold beside the browser options: a create's own ``recording`` wins, then the
#: project's default, then BROKER_RECORDING.
RECORDING = "recording"


def recording_for(store: Store, deployment_default: bool, project: str, body: dict) -> bool:
    """Whether the session is recorded: the create's say, else the project's default, else the deployment's."""
    if body.get(RECORDING) is not None:
        return body[RECORDING]
    project_default = (store.projects.settings(project).get(DEFAULTS) or {}).get(RECORDING)
    return deployment_default if project_default is None else project_default


def for_create(store: Store, project: str, body: dict) -> dict:
    """What the session's browser gets; an extension the project does not have (another project's included) is a
    404 before anything is claimed, as an unknown context or proxy is."""
    options = merged(store.projects.settings(project).get(DEFAULTS) or {},
                     sealed({name: body[name] for name in OPTION_NAMES if name in body}, secret_box()))
    missing = store.extensions.missing(project, options.get("extensionIds") or [])
    if missing:
        abort(404, message=f"No extension {missing[0]} in this project.")
    return options
