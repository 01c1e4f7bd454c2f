"""The promise of `tunelab check`, as a property: any configuration it accepts trains, or it is
refused by `check` itself, never by the run.

Hypothesis draws values for the experiment file's keys within (and at the edges of) their
ranges, and a search space over a few of them; each configuration goes through the `check`
command, and when accepted, `tunelab run`'s runner trains its one trial (one epoch of a tiny
scratch model on a few dozen rows) to the end: the trial must be complete, with steps taken.

Keys left out, and why: the model's source and its code (the property is about the scratch
model), the data's files, format, columns and content rules (what the rows hold is the data's
business: `tunelab data` reports it), dpo-stage keys (they need a parent in a store), the
budget (one trial of one epoch keeps an example to seconds), a second objective and
`objective = "preference"` (it waits for a person's votes), and devices (this machine's).

The default run tries a few configurations (TUNELAB_PROPERTY_EXAMPLES=N for more), always
the same; the slow test tries many more; TUNELAB_PROPERTY_RANDOM=1 draws new ones.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as hs
from test_spec_fuzz import toml_value

from tunelab import store as st
from tunelab.engine.errors import SpecError
from tunelab.engine.run.runner import Runner
from tunelab.tui.cli.check import check

from conftest import EXPERIMENTS, Quiet

pytestmark = pytest.mark.slow  # what check accepts is trained

FILE = '''name = "prop"
[model]
scratch = { hidden_size = 32, layers = 1, heads = 2, vocab_size = 128 }
[data]
train = "data.jsonl"
force = true
min_examples = 10
[train]
epochs = 1
[search]
trials = 1
'''

MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LOWS = hs.floats(1e-5, 1e-3)
HIGHS = hs.floats(1e-3, 1e-2)


def _keys() -> dict[str, tuple[hs.SearchStrategy[Any], list[Any]]]:
    """Every key drawn: (values within its range, values at or beyond its edges). An example
    takes its values from the first, and for one key, a third of the time, from the second:
    so that most configurations pass the check and train, and the check's refusals are tried
    one at a time (several beyond their edges would be refused for the first)."""
    sample = hs.sampled_from
    return {
        "model.scratch.arch": (sample(["llama", "auto"]), []),
        "model.scratch.hidden_size": (sample([16, 24, 32, 48, 64]), [8, 12, 30]),
        "model.scratch.layers": (hs.integers(1, 2), [0]),
        "model.scratch.heads": (sample([1, 2, 4]), [0, 3]),
        "model.scratch.intermediate_size": (sample([8, 16, 64]), [7]),
        "model.scratch.vocab_size": (hs.integers(64, 512), [63, 65536]),
        "model.scratch.max_position": (sample([32, 64, 512]), [15, 16]),
        "model.dtype": (sample(["auto", "float32"]), ["bfloat16", "float16"]),
        "data.split": (hs.tuples(hs.floats(0.5, 0.85), hs.floats(0.1, 0.15)).map(
            lambda p: {"train": p[0], "validation": p[1], "test": round(1 - p[0] - p[1], 9)}),
            [{"train": 0.9, "validation": 0.1, "test": 0.0}, {"train": 0.5, "validation": 0.6}]),
        "data.dedupe": (sample(["none", "exact", "near"]), []),
        "data.near_threshold": (hs.floats(0.9, 1.0), [0.0, 1.01]),
        "data.too_long": (sample(["drop", "truncate"]), []),
        "data.order": (sample(["shuffle", "length"]), ["difficulty"]),
        "data.max_row_bytes": (sample([1_000, 4_000, 2_000_000]), [999]),
        "method.kind": (sample(["full", "lora", "qlora", "prefix"]), []),
        "method.r": (hs.integers(1, 64), [0, 1024]),
        "method.alpha_ratio": (hs.floats(0.1, 8.0), [0.0]),
        "method.dropout": (hs.floats(0.0, 0.5), [0.99, 1.0]),
        "method.target_modules": (sample(["all-linear", ["q_proj", "v_proj"], MODULES]), []),
        "method.use_dora": (hs.booleans(), []),
        "method.quant_type": (sample(["nf4", "fp4"]), []),
        "method.double_quant": (hs.booleans(), []),
        "method.compute_dtype": (sample(["auto", "float32"]), ["bfloat16", "float16"]),
        "method.num_virtual_tokens": (hs.integers(1, 32), [0, 512]),
        "train.batch_size": (hs.integers(1, 32), [0, 1000]),
        "train.micro_batch_size": (sample(["auto", 1]), [0, 3, 64]),
        "train.learning_rate": (LOWS | HIGHS, [0.0, 0.99]),
        "train.scheduler": (sample(["linear", "cosine", "constant_with_warmup"]), []),
        "train.warmup_ratio": (hs.floats(0.0, 0.5), [0.0, 0.99]),
        "train.weight_decay": (hs.floats(0.0, 0.3), [2.0]),
        "train.max_length": (sample([32, 48, 128]), [8]),
        "train.seed": (hs.integers(0, 2**32 - 1), [-1, 2**32]),
        "train.early_stopping_patience": (hs.integers(1, 3), [0]),
        "train.logging_steps": (hs.integers(1, 10), [0]),
        "train.eval_every": (sample(["epoch", 1, 2, 5]), [0]),
        "train.gradient_checkpointing": (hs.booleans(), []),
        "train.max_oom_retries": (hs.integers(0, 3), [9]),
        "train.packing": (hs.booleans(), []),
        "search.sampler": (sample(["tpe", "random", "cmaes", "gp", "nsga2"]), ["grid"]),
        "search.pruner": (sample(["median", "percentile", "successive_halving", "hyperband",
                                  "none"]), []),
        "search.objective": (sample(["eval_loss", "perplexity"]), ["exact_match", "bleu"]),
        "search.direction": (sample(["minimize"]), ["maximize"]),
        "search.seed": (hs.integers(0, 2**32 - 1), [2**32, 1e23]),
        "eval.baseline": (hs.booleans(), []),
        "eval.metrics": (hs.lists(sample(["perplexity", "exact_match", "accuracy", "macro_f1",
                                          "bleu", "chrf", "rouge_l", "contains"]), unique=True,
                                  max_size=3), [["perplexity", "wer"]]),
        "eval.samples": (hs.integers(0, 2), []),
        "eval.max_new_tokens": (hs.integers(1, 6), [0]),
        "eval.max_examples": (hs.integers(1, 4), [0]),
        "eval.watch": (hs.integers(0, 2), []),
        "eval.watch_max_new_tokens": (hs.integers(1, 4), [0]),
        "eval.example_losses": (sample(["auto", True, False]), []),
        "resources.price_per_hour": (hs.floats(0.0, 5.0), [-1.0]),
    }


KEYS = _keys()


# searched keys: a range or a list of the values a trial may take
SPACES: dict[str, hs.SearchStrategy[Any]] = {
    "train.learning_rate": hs.tuples(LOWS, HIGHS, hs.booleans()).map(
        lambda t: {"low": t[0], "high": t[1], "log": t[2]}),
    "train.warmup_ratio": hs.sampled_from([{"low": 0.0, "high": 0.2, "step": 0.05},
                                           {"low": 0.0, "high": 0.3}, [0.0, 0.1]]),
    "method.kind": hs.lists(hs.sampled_from(["full", "lora", "prefix", "qlora"]), min_size=1,
                            max_size=3, unique=True),
    "method.r": hs.sampled_from([[2, 4], {"low": 2, "high": 8}, {"low": 2, "high": 8, "step": 2}]),
    "train.batch_size": hs.sampled_from([[4, 8], [2, 16], {"low": 2, "high": 8}]),
    "train.micro_batch_size": hs.sampled_from([[1, 2], ["auto", 2], [3]]),
    "method.dropout": hs.sampled_from([[0.0, 0.1], {"low": 0.0, "high": 0.3}]),
}


@hs.composite
def configurations(draw: hs.DrawFn) -> list[str]:
    """`--set` arguments: each key set about a quarter of the time, one of them perhaps at or
    beyond its edge, and a space of up to two keys."""
    values = {key: draw(valid) for key, (valid, _) in KEYS.items() if draw(hs.integers(0, 3)) == 0}
    edgy = [key for key, (_, edges) in KEYS.items() if edges]
    if draw(hs.integers(0, 2)) == 0:
        key = draw(hs.sampled_from(edgy))
        values[key] = draw(hs.sampled_from(KEYS[key][1]))
    found = [f"{key}={toml_value(value)}" for key, value in values.items()]
    searched = draw(hs.lists(hs.sampled_from(sorted(SPACES)), max_size=2, unique=True))
    return found + [f'search.space."{key}"={toml_value(draw(SPACES[key]))}' for key in searched]


def _accepted(folder: Path, overrides: list[str]) -> bool:
    """Whether `tunelab check` accepts it (its own command; a refusal is a SpecError)."""
    try:
        check(folder / "prop.toml", explain=False, set_=overrides, store=folder / "s.duckdb")
    except SpecError:
        return False
    return True


def trains_or_is_refused(overrides: list[str]) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        rows = (EXPERIMENTS / "data" / "arithmetic.jsonl").read_text().splitlines()[:80]
        (folder / "data.jsonl").write_text("\n".join(rows) + "\n")
        (folder / "prop.toml").write_text(FILE)
        if not _accepted(folder, overrides):
            event("refused by check")
            return
        event("accepted: trained")
        from tunelab.engine.spec import load_spec

        store = folder / "s.duckdb"
        Runner(load_spec(folder / "prop.toml", overrides), store, Quiet()).run()
        trials = st.list_trials(store, "prop")
        assert [t.state for t in trials] == ["complete"], [(t.state, t.error) for t in trials]
        steps = st.query(store, "select steps from trials").rows[0][0]
        assert steps and steps >= 1, steps


# the same examples every run (TUNELAB_PROPERTY_RANDOM=1 explores new ones)
SETTINGS = dict(deadline=None, derandomize=not os.environ.get("TUNELAB_PROPERTY_RANDOM"),
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=int(os.environ.get("TUNELAB_PROPERTY_EXAMPLES", "3")),
          phases=[Phase.explicit, Phase.generate], **SETTINGS)  # type: ignore[arg-type]
@given(overrides=configurations())
def test_what_check_accepts_trains(overrides: list[str]) -> None:
    trains_or_is_refused(overrides)


@pytest.mark.slow
@settings(max_examples=40, **SETTINGS)  # type: ignore[arg-type]
@given(overrides=configurations())
def test_what_check_accepts_trains_many(overrides: list[str]) -> None:
    trains_or_is_refused(overrides)
