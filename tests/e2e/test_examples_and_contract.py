"""The documents a newcomer reads say what the running service does: docs/API.md and the README's examples."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support.processes import ROOT

API_MD = ROOT / "docs" / "API.md"
#: flask-smorest's own schemas: the error shape and the X-Pagination header, described in API.md's prose.
FRAMEWORK_SCHEMAS = {"Error", "PaginationMetadata"}


def test_api_md_describes_every_operation_and_field_the_service_serves(api):
    spec = api.get("/openapi.json").json()
    contract = API_MD.read_text()
    missing = []
    for path, operations in spec["paths"].items():
        # Ids read as ``:id``; other parameters by their own name (``:name``).
        documented_path = re.sub(r"\{(\w+)\}", lambda m: ":id" if m[1].endswith("id") else f":{m[1]}", path)
        for method in operations.keys() - {"parameters"}:
            if not re.search(rf"{method.upper()} {re.escape(documented_path)}(?![\w/:])", contract):
                missing.append(f"{method.upper()} {documented_path}")
    for name, schema in spec["components"]["schemas"].items():
        if name in FRAMEWORK_SCHEMAS:
            continue
        for field in schema.get("properties", {}):
            if f"`{field}`" not in contract and f'"{field}"' not in contract:
                missing.append(f"{name}.{field}")
    assert not missing, f"served but not in docs/API.md: {missing}"


README = ROOT / "README.md"
#: A README code block marked to be run: ``<!-- example: <command> -->`` right above its fence.
EXAMPLE = re.compile(r"<!-- example: (?P<command>[^>]+?) -->\n```\w+\n(?P<code>.*?)```", re.S)


def readme_examples() -> dict[str, str]:
    return {m["command"]: m["code"] for m in EXAMPLE.finditer(README.read_text())}


def session_states(api) -> dict[str, dict]:
    return {s["id"]: s for s in api.get("/v1/sessions").json()}


def test_the_readme_marks_its_curl_puppeteer_and_playwright_examples():
    assert set(readme_examples()) == {"sh", "node example.mjs", "python example.py"}
    visible = re.sub(r"<!--.*?-->", "", README.read_text(), flags=re.S)
    assert "`node example.mjs`" in visible and "`python example.py`" in visible


@pytest.mark.parametrize("command", sorted(readme_examples()))
def test_readme_example_runs_as_written_and_deletes_what_it_creates(command, broker, api, tmp_path):
    """Run as the README says: the block saved under the name its command gives, with BROKER and KEY set."""
    code = readme_examples()[command]
    if command == "sh":
        argv = ["sh", "-ec", code]
    else:
        program, file_name = command.split()
        (tmp_path / file_name).write_text(code)
        # What `npm install puppeteer-core@24` gives: the suite's own pinned copy.
        (tmp_path / "node_modules").symlink_to(ROOT / "tests" / "js" / "node_modules")
        argv = [sys.executable if program == "python" else program, file_name]
    before = session_states(api)
    ran = subprocess.run(argv, cwd=tmp_path, env={**os.environ, "BROKER": broker.url, "KEY": broker.api_key},
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ('"status":"running"' if command == "sh" else '{"status":"ok"}') in ran.stdout, ran.stdout
    created = [session_id for session_id in session_states(api) if session_id not in before]
    assert len(created) == 1
    stopped = api.wait_status(created[0], "stopped")
    assert stopped["stopReason"] == "deleted"
