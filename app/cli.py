"""Operator commands: ``python -m app keys create --name N --scopes a,b``, ``python -m app projects set …``."""
from __future__ import annotations

import argparse
import secrets
import sys

from core.config import load
from core.store import ALL_SCOPES, DEFAULT_PROJECT, Store

KEY_PREFIX = "bb_"


def parse_scopes(text: str) -> list[str]:
    scopes = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown or not scopes:
        raise argparse.ArgumentTypeError(f"scopes must be among {', '.join(ALL_SCOPES)}; got {', '.join(unknown) or 'none'}")
    return scopes


def create_key(store: Store, name: str, project: str, scopes: list[str]) -> str:
    """The key is shown once; only its hash is stored."""
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    store.api_keys.put(api_key, name=name, project=project, scopes=scopes)
    return api_key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description="Browser Broker operator commands.")
    commands = parser.add_subparsers(dest="command", required=True)
    keys = commands.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", type=parse_scopes, default=list(ALL_SCOPES), help="comma-separated; default all")
    create.add_argument("--project", default=DEFAULT_PROJECT, help="the tenant the key's resources belong to")
    projects = commands.add_parser("projects", help="projects (tenants)").add_subparsers(dest="action", required=True)
    settings = projects.add_parser("set", help="change a project's settings")
    settings.add_argument("--project", default=DEFAULT_PROJECT)
    settings.add_argument("--max-sessions", type=int, required=True, help="sessions at once; 0 for no limit")
    args = parser.parse_args(argv)
    store = Store(load())
    if args.command == "projects":
        print(store.projects.set_settings(args.project, maxSessions=max(0, args.max_sessions)))
        return 0
    api_key = create_key(store, args.name, args.project, args.scopes)
    print(api_key)
    print(f"project={args.project} scopes={','.join(args.scopes)} (shown once; only its hash is stored)", file=sys.stderr)
    return 0
