"""Every file or section the documents and the code's comments point at exists in the checkout.

Looked for in README.md and docs/*.md (all of their text), and in the comments and docstrings of the
code (app, core, tasks, proxy, bench, scripts, tests, and the deployment files at the top):
- a repository path: a top folder of this repository, then the rest (``tasks/chromium_flags.py``,
  ``tests/hosts/``), not inside a URL and not an absolute path (``/etc/…``, ``/tmp/…``, ``~/…``);
- a document by its bare name (``API.md``): at the top or in docs/;
- a Python file by its bare name (``pool.py``, as a folder's list of its modules names them): a file of
  this repository, wherever it is (NOT_OURS lists the few that name someone else's);
- a module by its dotted name (``core.states``, ``tasks.lifecycle.Housekeeping``): the module exists, and
  so does the first name after it, as a word of its source (so a renamed module or a moved constant shows);
- a README section cited as the README, a comma, then its name in double quotes: a heading or a bold
  paragraph lead of the README;
- a Markdown link of a document, relative to that document.
"""
from __future__ import annotations

import ast
import functools
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import ROOT

README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
CODE_FOLDERS = ["app", "core", "tasks", "proxy", "bench", "scripts", "tests"]
DEPLOYMENT_FILES = ["Dockerfile", "docker-compose.yml", "Procfile", "pyproject.toml", ".ci/run"]
#: Never read: installed packages, not the project's own text.
SKIPPED_PARTS = {"node_modules", "__pycache__"}
TOP_FOLDERS = "app|core|tasks|proxy|bench|scripts|tests|docs|\\.ci"

URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I)
PATH = re.compile(rf"(?<![\w./~$@-])((?:{TOP_FOLDERS})/[\w.-]*(?:/[\w.-]+)*/?)")
DOCUMENT_NAME = re.compile(r"(?<![\w./-])([\w-]+\.md)\b")
PYTHON_FILE = re.compile(r"(?<![\w./~$@-])(\w+\.py)\b")
FILE_NAME = re.compile(r"[\w.]+\.(?:py|md|json|sh|toml|ya?ml|m?js|html|css|txt|log)")
MODULE = re.compile(r"(?<![\w./-])((?:app|core|tasks|proxy|bench|tests)(?:\.[A-Za-z_]\w*)+)")
#: Python file names the text means as someone else's, never as a file of this repository.
NOT_OURS = {
    "example.py": "the user's own script in the README's examples",
    "proxy.py": "a proxy server on PyPI whose package would shadow the broker's proxy/ (tests/support/upstreams.py)",
}
SECTION = re.compile(r"""README, ["“]([^"”]+)["”]""")
LINK = re.compile(r"\]\(([^)#\s]+)")
HASH_COMMENT = re.compile(r"(?:^|\s)#(.*)$", re.M)
SLASH_COMMENT = re.compile(r"(?:^|\s)//(.*)$|/\*(.*?)\*/", re.M | re.S)

@dataclass(frozen=True)
class Reference:
    file: str  # the file that names it, relative to the repository
    line: int
    target: str  # as named: a path, a document name, a README section or a link

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.target}"


