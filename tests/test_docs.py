"""Citations in the code point into the repository or to a public paper (docs/index.md).

Two checks over every Python and TOML file of the repository and the README:

* no citation of a document that is not in the repository (the reconstruction of the paper
  and the bound notes outside it, issue-tracker numbers, the sources list's ``[S#]`` tags):
  such references now point at the pages of ``docs/`` that hold their content;
* every path of a ``docs/`` page (with its ``#anchor``, if any) cited in them exists.

The site itself is built by ``mkdocs build --strict`` in CI (``.ci/run``), which fails on a
broken link or anchor between the pages.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: Directories never scanned: virtual environments, caches, build output, the built site.
_SKIP_DIRS = {"site", "build", "dist", "node_modules", "__pycache__", "results", "out"}

#: Citations of documents outside the repository, with what replaces them.
FORBIDDEN: dict[str, str] = {
    "\u00a7": "a section sign cites the old spec; cite docs/<page>.md#<anchor> instead",
    r"spine-bound": "the min-cut bound notes are docs/theory/min-cut-bounds.md",
    r"paper-spec": "the reconstruction of the paper is docs/theory/*.md",
    r"shared/docs": "documents beside the repository are not citable; cite docs/",
    r"shared/[\w-]+/README": "READMEs beside the repository are not citable; cite docs/",
    r"\bstyle\.md\b": "the style guide is not in the repository; cite docs/ or drop it",
    r"\b[Ii]ssue \d+": "issue numbers are not documents; cite the docs page of the feature",
    r"\[S\d+\]": "source tags of the reconstruction: cite the paper (Archer et al., ICML 2024)",
}

_DOC_REF = re.compile(r"docs/((?:[\w.-]+/)*[\w.-]+\.md)(?:#([\w-]+))?")


def _source_files() -> list[Path]:
    """Every Python and TOML file of the repository, ``.ci/`` and the README."""
    out = [ROOT / "README.md"]
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d == ".ci" or not (
            d.startswith(".") or d in _SKIP_DIRS or d.endswith(".egg-info")))
        here = Path(top)
        for name in sorted(files):
            if name.endswith((".py", ".toml")) or here.name == ".ci":
                out.append(here / name)
    return out


def _anchors(page: Path) -> set[str]:
    """The anchors of a docs page: explicit ``{#id}`` attributes and slugged headings."""
    ids: set[str] = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        ids.update(re.findall(r"\{#([\w-]+)\}", line))
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if m:
            text = re.sub(r"\{#[\w-]+\}", "", m.group(1)).replace("`", "")
            text = re.sub(r"[^\w\s-]", "", text).strip().lower()
            ids.add(re.sub(r"[-\s]+", "-", text))
    return ids


def _cases(rel: str) -> list[tuple[int, str]]:
    return [(i, ln) for i, ln in enumerate((ROOT / rel).read_text(encoding="utf-8")
                                            .splitlines(), 1)]


def test_no_citation_of_a_document_outside_the_repository() -> None:
    this = Path(__file__).resolve()
    found = []
    for path in _source_files():
        if path.resolve() == this:
            continue
        rel = path.relative_to(ROOT).as_posix()
        for i, line in _cases(rel):
            for pattern, fix in FORBIDDEN.items():
                if re.search(pattern, line):
                    found.append(f"{rel}:{i}: {line.strip()[:80]!r}: {fix}")
    assert not found, "citations of documents not in the repository:\n" + "\n".join(found)


def test_every_docs_path_cited_in_the_code_exists() -> None:
    missing = []
    cache: dict[Path, set[str]] = {}
    for path in _source_files():
        rel = path.relative_to(ROOT).as_posix()
        for i, line in _cases(rel):
            for m in _DOC_REF.finditer(line):
                page = DOCS / m.group(1)
                if not page.is_file():
                    missing.append(f"{rel}:{i}: docs/{m.group(1)} does not exist")
                elif m.group(2) and m.group(2) not in cache.setdefault(page, _anchors(page)):
                    missing.append(f"{rel}:{i}: docs/{m.group(1)} has no anchor #{m.group(2)}")
    assert not missing, "broken docs references in the code:\n" + "\n".join(missing)


def test_the_checks_see_the_code() -> None:
    """The scan covers the packages (a scan of nothing would pass vacuously)."""
    rels = {p.relative_to(ROOT).as_posix() for p in _source_files()}
    assert {"pipecert/partition.py", "formulations/bottleneck.py", "pyproject.toml",
            "README.md", "tests/test_docs.py"} <= rels
    cited = sum(len(_DOC_REF.findall(p.read_text(encoding="utf-8"))) for p in
                (ROOT / "formulations").glob("*.py"))
    assert cited >= 5


@pytest.mark.parametrize("bad, good", [
    ("see spec \u00a74.3", "see docs/theory/bounds.md#bottleneck"),
    ("(issue 11, item 4)", "(docs/guide/solve.md)"),
    ("spine-bound.md \u00a72", "docs/theory/min-cut-bounds.md#node-bound"),
    ("10^4 evaluations, [S6]", "10^4 evaluations, Archer et al."),
    ("see ``../shared/instances/README.md``", "see ``docs/guide/formats.md#formats``"),
])
def test_the_patterns_catch_the_old_citations(bad: str, good: str) -> None:
    assert any(re.search(p, bad) for p in FORBIDDEN)
    assert not any(re.search(p, good) for p in FORBIDDEN)


def test_anchor_slugs_follow_the_headings(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("# Title {#top}\n\n## The MIP layer\n\n### 2.3 Block cost [R] {#block-cost}\n")
    assert {"top", "the-mip-layer", "block-cost"} <= _anchors(page)


def test_the_readme_keeps_the_ci_commands_and_links_into_docs() -> None:
    """CI runs the README's test command; the README's links into docs/ exist."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "python -m pytest -n auto" in text
    assert "pip install -e '.[dev]'" in text
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#[\w-]+)?\)", text)
    assert links and all((ROOT / link).is_file() for link in links), links
    assert len(text.splitlines()) <= 100, "the README is meant to fit on two screens"


def test_the_site_navigation_names_existing_pages() -> None:
    nav = re.findall(r":\s*([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"),
                     flags=re.M)
    assert nav and all((DOCS / page).is_file() for page in nav), nav
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages == set(nav), f"pages outside the navigation: {sorted(pages - set(nav))}"


def test_every_registered_method_is_in_the_catalogue() -> None:
    """docs/methods/index.md lists every registered method with its validity and citation."""
    from formulations import FORMULATIONS
    from heuristics import HEURISTICS

    text = (DOCS / "methods" / "index.md").read_text(encoding="utf-8")
    rows = [ln for ln in text.splitlines() if ln.startswith("| `")]
    listed = {name for ln in rows for name in re.findall(r"`([\w-]+)`", ln.split("|")[1])}
    missing = sorted((set(FORMULATIONS.names()) | set(HEURISTICS.names())) - listed)
    assert not missing, f"add a row to docs/methods/index.md for: {missing}"


_REPO_PATH = re.compile(r"`((?:pipecert|instances|formulations|heuristics|experiments|"
                        r"paper_figures|runtime|tests|\.ci)/[\w./*-]*)`")


def test_every_repository_path_named_in_the_docs_exists() -> None:
    """A file or folder the docs name in backticks exists (docs follow the code)."""
    stale = []
    for page in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        for m in _REPO_PATH.finditer(page.read_text(encoding="utf-8")):
            path = m.group(1)
            ok = any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()
            if not ok:
                stale.append(f"{page.relative_to(ROOT)}: `{path}`")
    assert not stale, "paths named in the docs that do not exist:\n" + "\n".join(stale)
