"""Whatever is written in an experiment file or given to `--set`, `tunelab check` answers with
a message and exit status 2 (or accepts it): never a traceback. Hypothesis throws malformed
TOML, random values for the schema's keys and random search spaces at it, in-process through
the command's own entry point."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tunelab.engine.spec import Experiment
from tunelab.engine.spec.schema import model_at
from tunelab.tui.cli import main

VALID = """name = "fuzz"
[model]
scratch = { hidden_size = 32, layers = 1, heads = 2 }
[data]
train = "d.jsonl"
[search]
trials = 2
[search.space]
"train.learning_rate" = { low = 1e-4, high = 3e-4, log = true }
"method.kind" = ["full", "lora"]
"""
# few examples, always the same ones, so the suite stays fast and steady; set
# TUNELAB_FUZZ_EXAMPLES=1000 to explore further (400 a kind found nothing more when written)
FEW = settings(max_examples=int(os.environ.get("TUNELAB_FUZZ_EXAMPLES", "25")), deadline=None,
               derandomize=True,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _keys(model: type[BaseModel] = Experiment, prefix: str = "") -> list[str]:
    """Every dotted key of the schema, tables and leaves."""
    found = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{field.alias or name}"
        found.append(dotted)
        sub = model_at([*dotted.split("."), "x"])
        if sub is not None and sub is not model:
            found += _keys(sub, dotted + ".")
    return found


KEYS = _keys()


def toml_value(value: Any) -> str:
    """A value as TOML text (tomllib reads, nothing writes: this is enough for the test)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"


scalars = (st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
           | st.text(max_size=12) | st.sampled_from(["auto", "lora", "tpe", "epoch", "hub:x/y", "d.jsonl"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(["low", "high", "log", "step", "x"]), inner,
                                        max_size=4), max_leaves=8)
dimensions = (st.lists(scalars, max_size=4)
              | st.fixed_dictionaries({"low": st.floats(-10, 10) | st.integers(-5, 100),
                                       "high": st.floats(-10, 10) | st.integers(-5, 100)},
                                      optional={"log": st.booleans(), "step": scalars})
              | scalars)


def _check(text: str | bytes, overrides: list[str], capsys: pytest.CaptureFixture[str],
           monkeypatch: pytest.MonkeyPatch) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.toml"
        (Path(folder) / "d.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        argv = ["tunelab", "check", str(path), "--store", str(Path(folder) / "s.duckdb")]
        for item in overrides:
            argv += ["--set", item]
        monkeypatch.setattr(sys, "argv", argv)
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main()  # anything but SystemExit (a traceback for a person) fails the test here
        out, err = capsys.readouterr()
    assert done.value.code in (0, 2), (done.value.code, err)
    assert "Traceback" not in out + err
    if done.value.code == 2:
        assert err.strip(), "exit 2 without a message"
    else:
        assert "valid" in out


@FEW
@given(data=st.binary(max_size=200) | st.text(max_size=200))
def test_any_bytes_or_text_as_the_file(data: bytes | str, capsys, monkeypatch) -> None:
    _check(data, [], capsys, monkeypatch)


@FEW
@given(at=st.integers(0, len(VALID)), cut=st.integers(0, 40), inserted=st.text(max_size=8))
def test_a_valid_file_damaged_anywhere(at: int, cut: int, inserted: str, capsys, monkeypatch) -> None:
    _check(VALID[:at] + inserted + VALID[at + cut:], [], capsys, monkeypatch)


@FEW
@given(changes=st.lists(st.tuples(st.sampled_from(KEYS), values), min_size=1, max_size=3))
def test_random_values_for_the_schemas_keys(changes: list[tuple[str, Any]], capsys, monkeypatch) -> None:
    _check(VALID, [f"{key}={toml_value(value)}" for key, value in changes], capsys, monkeypatch)


@FEW
@given(space=st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), dimensions, max_size=4))
def test_random_search_spaces(space: dict[str, Any], capsys, monkeypatch) -> None:
    lines = "".join(f"{json.dumps(key)} = {toml_value(dim)}\n" for key, dim in space.items())
    _check(VALID.split("[search.space]")[0] + "[search.space]\n" + lines, [], capsys, monkeypatch)


def test_the_valid_file_is_valid(capsys, monkeypatch) -> None:
    _check(VALID, [], capsys, monkeypatch)
    assert len(KEYS) > 80 and "search.space" in KEYS and "method.from" in KEYS