def prose_of_python(text: str) -> list[tuple[int, str]]:
    """Comments and every bare string statement (docstrings, attribute docs), with their first line."""
    found = [(token.start[0], token.string) for token in tokenize.generate_tokens(io.StringIO(text).readline)
             if token.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            found.append((node.lineno, node.value.value))
    return found


def prose_of(path: Path) -> list[tuple[int, str]]:
    """What a file says to a reader, as (line, text): a document whole, code by its comments and docstrings."""
    text = path.read_text()
    if path.suffix == ".md":
        return [(1, text)]
    if path.suffix == ".py":
        return prose_of_python(text)
    if path.suffix in (".mjs", ".js"):
        pattern = SLASH_COMMENT
    elif path.suffix in (".sh", ".toml", ".yml", ".yaml", ".cfg", ".ini", ".txt", ""):
        pattern = HASH_COMMENT
    else:
        return []
    comments = []
    for match in pattern.finditer(text):
        group = next(i for i, g in enumerate(match.groups(), 1) if g is not None)
        comments.append((text.count("\n", 0, match.start(group)) + 1, match[group]))
    return comments


def line_of(text: str, first_line: int, offset: int) -> int:
    return first_line + text.count("\n", 0, offset)


def files_read() -> list[Path]:
    code = [path for folder in CODE_FOLDERS for path in sorted((ROOT / folder).rglob("*"))
            if path.is_file() and not SKIPPED_PARTS & set(path.relative_to(ROOT).parts)]
    return [*DOCUMENTS, *code, *(ROOT / name for name in DEPLOYMENT_FILES if (ROOT / name).is_file())]


@functools.cache
def python_file_names() -> frozenset[str]:
    files = [*ROOT.glob("*.py"), *(path for folder in CODE_FOLDERS for path in (ROOT / folder).rglob("*.py"))]
    return frozenset(path.name for path in files if not SKIPPED_PARTS & set(path.relative_to(ROOT).parts))


def module_exists(dotted: str) -> bool:
    """``a.b.c``: the longest run of packages and a module, then (if any name is left) that name in its source."""
    path = ROOT
    parts = dotted.split(".")
    for index, part in enumerate(parts):
        if (path / part).is_dir():
            path = path / part
            continue
        source = path / f"{part}.py"
        if source.is_file():
            rest = parts[index + 1:]
            return not rest or re.search(rf"\b{re.escape(rest[0])}\b", source.read_text()) is not None
        init = path / "__init__.py"  # a name a package's __init__ defines or imports
        return init.is_file() and re.search(rf"\b{re.escape(part)}\b", init.read_text()) is not None
    return True


def readme_sections() -> list[str]:
    text = README.read_text()
    return [*re.findall(r"^#+\s+(.+)$", text, re.M), *re.findall(r"^\*\*([^*]+)\*\*", text, re.M)]


@functools.cache
def references() -> list[tuple[Reference, bool]]:
    """Every reference found, with whether what it names exists."""
    sections = [s.lower() for s in readme_sections()]
    found = []
    for path in files_read():
        name = str(path.relative_to(ROOT))
        for first_line, text in prose_of(path):
            for match in SECTION.finditer(text):
                exists = any(s.startswith(match[1].lower()) for s in sections)
                found.append((Reference(name, line_of(text, first_line, match.start()), match[0]), exists))
            if path.suffix == ".md":
                for match in LINK.finditer(text):
                    if "://" in match[1] or match[1].startswith("mailto:"):
                        continue
                    target = (path.parent / match[1]).resolve()
                    exists = target.is_relative_to(ROOT) and target.exists()
                    found.append((Reference(name, line_of(text, first_line, match.start()), match[1]), exists))
            text = URL.sub(lambda m: " " * len(m[0]), text)  # offsets kept for line numbers
            for match in PATH.finditer(text):
                target = match[1].rstrip(".")
                found.append((Reference(name, line_of(text, first_line, match.start()), target),
                              (ROOT / target).exists()))
            for match in PYTHON_FILE.finditer(text):
                found.append((Reference(name, line_of(text, first_line, match.start()), match[1]),
                              match[1] in python_file_names() or match[1] in NOT_OURS))
            for match in MODULE.finditer(text):
                target = match[1].rstrip(".")
                if FILE_NAME.fullmatch(target):  # proxy.py: a file name, taken above
                    continue
                found.append((Reference(name, line_of(text, first_line, match.start()), target), module_exists(target)))
            for match in DOCUMENT_NAME.finditer(text):
                exists = (ROOT / match[1]).exists() or (ROOT / "docs" / match[1]).exists()
                found.append((Reference(name, line_of(text, first_line, match.start()), match[1]), exists))
    return found


def broken() -> list[Reference]:
    return [reference for reference, exists in references() if not exists]


def test_the_search_finds_references_of_each_kind():
    found = {(r.file, r.target) for r, _ in references()}
    assert ("README.md", "docs/API.md") in found
    assert ("README.md", "tests/e2e/test_examples_and_contract.py") in found
    assert ("docs/ARCHITECTURE.md", "../README.md") in found
    assert ("tasks/file_door.py", "tasks/gateway.py") in found  # a docstring
    assert ("scripts/setup.sh", 'README, "Security"') in found  # a shell comment
    assert ("tasks/confinement.py", "browser_users.py") in found  # a bare file name
    assert ("app/sessions/service.py", "core.states") in found  # a dotted module
    assert not [r for r in found if r[1].startswith(("etc/", "tmp/", "usr/"))]


def test_every_file_and_section_named_exists():
    unexpected = [str(r) for r in broken()]
    assert not unexpected, "named but not in the repository:\n" + "\n".join(unexpected)

