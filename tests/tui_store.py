"""A real store for the TUI tests, written the way a sweep writes it: events through a Spool.

Five trials of a quickstart-like experiment (complete, best, pruned, failed, running) with
curves, evaluations, samples (one of them an empty output), trial logs, the best trial's
example losses with the prepared split its manifest names, and the Optuna journal beside the
store. `build_taste` writes a preference sweep of four trials instead.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from tunelab import store as st
from tunelab.engine.run.paths import trial_folder

from conftest import EXPERIMENTS

NAME = "demo"
TRIALS: list[dict[str, Any]] = [
    {"number": 0, "state": "complete", "params": {"method.kind": "lora", "train.learning_rate": 1.6e-3},
     "value": 2.86, "start": 4.5, "end": 2.8},
    {"number": 1, "state": "complete", "params": {"method.kind": "full", "train.learning_rate": 2.0e-3},
     "value": 0.652, "start": 4.4, "end": 0.6, "success": True},
    {"number": 2, "state": "pruned", "params": {"method.kind": "lora", "train.learning_rate": 1.1e-4},
     "value": None, "start": 4.6, "end": 4.2},
    {"number": 3, "state": "failed", "params": {"method.kind": "full", "train.learning_rate": 9.0e-3},
     "value": None, "start": 4.5, "end": 9.9, "fail_reason": "nan",
     "error": "Traceback (most recent call last):\n  File \"train.py\", line 1\nTrainError: loss is NaN"},
    {"number": 4, "state": "running", "params": {"method.kind": "full", "train.learning_rate": 3.0e-3},
     "value": None, "start": 4.4, "end": 1.5},
]
STEPS_PER_EPOCH = 60


def spec() -> dict[str, Any]:
    from tunelab.engine.spec import load_spec

    exp = load_spec(EXPERIMENTS / "quickstart.toml").experiment.model_copy(update={"name": NAME})
    return exp.model_dump(mode="json")


def metric_rows(number: int, start: float, end: float, steps: range, epochs: int = 3,
                now: float | None = None) -> list[dict]:
    now = now or time.time()
    total = STEPS_PER_EPOCH * epochs
    rows = []
    for step in steps:
        loss = end + (start - end) * math.exp(-4 * step / total)
        common = {"experiment": NAME, "trial": number, "step": step, "epoch": step / STEPS_PER_EPOCH,
                  "tokens": step * 320, "time": now}
        if step % 5 == 0:
            rows.append({"table": "metrics", "row": {**common, "split": "train", "name": "loss",
                                                     "value": loss}})
        if step % STEPS_PER_EPOCH == 0:
            rows.append({"table": "metrics", "row": {**common, "split": "validation", "name": "loss",
                                                     "value": loss * 1.05}})
    return rows


def trial_event(t: dict[str, Any], runs: Path, state: str | None = None, now: float | None = None
                ) -> dict:
    now = now or time.time()
    state = state or t["state"]
    done = state != "running"
    return {"table": "trials", "row": {
        "experiment": NAME, "number": t["number"], "state": state,
        "method_kind": t["params"]["method.kind"], "params": json.dumps(t["params"]),
        "value": t["value"] if done else None, "started_at": now - 100, "finished_at": now if done else None,
        "duration_s": 95.0 if done else None, "fail_reason": t.get("fail_reason"),
        "error": t.get("error"), "artifact_dir": str(trial_folder(runs, t["number"])),
        "updated_at": now, "steps": 180 if state == "complete" else None, "device": "cpu",
        "cost": 0.02 if done else None, "success": t.get("success", False if state == "complete" else None),
        "tokens": 57600 if state == "complete" else None}}


def build(folder: Path, now: float | None = None) -> Path:
    """Writes the store (and journal, logs) under `folder`; returns the store's path. `now`
    fixes every time in it (for snapshots)."""
    path = folder / "tunelab.duckdb"
    runs = folder / "tunelab-runs" / NAME
    now = now or time.time()
    events: list[dict] = [{"table": "experiments", "row": {
        "name": NAME, "description": "Arithmetic on a scratch Llama: full vs LoRA, learning rate",
        "spec_path": str(EXPERIMENTS / "quickstart.toml"), "spec_hash": "x", "spec": json.dumps(spec()),
        "objective": "eval_loss", "direction": "minimize", "created_at": now, "updated_at": now}}]
    for split, name, value in (("validation", "loss", 4.57), ("test", "loss", 4.58),
                               ("test", "exact_match", 0.0), ("test", "perplexity", 97.0)):
        events.append({"table": "evaluations", "row": {"experiment": NAME, "model_ref": "base",
                                                       "split": split, "name": name, "value": value,
                                                       "time": now}})
    for t in TRIALS:
        events.append(trial_event(t, runs, now=now))
        for k, v in t["params"].items():
            events.append({"table": "trial_params", "row": {
                "experiment": NAME, "number": t["number"], "name": k,
                "value_num": v if isinstance(v, float) else None, "value_text": str(v)}})
        last = {"pruned": 70, "failed": 30, "running": 100}.get(t["state"], 180)
        events += metric_rows(t["number"], t["start"], t["end"], range(5, last + 1), now=now)
        if t["state"] == "complete":
            for split, name, value in (("validation", "loss", t["value"]),
                                       ("test", "loss", t["value"] + 0.01),
                                       ("test", "exact_match", 0.93 if t.get("success") else 0.1),
                                       ("test", "perplexity", math.exp(t["value"]))):
                events.append({"table": "evaluations", "row": {
                    "experiment": NAME, "model_ref": f"trial:{t['number']}", "split": split,
                    "name": name, "value": value, "time": now}})
        folder_ = trial_folder(runs, t["number"])
        folder_.mkdir(parents=True, exist_ok=True)
        (folder_ / "trial.log").write_text(
            "".join(f"step {s} loss {4 - s / 100:.3f}\n" for s in range(0, last, 10))
            + ("TrainError: loss is NaN\n" if t["state"] == "failed" else ""))
    for i, (a, b) in enumerate(((12, 7), (3, 9), (40, 2), (5, 5))):
        output = {2: f"{a} + {b} = 41", 3: ""}.get(i, f"{a} + {b} = {a + b}")  # a miss, nothing
        events.append({"table": "samples", "row": {
            "experiment": NAME, "model_ref": "trial:1", "prompt_id": f"p{i}", "position": i,
            "prompt": f"What is {a} plus {b}?", "output": output,
            "reference": f"{a} + {b} = {a + b}", "settings": "{}", "time": now}})
    events += hardest(folder, trial_folder(runs, 1), now)
    with st.Spool(path, tag="fixture") as spool:
        spool.write(events)
    journal(folder)
    return path


# the prepared train split of the best trial: (origin, prompt, completion, loss)
PREPARED = [("arithmetic.jsonl:12", "What is 2 plus 2?", "2 + 2 = 4", 0.011),
            ("arithmetic.jsonl:989", "What is 7 plus 5?", "7 + 5 = 13", 0.393),
            ("arithmetic.jsonl:40", "What is 1 plus 8?", "1 + 8 = 9", 0.052)]


def hardest(folder: Path, trial_dir: Path, now: float) -> list[dict]:
    """Trial 1's example losses, and the prepared split and manifest they point into (as a
    run leaves them: paths relative to the folder it ran in)."""
    data = folder / "tunelab-runs" / NAME / "data" / "f1ngerprint"
    data.mkdir(parents=True, exist_ok=True)
    (data / "train.jsonl").write_text("".join(
        json.dumps({"prompt": p, "completion": c, "origin": o}) + "\n" for o, p, c, _ in PREPARED))
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / "manifest.json").write_text(json.dumps(
        {"data": {"train": str((data / "train.jsonl").relative_to(folder))}}))
    return [{"table": "example_losses", "row": {
        "experiment": NAME, "trial": 1, "split": "train", "position": i, "origin": o,
        "source_row": int(o.rsplit(":", 1)[1]), "tokens": 4, "loss": loss, "time": now}}
        for i, (o, _, _, loss) in enumerate(PREPARED)]


TASTE = "taste"
# a preference sweep's trials: (learning rate, epochs, rating over the base); the best has the
# lowest learning rate, so it is drawn in the top left corner of objective vs learning rate
TASTE_TRIALS = [(5.2e-4, 8, 310.0), (1.1e-3, 3, 120.0), (2.3e-3, 1, 35.0), (3.9e-3, 3, -40.0)]


def build_taste(folder: Path, now: float | None = None) -> Path:
    """A preference sweep ("taste", objective preference, maximised) of four rated trials."""
    path = folder / "tunelab.duckdb"
    now = now or time.time()
    body = {**spec(), "name": TASTE}
    body["search"] = {**body["search"], "objective": "preference", "direction": "maximize"}
    events: list[dict] = [{"table": "experiments", "row": {
        "name": TASTE, "description": "searched by blind votes", "spec_path": "", "spec_hash": "x",
        "spec": json.dumps(body), "objective": "preference", "direction": "maximize",
        "created_at": now, "updated_at": now}}]
    for number, (lr, epochs, rating) in enumerate(TASTE_TRIALS):
        params = {"train.learning_rate": lr, "train.epochs": epochs}
        events.append({"table": "trials", "row": {
            "experiment": TASTE, "number": number, "state": "complete", "method_kind": "full",
            "params": json.dumps(params), "value": rating, "started_at": now - 60,
            "finished_at": now, "duration_s": 60.0, "updated_at": now, "steps": 60 * epochs}})
    with st.Spool(path, tag="fixture") as spool:
        spool.write(events)
    return path


def journal(folder: Path) -> None:
    """The Optuna study beside the store, as `tunelab run` leaves it (finished trials only)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from tunelab.engine.run.study import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=NAME, storage=open_storage(str(folder / "tunelab.optuna.journal")),
                                direction="minimize", load_if_exists=True)
    dists = {"method.kind": CategoricalDistribution(["full", "lora"]),
             "train.learning_rate": FloatDistribution(1e-4, 1e-2, log=True)}
    extra = [({"method.kind": "lora", "train.learning_rate": 5e-4}, 3.4),
             ({"method.kind": "full", "train.learning_rate": 1e-3}, 1.1),
             ({"method.kind": "full", "train.learning_rate": 5e-3}, 0.9)]
    for params, value in [(t["params"], t["value"]) for t in TRIALS if t["value"] is not None] + extra:
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value))
