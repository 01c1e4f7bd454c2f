"""The split is stable, the cache is keyed by content and settings, mixing and curriculum order."""

from __future__ import annotations

from pathlib import Path

from data_helpers import experiment, finding, jsonl, pc_rows, prepared

from tunelab.engine.data.prepare import prepare


def _where(p) -> dict[str, str]:
    return {r["prompt"]: s for s in ("train", "validation", "test") for r in p.rows(s)}


def test_the_same_file_and_seed_give_the_same_split(tmp_path: Path) -> None:
    files = {"d.jsonl": jsonl(pc_rows(300))}
    a = prepared(tmp_path / "a", 'train = "d.jsonl"', files)
    b = prepared(tmp_path / "b", 'train = "d.jsonl"', files)
    assert _where(a) == _where(b)
    assert [r["prompt"] for r in a.rows("train")] == [r["prompt"] for r in b.rows("train")]


def test_another_seed_gives_another_split(tmp_path: Path) -> None:
    files = {"d.jsonl": jsonl(pc_rows(300))}
    a = prepared(tmp_path / "a", 'train = "d.jsonl"', files)
    b = prepared(tmp_path / "b", 'train = "d.jsonl"', files, extra="[train]\nseed = 7\n")
    assert _where(a) != _where(b)


def test_adding_rows_never_moves_existing_rows_between_splits(tmp_path: Path) -> None:
    rows = pc_rows(300)
    before = prepared(tmp_path / "a", 'train = "d.jsonl"', {"d.jsonl": jsonl(rows)})
    more = rows[:150] + pc_rows(200, seed=9) + rows[150:]  # new rows in the middle and at the end
    after = prepared(tmp_path / "b", 'train = "d.jsonl"', {"d.jsonl": jsonl(more + pc_rows(50, seed=8))})
    old, new = _where(before), _where(after)
    assert all(new[prompt] == split for prompt, split in old.items())
    assert len(new) == 550


def test_the_split_follows_the_fractions(tmp_path: Path) -> None:
    p = prepared(tmp_path, 'train = "d.jsonl"\nsplit = { train = 0.6, validation = 0.2, test = 0.2 }',
                 {"d.jsonl": jsonl(pc_rows(1000))})
    assert 540 < p.report.counts["train"] < 660
    assert 150 < p.report.counts["validation"] < 250 and 150 < p.report.counts["test"] < 250


def test_a_prepared_split_is_served_from_the_cache(tmp_path: Path) -> None:
    spec = experiment(tmp_path, 'train = "d.jsonl"', {"d.jsonl": jsonl(pc_rows(150))})
    first = prepare(spec, tmp_path / "cache")
    marker = first.folder / "train.jsonl"
    marker.write_text(marker.read_text() + "")  # untouched content, new mtime
    second = prepare(spec, tmp_path / "cache")
    assert second.fingerprint == first.fingerprint and second.folder == first.folder
    assert second.report == first.report
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_a_changed_file_is_never_served_stale(tmp_path: Path) -> None:
    rows = pc_rows(150)
    spec = experiment(tmp_path, 'train = "d.jsonl"', {"d.jsonl": jsonl(rows)})
    first = prepare(spec, tmp_path / "cache")
    rows[0]["completion"] = "a corrected answer"
    (tmp_path / "d.jsonl").write_text(jsonl(rows))  # same size class, same name
    second = prepare(spec, tmp_path / "cache")
    assert second.fingerprint != first.fingerprint
    assert any(r["completion"] == "a corrected answer" for s in ("train", "validation", "test")
               for r in second.rows(s))


def test_a_changed_setting_changes_the_fingerprint(tmp_path: Path) -> None:
    files = {"d.jsonl": jsonl(pc_rows(150))}
    a = experiment(tmp_path, 'train = "d.jsonl"', files)
    b = experiment(tmp_path, 'train = "d.jsonl"\ndedupe = "exact"', files, name="e")
    c = experiment(tmp_path, 'train = "d.jsonl"', files, extra="[train]\nmax_length = 64\n", name="f")
    fingerprints = {prepare(s, tmp_path / "cache").fingerprint for s in (a, b, c)}
    assert len(fingerprints) == 3


