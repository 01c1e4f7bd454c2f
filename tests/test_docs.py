"""The docs hold true: every SQL example on a docs page (or in the README) runs through
`tunelab sql` on a store made by a real sweep (`documented_store`, tests/conftest.py) and
answers; the README stays a short landing page whose links resolve; and the figures the pages
quote survive `python -m bench` rewriting docs/benchmarks.md.

The SQL examples are found where a reader finds them: fenced ```sql blocks (one query per
statement), `tunelab sql … "QUERY"` commands, and inline `select … from …` code.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import ROOT

DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md")) + [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
README_MOST_LINES = 160
# experiments the example queries name that a quickstart sweep does not make (a dpo stage
# needs votes and a second run): their queries must run, and may answer with no rows
OTHER_RUNS = ("quickstart-dpo", "quickstart-kto", "quickstart-reward",
              "tickets-classify")  # and a classifier's own experiment

SQL_START = re.compile(r"^\s*(select|with|describe|show|explain|pragma|summarize)\b", re.I)


def _statements(block: str) -> list[str]:
    """A fenced block's queries: its statements that hold more than comments."""
    found = []
    for statement in block.split(";"):
        code = "\n".join(line for line in statement.splitlines()
                         if not line.strip().startswith("--")).strip()
        if code:
            found.append(statement.strip())
    return found


def sql_examples(text: str) -> list[str]:
    """Every SQL example of a page, in the order a reader meets them."""
    found: list[tuple[int, int, str]] = []
    for block in re.finditer(r"```sql\n(.*?)```", text, re.S):
        found += [(block.start(), n, q) for n, q in enumerate(_statements(block.group(1)))]
    for command in re.finditer(r'tunelab sql[^"\n`]*"([^"]+)"', text):
        if SQL_START.match(command.group(1)):
            found.append((command.start(), 0, command.group(1)))
    for inline in re.finditer(r"(?<!`)`((?:select|with) [^`]+? from [^`]+)`(?!`)", text, re.I):
        found.append((inline.start(), 0, re.sub(r"\s+", " ", inline.group(1))))
    return [query for _, _, query in sorted(found)]


def _examples() -> list[tuple[str, str]]:
    return [(page.name, query) for page in PAGES for query in sql_examples(page.read_text())]


def _tunelab(*args: str, stdin: str | None = None) -> tuple[int, str, BaseException | None]:
    """The `tunelab` command in this process (the sweep's store is read as a person reads it)."""
    from tunelab.tui.cli import app

    result = CliRunner().invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.exception


def test_the_docs_have_sql_examples_on_the_pages_that_teach_sql() -> None:
    pages = {page for page, _ in _examples()}
    assert {"store-and-sql.md", "review.md", "index.md"} <= pages, pages
    assert len(sql_examples((DOCS / "store-and-sql.md").read_text())) >= 10


@pytest.mark.slow
@pytest.mark.parametrize(("page", "query"), _examples(),
                         ids=[f"{p}:{q.splitlines()[0][:40]}" for p, q in _examples()])
def test_every_sql_example_in_the_docs_answers_on_a_real_store(
        documented_store: Path, page: str, query: str) -> None:
    # on stdin, as `tunelab sql < report.sql` runs it (a query may start with a comment)
    code, out, error = _tunelab("sql", "--store", str(documented_store), "--format", "json",
                                stdin=query)
    assert code == 0, f"{page}: this example query fails:\n{query}\n{error}"
    if not any(f"'{name}'" in query for name in OTHER_RUNS):
        assert json.loads(out), f"{page}: this example query answers no rows:\n{query}"


def _links(text: str) -> list[str]:
    """The relative targets of a page's Markdown links and images (no URLs, no anchors alone)."""
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t for t in targets if not re.match(r"^[a-z]+:", t) and not t.startswith("#")]


def test_the_readme_is_short_and_its_links_to_the_docs_resolve() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_MOST_LINES
    links = _links(text)
    pages = {Path(link.split("#")[0]).name for link in links if link.startswith("docs/")}
    nav = set(re.findall(r":\s*([\w-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M))
    assert nav <= pages | {"index.md"}, f"pages the README does not link: {nav - pages}"
    for link in links:
        assert (ROOT / link.split("#")[0]).exists(), f"README.md links to {link}, which is not there"
    assert "experiments/quickstart.toml" in text and "python -m pytest" in text


def test_contributing_links_only_to_files_in_the_repository() -> None:
    for link in _links((ROOT / "CONTRIBUTING.md").read_text()):
        assert not link.startswith(".."), f"CONTRIBUTING.md points outside the repository: {link}"
        assert (ROOT / link.split("#")[0]).exists(), f"CONTRIBUTING.md links to {link}"


def test_ci_runs_the_readmes_test_command_and_builds_the_docs_strictly() -> None:
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"```bash\n.*?&& (python -m pytest.*?)\n```", readme, re.S)
    assert command, "the README has no test command"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command.group(1) in ci
    assert "mkdocs build --strict" in ci
    assert ci.index("mkdocs build --strict") < ci.index(command.group(1))


def test_rewriting_the_benchmarks_page_keeps_the_figures_the_pages_quote(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from bench import report
    from bench.suite import BenchResult

    shipped = (DOCS / "benchmarks.md").read_text()
    figures = report.section(shipped, report.FIGURES_BEGIN, report.FIGURES_END)
    assert figures and "### The terminal UI" in figures
    out = tmp_path / "benchmarks.md"
    out.write_text(shipped)
    report.write(out, [BenchResult("other", "not wired")], quick=True)
    text = out.read_text()
    assert figures in text and "| other |" in text
    assert text.count(report.FIGURES_BEGIN) == 1


def test_the_pages_link_the_figures_they_moved_to_benchmarks_and_quote_none() -> None:
    anchors = {"the-quickstart", "the-experiment-file", "sweeps", "data", "the-store",
               "the-terminal-ui", "review-chat-and-dpo", "review-statistics"}
    linked = set()
    for page in DOCS.glob("*.md"):
        if page.name == "benchmarks.md":
            continue
        text = page.read_text()
        linked |= set(re.findall(r"benchmarks\.md#([\w-]+)", text))
        # a measured figure in the prose: a time, a rate or a ratio against the plain library
        # (code shows what a command prints, not a claim)
        prose = re.sub(r"```.*?```|`[^`]*`", "", text, flags=re.S)
        measured = re.findall(r"\b\d[\d,.]* ?(?:ms|rows per second|rows/s|tokens/s)\b|\b\d\.\d+×",
                              prose)
        assert not measured, f"{page.name} quotes measured figures {measured}: they belong in " \
                             "docs/benchmarks.md"
    assert linked == anchors, anchors ^ linked
