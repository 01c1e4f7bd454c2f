"""`tunelab run`: prepare the data once, evaluate the baseline once, then run trials until the
study has as many finished trials as the file asks for. Each trial runs in a fresh process
forked from a server that already imported torch, so GPU memory is fully returned between
trials and a trial starts fast. Everything recorded goes through this process's spool.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from tunelab.engine.data import preferences
from tunelab.engine.data import prepare as data_prep
from tunelab.engine.errors import SpecError, TrainError
from tunelab.engine.objectives import EXTRA_OBJECTIVES, PREFERENCE
from tunelab.engine.run import events, preference, records, resume
from tunelab.engine.run import study as search
from tunelab.engine.run.devices import worker_slots
from tunelab.engine.run.jobs import TrialJob, TrialResult
from tunelab.engine.run.launcher import Launcher
from tunelab.engine.run.outcomes import (
    MAX_FAILURES_IN_A_ROW,
    P,
    Prepared,
    RunSummary,
    SweepState,
    TrialOutcome,
)
from tunelab.engine.run.paths import paths
from tunelab.engine.run.pipe import run_child
from tunelab.engine.run.signals import sigterm_as_ctrl_c
from tunelab.engine.run.threads import share as cpu_share
from tunelab.engine.spec import LoadedSpec, with_overrides
from tunelab.engine.train import model as models
from tunelab.store import Spool, StoreError, TrialParamRow, TrialRow, evaluations


class Runner:
    """Runs the trials of one study. The spec's name is the study (see identity.settle_study:
    a smoke run's or a new version's name is settled before the runner is built)."""

    def __init__(self, spec: LoadedSpec, store: Path, reporter: events.Reporter,
                 storage: str | None = None, smoke: bool = False,
                 workers: int | None = None, retry_failed: bool = False) -> None:
        self.store = Path(store)
        self.smoke = smoke  # the spec is a smoke spec: trials read a few dozen rows
        self.spec = spec
        self.exp = spec.experiment
        self.reporter = reporter
        self.runs, journal = paths(self.store, self.exp.name)
        self.storage = storage or str(journal)
        self.spool = Spool(self.store, tag="run")
        self.slots = worker_slots(self.exp, workers)
        self.retry_failed = retry_failed
        self._lock = threading.RLock()  # the study, the reporter, the sweep state
        self._stopping = threading.Event()  # Ctrl-C once: no new trial
        self.launcher = Launcher(self.exp.search.trial_timeout, self._event)  # the trial processes
        self._parent: str | None = None  # a dpo stage's parent adapter (see _prepare)
        self._check_objectives()
        self.votes = (preference.PreferenceSweep(self.store, self.exp, self.spool, self._lock,
                                                 self._event) if preference.wanted(self.exp) else None)

    def _check_objectives(self) -> None:
        computed = self.exp.computed_metrics | {*EXTRA_OBJECTIVES, PREFERENCE}
        for name in self.exp.search.all_objectives:
            if name not in computed:
                raise SpecError(f"search.objectives: {name!r} is never computed; use eval_loss, "
                                f"cost, duration_s or a metric of eval.metrics", "unknown objective")

    def _event(self, event: events.Event) -> None:
        with self._lock:
            self.reporter.event(event)

    # -- recording
    def _trial_row(self, number: int, state: str, params: dict[str, Any], started: float,
                   result: TrialResult | None = None) -> TrialRow:
        return records.trial_row(self.exp, self.runs, number, state, params, started, result)

    def _record_experiment(self) -> None:
        self.spool.write([records.experiment_row(self.spec)])

    def _record_failed(self, number: int, params: dict[str, Any], started: float,
                       result: TrialResult) -> None:
        self.spool.write([self._trial_row(number, "failed", params, started, result)])

    def _job(self, number: int | None, trial_id: int | None, exp_dict: dict[str, Any],
             base: str, prepared: Prepared, out: Path, slot: int = 0) -> TrialJob:
        threads = None
        if len(self.slots) > 1:  # trials at once share the cores instead of fighting for them
            threads = max(1, (os.cpu_count() or 1) // len(self.slots))
        return TrialJob(store=str(self.store), experiment=exp_dict, number=number,
                        trial_id=trial_id, study_name=self.exp.name, storage=self.storage,
                        base=base, data={k: str(v) for k, v in prepared.files.items()},
                        out_dir=str(out), spec_path=str(self.spec.path),
                        devices=self.slots[slot % len(self.slots)], threads=threads,
                        parent=self._parent)

    # -- the sweep
    def run(self) -> RunSummary:
        try:
            with sigterm_as_ctrl_c():
                return self._run()
        finally:
            self.spool.close()

    def _prepare(self) -> tuple[Prepared, str]:
        """The data splits and the base model, made once and reused by every trial."""
        exp = self.exp
        if exp.base_model.trust_remote_code:  # said first: the model's own Python runs in trials
            scratch = exp.base_model.scratch
            self._event(events.TrustRemoteCode(model=exp.base_model.base or (
                scratch.like if scratch and scratch.like else "the scratch model's config")))
        if exp.method.stage == "dpo":
            return self._prepare_preferences()
        prepared = data_prep.prepare(self.spec, self.runs / "data")
        self._event(events.DataPrepared(report=prepared.report, smoke=self.smoke))
        self.spool.write([data_prep.report_event(exp.name, prepared)])
        if self.smoke:
            prepared = _smoke_data(prepared, self.runs / "data-smoke")
        self._record_experiment()
        base = models.base_ref(exp, prepared.fingerprint, self.runs)
        folder = models.base_folder(exp, prepared.fingerprint, self.runs)
        if folder is not None and not (folder / "config.json").exists():
            self._event(events.BuildingBase())
            result = run_child("base", self._job(None, None, exp.model_dump(mode="json"), base,
                                                 prepared, self.runs / "base"))
            if result.state != "complete":
                raise TrainError(f"could not build the scratch model: {result.error}")
        return prepared, base

    def _prepare_preferences(self) -> tuple[Prepared, str]:
        """A dpo stage: the checked pairs and the parent's splits; the parent is its base."""
        prepared = preferences.prepare(self.spec, self.store, self.runs / "data")
        self._event(events.PreferencesPrepared(report=prepared.report, parent=self.exp.method.from_,
                                               smoke=self.smoke))
        self.spool.write([preferences.report_event(self.exp.name, prepared)])
        if self.smoke:
            prepared = _smoke_data(prepared, self.runs / "data-smoke")
        self._record_experiment()
        self._parent = prepared.parent_adapter
        return prepared, prepared.base

    def rerun(self, number: int, seed: int | None) -> TrialOutcome:
        """Runs trial `number` again with its parameters (and another seed, if given), as a new
        trial of the same study."""
        return self.confirm([(number, seed)])[0][1]

    def confirm(self, plan: list[tuple[int, int | None]]) -> list[tuple[int, TrialOutcome]]:
        """Each (trial, seed) of the plan re-run as a new trial of the study (seed None: its own)."""
        with sigterm_as_ctrl_c():
            return self._confirm(plan)

    def _confirm(self, plan: list[tuple[int, int | None]]) -> list[tuple[int, TrialOutcome]]:
        try:
            prepared, base = self._prepare()
            study = search.open_study(self.exp, self.storage)
            by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
            outcomes = []
            for number, seed in plan:
                if number not in by_number:
                    raise TrainError(f"{self.exp.name} has no trial {number} in {self.storage}")
                again = {"train.seed": seed} if seed is not None else {}
                study.enqueue_trial(by_number[number].params, user_attrs={"rerun_of": number} | (
                    {"seed": seed} if seed is not None else {}))
                outcomes.append((number, self._one_trial(study, base, prepared, again)))
            if self.votes is not None:  # the re-runs wait for their votes like any trial
                self.votes.settle(study, [o for _, o in outcomes])
            return outcomes
        finally:
            self.spool.close()

    def enqueue(self, params: dict[str, Any]) -> None:
        """Queues a known configuration: the next trial of the study takes it."""
        study = search.open_study(self.exp, self.storage)
        study.enqueue_trial(params, user_attrs={"enqueued": True}, skip_if_exists=True)
        self.spool.close()

    # -- the sweep
    def _run(self) -> RunSummary:
        exp = self.exp
        summary = RunSummary(exp.name)
        prepared, base = self._prepare()
        plain = exp.model_dump(mode="json")

        study = search.open_study(exp, self.storage)
        resume.fail_stale(study, self.storage, self._record_failed, self._event)
        if self.retry_failed:
            resume.requeue_failed(study, self._event)

        if exp.eval.baseline:
            summary.baseline = self._baseline(base, prepared, plain)

        target = exp.search.trials
        if exp.search.sampler == "grid":
            target = min(target, search.grid_size(exp))
        self._event(events.Sweep(
            trials=target, workers=len(self.slots), threads=cpu_share(len(self.slots)),
            finished=len(study.get_trials(deepcopy=False, states=_done_states())),
            pruning=search.prunes(exp)))
        sweep = SweepState(study, base, prepared, target, time.monotonic(), summary)
        if self.votes is not None:
            self.votes.open(study)
            self.votes.watch(study)
        threads = [threading.Thread(target=self._worker, args=(sweep, i), daemon=True,
                                    name=f"tunelab-worker-{i}") for i in range(len(self.slots))]
        for thread in threads:
            thread.start()
            time.sleep(0.2)  # the first asks of a sampler are not made at the same instant
        self._wait(threads)
        for thread in threads:
            thread.join()
        if self.votes is not None:
            self.votes.stop()
            if not self._stopping.is_set():
                self.votes.winner(study)
        if sweep.error is not None:
            raise sweep.error
        if self._stopping.is_set():
            raise KeyboardInterrupt
        return summary

    def _next_trial(self, sweep: SweepState) -> bool:
        """Whether a worker should start another trial (waits while the last ones run)."""
        import optuna

        timeout = self.exp.search.timeout
        while not self._stopping.is_set() and sweep.error is None:
            if timeout and time.monotonic() - sweep.started > timeout:
                with self._lock:
                    first, sweep.timed_out = not sweep.timed_out, True
                if first:
                    self._event(events.SweepTimeout(seconds=timeout))
                return False
            with self._lock:
                search.fail_dead_trials(sweep.study)  # a machine that died (RDB storage)
                trials = sweep.study.get_trials(deepcopy=False)
            done = sum(t.state in _done_states() for t in trials)
            running = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
            if done >= sweep.target:
                return False
            if done + running < sweep.target:
                return True
            time.sleep(1.0)  # the trials still running may finish the study, or fail
        return False

    def _worker(self, sweep: SweepState, slot: int) -> None:
        """One worker thread: trials on its device until the study is done or stops."""
        try:
            while sweep.error is None and self._next_trial(sweep):
                outcome = self._one_trial(sweep.study, sweep.base, sweep.prepared, slot=slot)
                with self._lock:
                    sweep.summary.trials.append(outcome)
                    failed = outcome.result.state == "failed"
                    sweep.failures = sweep.failures + 1 if failed else 0
                    if failed and outcome.result.fail_reason == "interrupted":
                        self._stopping.set()
                    if sweep.failures >= MAX_FAILURES_IN_A_ROW and sweep.error is None:
                        last = outcome.result
                        sweep.error = TrainError(
                            f"{sweep.failures} trials in a row failed; the last: "
                            f"{last.fail_reason}: {(last.error or '').strip().splitlines()[-1:]}. "
                            f"Fix the cause and run again: finished trials are kept.")
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            with self._lock:
                sweep.error = sweep.error or error

    def _wait(self, threads: list[threading.Thread]) -> None:
        """Waits for the workers. Ctrl-C once: no new trial, each running trial stops after its
        current evaluation and is recorded as interrupted. Twice: the trials stop now."""
        presses = 0
        while any(t.is_alive() for t in threads):
            try:
                # not join(): a join interrupted by Ctrl-C can leave a live thread looking dead
                # (Python < 3.13), and the trial it runs would go unrecorded
                time.sleep(0.2)
            except KeyboardInterrupt:
                presses += 1
                self._stopping.set()
                self._event(events.Stopping(running=self.launcher.running(), now=presses > 1))
                self.launcher.signal_all(signal.SIGUSR1 if presses == 1 else signal.SIGINT,
                                         now=presses > 1)
                if presses >= 3:  # the trial processes do not answer: end them
                    self.launcher.kill_all()

    def _baseline(self, base: str, prepared: Prepared,
                  plain: dict[str, Any]) -> dict[str, float]:
        """The base model's values: from the store when an earlier run measured them, else
        measured now in a trial process (they come back with its result)."""
        known = {}
        if self.store.exists():
            self.spool.ingest(wait=5)
            known = evaluations(self.store, self.exp.name).get("base", {})
        if known:
            self._event(events.Baseline(values=known, cached=True))
            return known
        self._event(events.BaselineStart())
        result = run_child("baseline", self._job(None, None, plain, base, prepared,
                                                 self.runs / "baseline"))
        if result.state != "complete":
            self._event(events.BaselineFailed(error=result.error))
            return {}
        values: dict[str, float] = result.info.get("values") or {}
        self._event(events.Baseline(values=values, cached=False))
        return values

    def _keep(self, rows: list[Any]) -> None:
        """Rows written to the spool only, when the store already refused a write: they wait
        there for the next writer of a healthy store."""
        try:
            self.spool.write(rows, ingest=False)
        except StoreError:
            pass  # the spool itself cannot be written (full disk): said by the first error

    def _one_trial(self, study: Any, base: str, prepared: Prepared,
                   extra: dict[str, Any] | None = None, slot: int = 0) -> TrialOutcome:
        import optuna

        with self._lock:
            trial = study.ask()
            trial.set_user_attr("host", socket.gethostname())
            trial.set_user_attr("pid", os.getpid())
            params = {**search.sample(trial, self.exp), **(extra or {})}
        trial_exp = with_overrides(self.spec, params)
        started = time.time()
        number = trial.number
        try:
            self.spool.write([self._trial_row(number, "running", params, started)] + [
                TrialParamRow(
                    experiment=self.exp.name, number=number, name=k,
                    value_num=float(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                    else None, value_text=str(v)) for k, v in params.items()])
        except StoreError as error:
            # the store is gone or damaged (the rows are in the spool, or the disk is full): this
            # trial does not start, and Optuna must not count it as running, or the other
            # workers would wait for it forever
            with self._lock:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self._keep([self._trial_row(number, "failed", params, started, TrialResult(
                "failed", fail_reason="exception", error=f"not started: {error}"))])
            raise
        self._event(events.TrialStart(number=number, params=params, worker=slot,
                                      epochs=trial_exp.train.epochs))
        job = self._job(number, trial._trial_id, trial_exp.model_dump(mode="json"), base,
                        prepared, self.runs / f"trial-{number:04d}", slot)
        beat = search.heartbeat(study, trial._trial_id)
        try:
            result = self.launcher.run("trial", number, job, lambda e, p: self._event(
                events.TrialProgress(number=number, kind=e, data=p)))
        except KeyboardInterrupt:
            result = TrialResult("failed", fail_reason="interrupted", error="stopped by Ctrl-C")
            with self._lock:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.spool.write([self._trial_row(number, "failed", params, started, result)])
            raise
        finally:
            beat.join()
        result.info["duration_s"] = time.time() - started
        if self.votes is not None and result.state == "complete":  # told once the votes place it
            result = self.votes.enter(study, trial, self._trial_row(number, "complete", params,
                                                                    started, result), result.info)
        values = search.objective_values(self.exp, result.value, result.info)
        if result.state == "complete" and values is None:
            result = TrialResult("failed", fail_reason="exception", info=result.info,
                                 error="an objective was not computed: "
                                       f"{', '.join(self.exp.search.all_objectives)}")
        with self._lock:
            if result.state == "complete":
                study.tell(trial, values if len(values or []) > 1 else result.value)
            elif result.state == "pruned":
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            elif result.state == "voting":
                pass  # stays RUNNING in Optuna until the judge tells it (engine.run.preference)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if result.state != "voting":  # the judge writes the voting trial's row
            self.spool.write([self._trial_row(number, result.state, params, started, result)])
        outcome = TrialOutcome(number, params, result, time.time() - started)
        self._event(events.TrialEnd(outcome=outcome))
        return outcome


def _done_states() -> tuple[Any, ...]:
    """Finished trials: complete or pruned (optuna is imported when a sweep starts, not before:
    the CLI imports this module to answer fast)."""
    import optuna

    return (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def _smoke_data(prepared: P, folder: Path) -> P:
    """A few dozen rows of each split: enough to run every stage once, in seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    limits = {"train": 48, "validation": 16, "test": 16, "heldout": 16}
    files = {}
    for split, path in prepared.files.items():
        rows = data_prep.read_rows(path)[: limits.get(split, 16)]
        files[split] = folder / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return dataclasses.replace(prepared, folder=folder, files=files)
