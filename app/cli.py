"""Operator commands: ``python -m app keys create | list | revoke | rotate``, ``python -m app projects set``.

A key is printed once (create, rotate) on standard output and nowhere else;
``list`` shows everything about keys but the keys.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime

from app.keys import service
from core.config import load
from core.ids import iso_at
from core.store import ALL_SCOPES, DEFAULT_PROJECT, Store

LIST_COLUMNS = ("id", "name", "project", "scopes", "createdAt", "lastUsedAt", "expiresAt")


def parse_scopes(text: str) -> list[str]:
    scopes = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown or not scopes:
        raise argparse.ArgumentTypeError(f"scopes must be among {', '.join(ALL_SCOPES)}; got {', '.join(unknown) or 'none'}")
    return scopes


def parse_moment(text: str) -> float:
    """An ISO-8601 moment with an offset (``2030-01-01T00:00:00Z``) as Unix seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 date-time: {text}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give an offset or Z, as in 2030-01-01T00:00:00Z")
    return moment.timestamp()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="Browser Broker operator commands.")
    commands = parser.add_subparsers(dest="command", required=True)
    keys = commands.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", type=parse_scopes, default=list(ALL_SCOPES), help="comma-separated; default all")
    create.add_argument("--project", default=DEFAULT_PROJECT, help="the tenant the key's resources belong to")
    create.add_argument("--expires-at", type=parse_moment, help="ISO-8601 moment the key stops working; default never")
    listing = keys.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--project", help="only this project's keys; default every project's")
    revoke = keys.add_parser("revoke", help="revoke a key at once, on every web process")
    revoke.add_argument("key_id", help="the key's id (key_…), as keys list shows it")
    rotate = keys.add_parser("rotate", help="replace a key by a new one (same name, project, scopes, expiry) and revoke it")
    rotate.add_argument("key_id", help="the key's id (key_…)")
    projects = commands.add_parser("projects", help="projects (tenants)").add_subparsers(dest="action", required=True)
    settings = projects.add_parser("set", help="change a project's settings")
    settings.add_argument("--project", default=DEFAULT_PROJECT)
    settings.add_argument("--max-sessions", type=int, required=True, help="sessions at once; 0 for no limit")
    return parser


def _print_keys(store: Store, project: str | None) -> None:
    rows, start = [], 0
    while True:
        page, total = store.api_keys.page(project, start, 500)
        rows += [service.public(r, with_project=True) for r in page]
        start += 500
        if start >= total or not page:
            break
    print("\t".join(LIST_COLUMNS))
    for row in rows:
        print("\t".join(",".join(v) if isinstance(v, list) else (v or "-") for v in (row[c] for c in LIST_COLUMNS)))


def _keys(store: Store, args: argparse.Namespace) -> int:
    if args.action == "list":
        _print_keys(store, args.project)
        return 0
    if args.action == "revoke":
        if service.revoke(store, args.key_id) is None:
            print(f"no key {args.key_id}", file=sys.stderr)
            return 1
        print(f"{args.key_id} revoked", file=sys.stderr)
        return 0
    if args.action == "rotate":
        rotated = service.rotate(store, args.key_id)
        if rotated is None:
            print(f"no key {args.key_id}", file=sys.stderr)
            return 1
        api_key, record = rotated
    else:
        api_key, record = service.create(store, name=args.name, project=args.project, scopes=args.scopes,
                                         expires_epoch=args.expires_at)
    print(api_key)
    expiry = f" expires={iso_at(record['expiresEpoch'])}" if record.get("expiresEpoch") is not None else ""
    print(f"id={record['id']} project={record['project']} scopes={','.join(record['scopes'])}{expiry} "
          "(shown once; only its hash is stored)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    store = Store(load())
    if args.command == "projects":
        print(store.projects.set_settings(args.project, maxSessions=max(0, args.max_sessions)))
        return 0
    return _keys(store, args)
