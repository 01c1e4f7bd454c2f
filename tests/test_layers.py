"""The layering of DESIGN.md: store imports no other layer; the core runs without the UI; inside
the engine each subpackage imports what its docstring allows, and no module is in a cycle."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest


def _modules_after(imports: str) -> set[str]:
    code = f"import sys\n{imports}\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_store_imports_neither_engine_nor_ui() -> None:
    loaded = _modules_after("import tunelab.store, tunelab.store.spool, tunelab.store.read")
    assert not {m for m in loaded if m.startswith(("tunelab.engine", "tunelab.tui"))}
    assert "torch" not in loaded


@pytest.mark.slow  # a fresh interpreter that loads torch, transformers and TRL: seconds
def test_engine_and_store_run_without_textual() -> None:
    loaded = _modules_after(
        "import tunelab.engine, tunelab.engine.run.runner, tunelab.engine.train.sft, "
        "tunelab.engine.train.evaluate, tunelab.store"
    )
    assert "textual" not in loaded and "tunelab.tui" not in loaded


def test_the_cli_starts_without_torch() -> None:
    # `tunelab sql` and `tunelab trials` must answer fast: no deep-learning imports
    loaded = _modules_after("import tunelab.tui.cli")
    assert "torch" not in loaded and "transformers" not in loaded


# ---------------------------------------------------------------- inside the engine

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"
SUBPACKAGES = ("spec", "data", "train", "serve", "review", "run")
DOTTED = re.compile(r"tunelab(?:\.[a-z_]+)+")


def _imports(path: Path) -> set[str]:
    """Every tunelab module a file imports, at the top or inside a function (a function-level
    import hides a cycle as well as any), except under `if TYPE_CHECKING:` (never run)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
                continue
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.update(f"{child.module}.{a.name}" for a in child.names)
            elif isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in found if name.startswith("tunelab.")}


def _module_name(path: Path) -> str:
    parts = ["tunelab", path.parts[len(ROOT.parts)], *path.relative_to(ROOT).with_suffix("").parts[1:]]
    return ".".join(parts).removesuffix(".__init__")


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for folder in ("engine", "store", "tui")
            for p in sorted((ROOT / folder).rglob("*.py"))}


def _resolve(name: str, known: dict[str, Path]) -> str:
    """`tunelab.engine.spec.Experiment` -> `tunelab.engine.spec` (the module that holds it)."""
    while name not in known and "." in name:
        name = name.rpartition(".")[0]
    return name


def _allowed(subpackage: str) -> set[str]:
    """The 'May import:' paragraph of a subpackage's docstring, as dotted names."""
    doc = ast.get_docstring(ast.parse((ENGINE / subpackage / "__init__.py").read_text()))
    assert doc and "May import:" in doc, f"engine/{subpackage}/__init__.py states no import rule"
    paragraph = doc.split("May import:", 1)[1].split("\n\n", 1)[0]
    return set(DOTTED.findall(paragraph.replace("\n", " ")))


def test_each_engine_subpackage_imports_only_what_its_docstring_allows() -> None:
    known = _modules()
    broken = []
    for sub in SUBPACKAGES:
        own = f"tunelab.engine.{sub}"
        allowed = _allowed(sub)
        for path in sorted((ENGINE / sub).rglob("*.py")):
            for target in sorted({_resolve(n, known) for n in _imports(path)}):
                if target == own or target.startswith(own + "."):
                    continue
                if not any(target == a or target.startswith(a + ".") for a in allowed):
                    broken.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not broken, "\n".join(broken)


def test_the_light_engine_modules_import_nothing_heavier() -> None:
    known = _modules()
    assert not _imports(ENGINE / "objectives.py")
    assert not _imports(ENGINE / "format.py")
    assert {_resolve(n, known) for n in _imports(ENGINE / "refs.py")} == {"tunelab.engine.errors"}
    assert {_resolve(n, known) for n in _imports(ENGINE / "errors.py")} == {"tunelab.store.errors"}


def test_no_import_cycles_between_modules() -> None:
    """Counting imports inside functions: such an import may defer a heavy library, never hide
    a cycle."""
    known = _modules()
    graph = {m: {_resolve(n, known) for n in _imports(p)} - {m} for m, p in known.items()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            # a package's __init__ re-exporting its own modules is not a cycle of ideas
            if nxt not in known or node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in state:
                walk(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(known):
        if module not in state:
            walk(module, [module])
    assert not cycles, "\n".join(cycles)
