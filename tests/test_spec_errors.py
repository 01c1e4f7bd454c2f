"""Mistakes in an experiment file, or in what is given as one, answered in words: a title, a
message that names the file (or the `--set` argument) and what is expected; never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.engine.errors import SpecError
from tunelab.engine.spec import load_spec

HEAD = 'name = "x"\n[model]\nscratch = {}\n[data]\ntrain = "d.jsonl"\n'


def _error(path: Path, overrides: list[str] | None = None) -> SpecError:
    with pytest.raises(SpecError) as caught:
        load_spec(path, overrides)
    return caught.value


def _file(tmp_path: Path, text: str | bytes) -> Path:
    (tmp_path / "d.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    path = tmp_path / "x.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_a_file_that_is_not_utf8_says_where_its_bad_byte_is(tmp_path: Path) -> None:
    path = _file(tmp_path, HEAD.encode() + b'description = "caf\xe9"\n')
    error = _error(path)
    assert "not UTF-8" in str(error) and "line 6" in str(error) and "0xe9" in str(error)
    assert str(path) in str(error)


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_a_data_file_given_as_the_experiment_shows_the_lines_that_would_use_it(
        tmp_path: Path, suffix: str) -> None:
    data = tmp_path / f"tickets{suffix}"
    data.write_bytes(b"\x89PAR1\xff\xfe" if suffix == ".parquet" else b'{"prompt": "a"}\n')
    text = str(_error(data))
    assert "is a data file" in text and "an experiment file (TOML) is expected" in text
    assert f'[data]\ntrain = "{data.name}"' in text


def test_a_folder_given_as_the_experiment_says_it_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(HEAD)
    text = str(_error(tmp_path))
    assert "is a folder" in text and "no such" not in text
    assert "a.toml" in text  # the experiment files it holds, as a hint


def test_a_missing_file_is_still_no_such_file(tmp_path: Path) -> None:
    assert "no such experiment file" in str(_error(tmp_path / "nope.toml"))


def test_an_empty_file_reports_every_missing_required_key_at_once(tmp_path: Path) -> None:
    error = _error(_file(tmp_path, ""))
    text = str(error)
    assert "name: required key is missing" in text
    assert "[model]" in text and "[data]" in text
    assert error.title.endswith("3 mistakes")


def test_a_set_mistake_names_the_set_argument_not_a_line_of_the_file(tmp_path: Path) -> None:
    path = _file(tmp_path, HEAD + "[train]\nlearning_rate = 2e-4\n")
    text = str(_error(path, ["train.learning_rate=abc"]))
    assert text.startswith("--set train.learning_rate=abc: train.learning_rate:"), text
    assert "x.toml:" not in text
    # a key the file does not have at all: not blamed on the [train] header either
    text = str(_error(path, ["train.epochs=0"]))
    assert text.startswith("--set train.epochs=0: train.epochs:"), text
    text = str(_error(path, ["train.lerning_rate=1e-4"]))
    assert text.startswith("--set train.lerning_rate=1e-4: unknown key"), text
    assert "did you mean 'train.learning_rate'" in text


def test_a_set_mistake_in_a_search_space_names_the_set_argument(tmp_path: Path) -> None:
    path = _file(tmp_path, HEAD + '[search.space]\n"method.r" = [8, 16]\n')
    text = str(_error(path, ['search.space."method.r"=[0, 16]']))
    assert text.startswith('--set search.space."method.r"=[0, 16]: search.space.method.r'), text


def test_the_file_is_still_blamed_for_its_own_mistakes_beside_a_set(tmp_path: Path) -> None:
    path = _file(tmp_path, HEAD + "[train]\nepochs = -1\n")
    text = str(_error(path, ["train.learning_rate=1e-4"]))
    assert text.startswith(f"{path}:7: train.epochs"), text


def test_an_inverted_range_is_reported_once(tmp_path: Path) -> None:
    path = _file(tmp_path, HEAD + '[search.space]\n"train.learning_rate" = { low = 3e-4, high = 1e-4 }\n')
    error = _error(path)
    text = str(error)
    assert "low (0.0003) is above high (0.0001)" in text
    assert "valid list" not in text
    assert text.count("\n") == 0 and error.title.endswith("1 mistake")


def test_choices_that_are_not_a_list_or_a_range_say_what_is_expected(tmp_path: Path) -> None:
    path = _file(tmp_path, HEAD + '[search.space]\n"method.r" = 8\n')
    text = str(_error(path))
    assert text.startswith(f"{path}:7: search.space.method.r:"), text
    assert "list" in text and "low" in text
