"""`tunelab run`: prepare the data once, evaluate the baseline once, then run trials until the
study has as many finished trials as the file asks for. Each trial runs in a fresh process
forked from a server that already imported torch, so GPU memory is fully returned between
trials and a trial starts fast. Everything recorded goes through this process's spool.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tunelab.engine import data as data_prep
from tunelab.engine import model as models
from tunelab.engine import search
from tunelab.engine.errors import SpecError, TrainError
from tunelab.engine.evaluate import verdict
from tunelab.engine.jobs import TrialJob, TrialResult
from tunelab.engine.spec import LoadedSpec, with_overrides
from tunelab.store import Spool, evaluations, get_experiment, list_experiments

MAX_FAILURES_IN_A_ROW = 3


class Reporter(Protocol):
    """What the runner tells whoever shows progress (the CLI prints it; tests collect it)."""

    def event(self, name: str, **data: Any) -> None: ...


@dataclass
class TrialOutcome:
    number: int
    params: dict[str, Any]
    result: TrialResult
    duration_s: float


@dataclass
class RunSummary:
    experiment: str
    trials: list[TrialOutcome] = field(default_factory=list)
    baseline: dict[str, float] = field(default_factory=dict)


def paths(store: Path, name: str) -> tuple[Path, Path]:
    """(the experiment's run folder, the default Optuna journal) beside the store."""
    runs = store.parent / f"{store.stem}-runs" / name
    journal = store.parent / f"{store.stem}.optuna.journal"
    return runs, journal


_CONTEXT: Any = None


def _context() -> Any:
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["tunelab.engine.preload"])
    return _CONTEXT


def run_child(kind: str, job: TrialJob, on_progress: Any = None) -> TrialResult:
    """Runs one job in a fresh process; a process that dies becomes a failed result."""
    from tunelab.engine import child

    ctx = _context()
    Path(job.out_dir).mkdir(parents=True, exist_ok=True)
    log = str(Path(job.out_dir) / f"{kind}.log")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=child.main, args=(kind, job, send, os.getpid(), log),
                          name=f"tunelab-{kind}")
    process.start()
    send.close()
    result: TrialResult | None = None
    try:
        while True:
            try:
                if receive.poll(0.2):
                    event, payload = receive.recv()
                    if event == "result":
                        result = payload
                    elif on_progress is not None:
                        on_progress(event, payload)
                    continue
            except EOFError:
                break
            if not process.is_alive() and not receive.poll(0):
                break
        process.join()
    except BaseException:
        process.terminate()
        process.join(5)
        if process.is_alive():
            process.kill()
        raise
    if result is None:
        code = process.exitcode
        how = f"was killed by signal {-code}" if code and code < 0 else f"exited with code {code}"
        reason = "oom" if code == -9 else "killed"
        return TrialResult("failed", fail_reason=reason,
                           error=f"the trial process {how}; see {log}")
    return result


