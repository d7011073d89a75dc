"""The README a newcomer follows: short, its two commands, every variable anything reads in its table, links in the repository."""
from __future__ import annotations

import re

from tests.support.processes import ROOT

README = ROOT / "README.md"
#: Issue 24: the README says what it is, how to run, use, configure, operate and secure it; the architecture
#: and the benchmarks live in docs/ARCHITECTURE.md and docs/BENCHMARKS.md.
MAX_LINES = 400
#: The shell's own variables, which scripts use but nobody configures (SECONDS: bash's clock, for set-up timings).
SHELL_VARIABLES = {"PATH", "PWD", "SECONDS"}


def variables_read() -> dict[str, set[str]]:
    """Each variable, with the files that read it: core/config.py's documented fields, the scripts, Procfile, compose."""
    found: dict[str, set[str]] = {}
    config = (ROOT / "core" / "config.py").read_text()
    for name in re.findall(r"#: ([A-Z][A-Z0-9_]+):", config):
        found.setdefault(name, set()).add("core/config.py")
    for path in [*sorted((ROOT / "scripts").glob("*.sh")), ROOT / "Procfile", ROOT / "docker-compose.yml"]:
        for name in set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", path.read_text())) - SHELL_VARIABLES:
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_configuration_table_lists_every_variable_the_code_scripts_procfile_and_compose_read():
    table = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", README.read_text(), re.M))
    read = variables_read()
    assert "BROKER_REDIS_PORT" in read and "FLOWER_PORT" in read and "REDIS_URL" in read
    missing = {name: sorted(files) for name, files in read.items() if name not in table}
    assert not missing, f"read but not in the README's configuration table: {missing}"
    assert not table - read.keys(), f"in the table but read by nothing: {table - read.keys()}"


def test_readme_links_point_at_files_in_the_repository():
    targets = re.findall(r"\]\(([^)#]+)\)", README.read_text())
    local = [t for t in targets if "://" not in t]
    assert "docs/API.md" in local
    assert not [t for t in local if not (ROOT / t).resolve().is_relative_to(ROOT) or not (ROOT / t).exists()]
    assert "../shared" not in README.read_text()


def test_readme_is_at_most_400_lines_and_leaves_architecture_and_figures_to_docs():
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_LINES, f"README.md has {len(text.splitlines())} lines, at most {MAX_LINES}"
    assert "(docs/ARCHITECTURE.md)" in text and "(docs/BENCHMARKS.md)" in text


def test_readme_gives_the_two_commands_and_ci_runs_the_test_command():
    text = README.read_text()
    assert "\nbash scripts/serve.sh " in text and "\nbash scripts/test.sh " in text
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text().splitlines()
