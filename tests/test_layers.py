"""The layering of DESIGN.md: store imports no other layer; the core runs without the UI."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(imports: str) -> set[str]:
    code = f"import sys\n{imports}\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_store_imports_neither_engine_nor_ui() -> None:
    loaded = _modules_after("import tunelab.store, tunelab.store.spool, tunelab.store.read")
    assert not {m for m in loaded if m.startswith(("tunelab.engine", "tunelab.tui"))}
    assert "torch" not in loaded


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
