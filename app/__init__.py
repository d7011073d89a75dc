"""The HTTP API: create_app() wires configuration, the store, the OpenAPI Api and the blueprints."""
from __future__ import annotations

from collections.abc import Sequence

import swagger_ui_bundle
from flask import Blueprint, Flask
from prometheus_client.registry import Collector

from app import auth, docs, errors, limits, metrics, routing
from core.config import Config, load
from app.extensions import api
from core.browser_link import BrowserLinks
from app.files.service import SessionFiles
from core.crypto import SecretBox
from core.download_archive import DownloadArchive
from core.egress import EgressPolicy
from core.snapshots import open_snapshot_store
from core.dispatch import Dispatcher, make_celery
from core.session_machine import SessionMachine
from core.store import ALL_SCOPES, DEFAULT_PROJECT, Store
from core.tokens import ConnectTokens, LiveViewTokens

API_VERSION = "1.0.0"
SWAGGER_UI_ASSETS = "/docs/assets/"


def create_app(config: Config | None = None, store: Store | None = None, collectors: Sequence[Collector] = ()) -> Flask:
    """``collectors``: figures /metrics shows besides the store's (the web process adds its relay's)."""
    config = config or load()
    store = store or Store(config)
    app = Flask(__name__)
    app.config.update(
        API_TITLE="Browser Broker",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        # Served from the installed swagger-ui-bundle, so /docs works on a network with no way out.
        OPENAPI_SWAGGER_UI_URL=SWAGGER_UI_ASSETS,
        API_SPEC_OPTIONS={
            "info": {"description": (
                "Running Chromium browsers over a REST API. Every /v1 call carries `X-API-Key`. A session's "
                "`cdpUrl` carries its connect token (`?token=`): the credential that opens the browser's CDP "
                "socket, apart from the session id, which opens nothing alone. Errors are JSON "
                "`{code, status, message[, errors]}`; each operation lists every status it can answer."
            )},
            "security": [{"ApiKey": []}],
            "components": {"securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}},
        },
    )
    app.extensions["broker.config"] = config
    app.extensions["broker.store"] = store
    app.extensions["broker.machine"] = SessionMachine(store, Dispatcher(make_celery(config), config))
    # Refuses to build the app (so the web process to start) without BROKER_SECRET_KEY outside development.
    app.extensions["broker.secret_box"] = SecretBox.from_config(config)
    app.extensions["broker.connect_tokens"] = ConnectTokens.from_config(config)
    app.extensions["broker.live_view_tokens"] = LiveViewTokens.from_config(config)
    # A typo in BROKER_EGRESS_ALLOW stops the web process here, rather than at the first proxy check.
    app.extensions["broker.egress"] = EgressPolicy.parse(config.network.egress_allow)
    app.wsgi_app = limits.BodyLimit(app.wsgi_app, config.web.max_body_bytes, config.files.upload_max_bytes)
    app.extensions["broker.links"] = BrowserLinks.from_config(config)
    app.extensions["broker.files"] = SessionFiles(store, app.extensions["broker.links"],
                                                  DownloadArchive(open_snapshot_store(config)))
    auth.register(app)
    errors.register(app)
    api.init_app(app)
    routing.register(app, api)

    from app.browser_extensions.resources import blp as extensions_blp
    from app.contexts.resources import blp as contexts_blp
    from app.files.resources import blp as files_blp
    from app.health import blp as health_blp
    from app.keys.resources import blp as keys_blp
    from app.pages import blp as pages_blp
    from app.pages.replay import blp as replay_blp
    from app.proxies.resources import blp as proxies_blp
    from app.relay_info import blp as relay_blp, public_protocol, upgrades as relay_upgrades
    from app.session_defaults.resources import blp as session_defaults_blp
    from app.sessions.resources import blp as sessions_blp
    from app.proxies.schemas import PROXY_CREATE_RULES, ProxyCreateSchema
    from app.sessions.schemas import (
        CHECKPOINT_RULES, COOKIE_RULES, CookieSchema, SessionCreateSchema, state_header_names,
    )

    docs.register_schemas(api, {"Cookie": (CookieSchema, COOKIE_RULES),
                                "ProxyCreate": (ProxyCreateSchema, PROXY_CREATE_RULES),
                                "SessionCreate": (SessionCreateSchema, CHECKPOINT_RULES)})
    api.register_blueprint(sessions_blp)
    api.register_blueprint(files_blp)
    api.register_blueprint(proxies_blp)
    api.register_blueprint(contexts_blp)
    api.register_blueprint(keys_blp)
    api.register_blueprint(extensions_blp)
    api.register_blueprint(session_defaults_blp)
    api.register_blueprint(relay_blp)
    api.register_blueprint(public_protocol)
    docs.state_limits(api, config)
    state_header_names(api.spec.components.schemas)
    app.register_blueprint(health_blp)
    metrics.register(app, collectors)
    app.register_blueprint(relay_upgrades)
    app.register_blueprint(pages_blp)
    app.register_blueprint(replay_blp)
    app.register_blueprint(Blueprint("swagger_ui_assets", __name__, static_folder=swagger_ui_bundle.swagger_ui_path,
                                     static_url_path=SWAGGER_UI_ASSETS.rstrip("/")))

    if config.bootstrap_api_key:
        # Again whenever Redis loses it: auth.bootstrap_key_state.
        store.api_keys.ensure(config.bootstrap_api_key, name="bootstrap", project=DEFAULT_PROJECT, scopes=ALL_SCOPES)
    return app
