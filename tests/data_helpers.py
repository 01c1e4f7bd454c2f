"""Builders for the data tests: experiment files around small data files, and varied rows."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from tunelab.engine.data.prepare import PreparedData, prepare
from tunelab.engine.spec import LoadedSpec, load_spec

WORDS = ("apple river stone cloud lamp window garden music paper silver orange forest mountain "
         "engine bridge candle pocket market winter summer ocean desert castle pencil rabbit "
         "violin harbor planet mirror ladder jacket kettle blanket thunder meadow lantern "
         "compass saddle feather marble copper velvet canyon glacier island valley orchard").split()


def sentence(rng: random.Random, n: int = 10) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def pc_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """n prompt/completion rows whose texts share almost no word 3-grams."""
    rng = random.Random(seed)
    return [{"prompt": f"Q{seed}-{i} " + sentence(rng), "completion": sentence(rng)} for i in range(n)]


def jsonl(rows: list[Any]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def experiment(tmp_path: Path, data: str, files: dict[str, str | bytes] | None = None,
               extra: str = "", name: str = "d") -> LoadedSpec:
    """A scratch-model experiment with the given [data] body; files are written beside it."""
    for file, content in (files or {}).items():
        path = tmp_path / file
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    spec = tmp_path / f"{name}.toml"
    spec.write_text(
        f'name = "{name}"\n'
        "[model]\n"
        "scratch = { hidden_size = 32, layers = 1, heads = 2, vocab_size = 300 }\n"
        f"[data]\n{data}\n{extra}", encoding="utf-8")
    return load_spec(spec)


def prepared(tmp_path: Path, data: str, files: dict[str, str | bytes] | None = None,
             extra: str = "", force: bool = False) -> PreparedData:
    return prepare(experiment(tmp_path, data, files, extra), tmp_path / "cache", force=force)


def finding(report: Any, check: str) -> Any:
    found = [f for f in report.findings if f.check == check]
    assert found, f"no {check} finding in {[f.check for f in report.findings]}"
    return found[0]
