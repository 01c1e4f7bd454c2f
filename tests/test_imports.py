"""Every module of tunelab imports on its own, in any order, in a fresh interpreter: a cycle
between modules, or a module that works only once another has set the stage, fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

IMPORT_SHUFFLED = """
import importlib, random, sys
modules = sys.argv[2:]
random.Random(int(sys.argv[1])).shuffle(modules)
for name in modules:
    try:
        importlib.import_module(name)
    except Exception as error:
        sys.exit(f"importing {name} (after {len(sys.modules)} modules) failed: {error!r}")
print(len(modules))
"""


def _every_module() -> list[str]:
    found = []
    for folder in ("engine", "store", "tui"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = ["tunelab", folder, *path.relative_to(ROOT / folder).with_suffix("").parts]
            found.append(".".join(parts).removesuffix(".__init__"))
    return found


# three orders, each a fresh interpreter importing everything (torch, transformers, TRL, lm-eval:
# seconds each), so in the whole suite only; the fast loop has test_layers' static cycle check
@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_module_imports_in_a_random_order(seed: int) -> None:
    modules = _every_module()
    assert len(modules) > 80  # the listing found the package, not an empty folder
    done = subprocess.run([sys.executable, "-c", IMPORT_SHUFFLED, str(seed), *modules],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == str(len(modules))