def test_extra_sources_are_mixed_into_train_by_fraction(tmp_path: Path) -> None:
    files = {"task.jsonl": jsonl(pc_rows(400, seed=1)), "general.jsonl": jsonl(pc_rows(500, seed=2))}
    p = prepared(tmp_path, 'train = "task.jsonl"\n[[data.mix]]\nsource = "general.jsonl"\n'
                           "fraction = 0.25", files)
    train = p.rows("train")
    general = [r for r in train if r["origin"].startswith("general.jsonl")]
    assert p.report.mixed == {"general.jsonl": len(general)}
    assert abs(len(general) / len(train) - 0.25) < 0.01
    for split in ("validation", "test"):  # validation and test measure the task alone
        assert all(r["origin"].startswith("task.jsonl") for r in p.rows(split))


def test_a_short_mix_source_is_used_whole_and_reported(tmp_path: Path) -> None:
    files = {"task.jsonl": jsonl(pc_rows(400, seed=1)), "general.jsonl": jsonl(pc_rows(20, seed=2))}
    p = prepared(tmp_path, 'train = "task.jsonl"\n[[data.mix]]\nsource = "general.jsonl"\n'
                           "fraction = 0.5", files)
    assert p.report.mixed == {"general.jsonl": 20}
    assert "20 usable rows" in finding(p.report, "mix_short").message


def test_curriculum_by_length_orders_train_shortest_first(tmp_path: Path) -> None:
    rows = pc_rows(150)
    for i, r in enumerate(rows):
        r["completion"] = " ".join([r["completion"]] * (1 + i % 4))
    p = prepared(tmp_path, 'train = "d.jsonl"\norder = "length"', {"d.jsonl": jsonl(rows)})
    lengths = [len(r["prompt"]) + len(r["completion"]) for r in p.rows("train")]
    firsts, lasts = lengths[: len(lengths) // 4], lengths[-len(lengths) // 4:]
    assert max(firsts) < min(lasts)


def test_curriculum_by_difficulty_column(tmp_path: Path) -> None:
    rows = pc_rows(150)
    for i, r in enumerate(rows):
        r["level"] = (i * 7) % 5
    rows[3]["level"] = "hard"
    p = prepared(tmp_path, 'train = "d.jsonl"\norder = "difficulty"\ndifficulty_column = "level"',
                 {"d.jsonl": jsonl(rows)})
    level = {r["prompt"]: r["level"] for r in rows}
    seen = [level[r["prompt"]] for r in p.rows("train")]
    assert seen == sorted(seen)
    assert finding(p.report, "no_difficulty").examples == ["d.jsonl:4"]


def test_the_trainer_reads_a_curriculum_in_order_and_shuffles_otherwise(tmp_path: Path) -> None:
    from torch.utils.data import RandomSampler, SequentialSampler
    from transformers import AutoModelForCausalLM, LlamaConfig

    from tunelab.engine.run.jobs import TrialJob
    from tunelab.engine.train.model import train_tokenizer
    from tunelab.engine.train.sft import build_trainer

    rows = pc_rows(120)
    tokenizer = train_tokenizer([r["prompt"] + "\n" + r["completion"] for r in rows], 300)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)
    samplers = {}
    for order in ("length", "shuffle"):
        spec = experiment(tmp_path, f'train = "d.jsonl"\norder = "{order}"', {"d.jsonl": jsonl(rows)},
                          name=order)
        job = TrialJob(store=str(tmp_path / "s.duckdb"), experiment={}, number=0, trial_id=None,
                       study_name="x", storage="", base="", data={}, out_dir=str(tmp_path / order))
        trainer = build_trainer(job, spec.experiment, AutoModelForCausalLM.from_config(config),
                                tokenizer, [], rows[:8], rows[8:12], micro=4)
        samplers[order] = type(trainer._get_train_sampler())
    assert samplers == {"length": SequentialSampler, "shuffle": RandomSampler}