class Runner:
    def __init__(self, spec: LoadedSpec, store: Path, reporter: Reporter,
                 storage: str | None = None, new_study: bool = False, smoke: bool = False) -> None:
        self.store = Path(store)
        if smoke:
            spec = spec.smoke()
        spec = self._checked_identity(spec, new_study)
        self.smoke = smoke
        self.spec = spec
        self.exp = spec.experiment
        self.reporter = reporter
        self.runs, journal = paths(self.store, self.exp.name)
        self.storage = storage or str(journal)
        self.spool = Spool(self.store, tag="run")

    def _checked_identity(self, spec: LoadedSpec, new_study: bool) -> LoadedSpec:
        """Refuses to mix trials of a changed file into an existing study (the comparison
        would silently break); --new-study starts a sibling study instead."""
        if not self.store.exists():
            return spec
        name = spec.experiment.name
        known = get_experiment(self.store, name)
        if known is None or not known.spec_hash or known.spec_hash == spec.spec_hash():
            return spec
        if not new_study:
            raise SpecError(
                f"the study {name!r} in {self.store} was run from a different version of "
                f"{spec.path.name} (its trials would not be comparable with new ones).\n"
                "Either revert your changes to the file, or run with --new-study to start a "
                "new study beside the old one (trials, budget and timeout may change freely).",
                "experiment changed")
        taken = {e.name for e in list_experiments(self.store)}
        version = 2
        while f"{name}-v{version}" in taken:
            version += 1
        return spec.renamed(f"{name}-v{version}")

    # -- recording
    def _trial_row(self, number: int, state: str, params: dict[str, Any], started: float,
                   result: TrialResult | None = None) -> dict[str, Any]:
        now = time.time()
        kind = params.get("method.kind", self.exp.method.kind)
        info = result.info if result else {}
        values = info.get("values") or {}
        success = None
        if self.exp.success and state == "complete":
            success = all(verdict(self.exp.success, values).values())
        extra = {key: info.get(key) for key in (
            "device", "micro_batch", "accumulation", "steps", "tokens", "disk_bytes", "cost")}
        extra.update({"params_total": info.get("params"), "params_trainable": info.get("trainable"),
                      "peak_memory_bytes": info.get("peak_memory"), "success": success})
        return {"table": "trials", "row": {**extra,
            "experiment": self.exp.name, "number": number, "state": state, "method_kind": kind,
            "params": json.dumps(params), "value": result.value if result else None,
            "started_at": started, "finished_at": now if result else None,
            "duration_s": now - started if result else None,
            "fail_reason": result.fail_reason if result else None,
            "error": result.error if result else None,
            "artifact_dir": str(self.runs / f"trial-{number:04d}"), "updated_at": now}}

    def _record_experiment(self) -> None:
        now = time.time()
        self.spool.write([{"table": "experiments", "row": {
            "name": self.exp.name, "description": self.exp.description,
            "spec_path": str(self.spec.path), "spec_hash": self.spec.spec_hash(),
            "spec": json.dumps(self.exp.model_dump(mode="json")),
            "objective": self.exp.search.objective, "direction": self.exp.search.direction,
            "created_at": now, "updated_at": now}}])

    def _job(self, number: int | None, trial_id: int | None, exp_dict: dict[str, Any],
             base: str, prepared: data_prep.PreparedData, out: Path) -> TrialJob:
        return TrialJob(store=str(self.store), experiment=exp_dict, number=number,
                        trial_id=trial_id, study_name=self.exp.name, storage=self.storage,
                        base=base, data={k: str(v) for k, v in prepared.files.items()},
                        out_dir=str(out), spec_path=str(self.spec.path))

    # -- the sweep
    def run(self) -> RunSummary:
        try:
            return self._run()
        finally:
            self.spool.close()

    def _prepare(self) -> tuple[data_prep.PreparedData, str]:
        """The data splits and the base model, made once and reused by every trial."""
        exp = self.exp
        prepared = data_prep.prepare(self.spec, self.runs / "data")
        self.reporter.event("data", report=prepared.report, fingerprint=prepared.fingerprint,
                            smoke=self.smoke)
        self.spool.write([data_prep.report_event(exp.name, prepared)])
        if self.smoke:
            prepared = _smoke_data(prepared, self.runs / "data-smoke")
        self._record_experiment()
        base = models.base_ref(exp, prepared.fingerprint, self.runs)
        folder = models.base_folder(exp, prepared.fingerprint, self.runs)
        if folder is not None and not (folder / "config.json").exists():
            self.reporter.event("building_base")
            result = run_child("base", self._job(None, None, exp.model_dump(mode="json"), base,
                                                 prepared, self.runs / "base"))
            if result.state != "complete":
                raise TrainError(f"could not build the scratch model: {result.error}")
        return prepared, base

    def rerun(self, number: int, seed: int | None) -> TrialOutcome:
        """Runs trial `number` again with its parameters (and another seed, if given), as a new
        trial of the same study."""
        try:
            prepared, base = self._prepare()
            study = search.open_study(self.exp, self.storage)
            found = [t for t in study.get_trials(deepcopy=False) if t.number == number]
            if not found:
                raise TrainError(f"{self.exp.name} has no trial {number}")
            study.enqueue_trial(found[0].params, user_attrs={"rerun_of": number})
            extra = {"train.seed": seed} if seed is not None else {}
            return self._one_trial(study, base, prepared, extra)
        finally:
            self.spool.close()

    def _run(self) -> RunSummary:
        import optuna

        exp = self.exp
        summary = RunSummary(exp.name)
        prepared, base = self._prepare()
        plain = exp.model_dump(mode="json")

        study = search.open_study(exp, self.storage)
        for stale in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
            # a run that was killed left it RUNNING; `tunelab run` owns this study on this machine
            study.tell(stale.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            started = stale.datetime_start.timestamp() if stale.datetime_start else time.time()
            self.spool.write([self._trial_row(stale.number, "failed", stale.params, started,
                              TrialResult("failed", fail_reason="killed",
                                          error="the run was stopped while this trial ran"))])
            self.reporter.event("stale", number=stale.number)

        if exp.eval.baseline:
            summary.baseline = self._baseline(base, prepared, plain)

        done_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        failures = 0
        started = time.monotonic()
        self.reporter.event("sweep", trials=exp.search.trials,
                            finished=len(study.get_trials(deepcopy=False, states=done_states)))
        while len(study.get_trials(deepcopy=False, states=done_states)) < exp.search.trials:
            if exp.search.timeout and time.monotonic() - started > exp.search.timeout:
                self.reporter.event("timeout", seconds=exp.search.timeout)
                break
            outcome = self._one_trial(study, base, prepared)
            summary.trials.append(outcome)
            failures = failures + 1 if outcome.result.state == "failed" else 0
            if failures >= MAX_FAILURES_IN_A_ROW:
                raise TrainError(
                    f"{failures} trials in a row failed; the last: {outcome.result.fail_reason}: "
                    f"{(outcome.result.error or '').strip().splitlines()[-1:]}. "
                    f"Fix the cause and run again: finished trials are kept.")
        return summary

    def _baseline(self, base: str, prepared: data_prep.PreparedData,
                  plain: dict[str, Any]) -> dict[str, float]:
        known = {}
        if self.store.exists():
            self.spool.ingest(wait=5)
            known = evaluations(self.store, self.exp.name).get("base", {})
        if known:
            self.reporter.event("baseline", values=known, cached=True)
            return known
        self.reporter.event("baseline_start")
        result = run_child("baseline", self._job(None, None, plain, base, prepared,
                                                 self.runs / "baseline"))
        if result.state != "complete":
            self.reporter.event("baseline_failed", error=result.error)
            return {}
        self.spool.ingest(wait=5)
        values = evaluations(self.store, self.exp.name).get("base", {})
        self.reporter.event("baseline", values=values, cached=False)
        return values

    def _one_trial(self, study: Any, base: str, prepared: data_prep.PreparedData,
                   extra: dict[str, Any] | None = None) -> TrialOutcome:
        import optuna

        trial = study.ask()
        params = {**search.sample(trial, self.exp), **(extra or {})}
        trial_exp = with_overrides(self.spec, params)
        started = time.time()
        number = trial.number
        self.spool.write([self._trial_row(number, "running", params, started)] + [
            {"table": "trial_params", "row": {
                "experiment": self.exp.name, "number": number, "name": k,
                "value_num": float(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                else None, "value_text": str(v)}} for k, v in params.items()])
        self.reporter.event("trial_start", number=number, params=params,
                            epochs=trial_exp.train.epochs, method=trial_exp.method.kind)
        job = self._job(number, trial._trial_id, trial_exp.model_dump(mode="json"), base,
                        prepared, self.runs / f"trial-{number:04d}")
        try:
            result = run_child("trial", job, lambda e, p: self.reporter.event(
                "trial_progress", number=number, kind=e, **p))
        except KeyboardInterrupt:
            result = TrialResult("failed", fail_reason="interrupted", error="stopped by Ctrl-C")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.spool.write([self._trial_row(number, "failed", params, started, result)])
            raise
        if result.state == "complete":
            study.tell(trial, result.value)
        elif result.state == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        self.spool.write([self._trial_row(number, result.state, params, started, result)])
        outcome = TrialOutcome(number, params, result, time.time() - started)
        self.reporter.event("trial_end", outcome=outcome)
        return outcome


def _smoke_data(prepared: data_prep.PreparedData, folder: Path) -> data_prep.PreparedData:
    """A few dozen rows of each split: enough to run every stage once, in seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    limits = {"train": 48, "validation": 16, "test": 16}
    files = {}
    for split, path in prepared.files.items():
        rows = data_prep.read_rows(path)[: limits.get(split, 16)]
        files[split] = folder / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return data_prep.PreparedData(prepared.fingerprint, folder, prepared.report, files)
