"""`tunelab run`: prepare the data once, evaluate the baseline once, then run trials until the
study has as many finished trials as the file asks for. Each trial runs in a fresh process
forked from a server that already imported torch, so GPU memory is fully returned between
trials and a trial starts fast. Everything recorded goes through this process's spool.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from tunelab.engine.baselines import BASE, is_baseline, meets_words
from tunelab.engine.data import preferences
from tunelab.engine.data import prepare as data_prep
from tunelab.engine.data.checks import batch_over_split
from tunelab.engine.errors import TrainError
from tunelab.engine.review import stage_data
from tunelab.engine.run import events, preference, reconcile, records, resume
from tunelab.engine.run import study as search
from tunelab.engine.run.devices import fits_this_machine, worker_slots
from tunelab.engine.run.jobs import TrialJob, TrialResult, failure
from tunelab.engine.run.launcher import Launcher
from tunelab.engine.run.outcomes import (
    MAX_FAILURES_IN_A_ROW,
    Prepared,
    RunSummary,
    SweepState,
    TrialOutcome,
    done_states,
)
from tunelab.engine.run.paths import paths, trial_folder, trials_folder
from tunelab.engine.run.pipe import run_child
from tunelab.engine.run.signals import sigterm_as_ctrl_c
from tunelab.engine.run.smoke import smoke_data
from tunelab.engine.run.store_watch import StoreWatch
from tunelab.engine.run.threads import share as cpu_share
from tunelab.engine.spec import LoadedSpec, with_overrides
from tunelab.engine.train import model as models
from tunelab.store import Spool, StoreError, StoreGone, TrialParamRow, TrialRow, evaluations

log = logging.getLogger("tunelab.run")


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
        self.trials_dir = self.runs  # the study's own folder once it is open (_open_study)
        self.storage = storage or str(journal)
        # a store deleted under the sweep does not stop it: the running trials finish into the
        # spool, no new one starts, and the run ends saying so (engine.run.store_watch)
        self.spool = Spool(self.store, tag="run", keep_when_gone=True)
        self.watch = StoreWatch(self.spool, self.runs)
        fits_this_machine(self.exp)
        self.slots = worker_slots(self.exp, workers)
        self.retry_failed = retry_failed
        self._lock = threading.RLock()  # the study, the reporter, the sweep state
        self._stopping = threading.Event()  # Ctrl-C once: no new trial
        self.launcher = Launcher(self.exp.search.trial_timeout, self._event)  # the trial processes
        self._parent: str | None = None  # a dpo stage's parent adapter (see _prepare)
        self.votes = (preference.PreferenceSweep(self.store, self.exp, self.spool, self._lock,
                                                 self._event) if preference.wanted(self.exp) else None)

    def _event(self, event: events.Event) -> None:
        with self._lock:
            self.reporter.event(event)

    def _open_study(self) -> reconcile.Opened:
        """The study, repaired and checked against the store (engine.run.reconcile); its trials'
        folder keyed by the study, so no two studies of one name share a trial's folder."""
        opened = reconcile.open_checked(self.exp, self.storage, self.store,
                                        lambda text: log.warning("tunelab: %s", text),
                                        self.spec.path)
        self.trials_dir = trials_folder(self.runs, search.study_key(opened.study))
        rows = opened.rows(self._trial_row)  # what the study knew and the store did not
        if rows:
            self.spool.write(rows)
        for trial in opened.ended:
            self._event(events.Settled(number=trial.number, state=reconcile.ended_result(trial).state))
        return opened

    # -- recording
    def _trial_row(self, number: int, state: str, params: dict[str, Any], started: float,
                   result: TrialResult | None = None, finished: float | None = None) -> TrialRow:
        return records.trial_row(self.exp, self.store, self.trials_dir, number, state, params,
                                 started, result, finished)

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
        if exp.method.stage != "sft":  # a preference stage (dpo, kto, reward, orpo, simpo)
            return self._prepare_preferences()
        if exp.eval.harness is not None:  # an unknown benchmark is refused before any training
            from tunelab.engine.train.benchmarks import check_tasks

            check_tasks(exp)
        prepared = data_prep.prepare(self.spec, self.runs / "data")
        self._event(events.DataPrepared(report=prepared.report, smoke=self.smoke))
        too_big = batch_over_split(exp, prepared.report.counts.get("train", 0))
        if too_big:
            self._event(events.Warned(text=too_big))
        self.spool.write([data_prep.report_event(exp.name, prepared)])
        if self.smoke:
            prepared = smoke_data(prepared, self.runs / "data-smoke")
        self._record_experiment()
        base = models.base_ref(exp, prepared.fingerprint, self.runs)
        folder = models.base_folder(exp, prepared.fingerprint, self.runs)
        if folder is not None and not (folder / "config.json").exists():
            self._event(events.BuildingBase())
            result = run_child("base", self._job(None, None, exp.model_dump(mode="json"), base,
                                                 prepared, self.runs / "base"))
            if result.state != "complete":
                raise TrainError(f"could not build the scratch model: {failure(result)} (the "
                                 f"log: {self.runs / 'base' / 'base.log'})", "no base model")
        return prepared, base

    def _prepare_preferences(self) -> tuple[Prepared, str]:
        """A preference stage: the checked pairs (kto: single answers), what is measured on the
        votes, and the parent's splits; the parent is its base."""
        prepared = stage_data.prepare(self.spec, self.store, self.runs / "data")
        self._event(events.PreferencesPrepared(report=prepared.report, parent=self.exp.method.from_,
                                               smoke=self.smoke))
        self.spool.write([preferences.report_event(self.exp.name, prepared)])
        if self.smoke:
            prepared = smoke_data(prepared, self.runs / "data-smoke")
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
            study = self._open_study().study
            prepared, base = self._prepare()
            by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
            outcomes = []
            for number, seed in plan:
                if number not in by_number:
                    raise TrainError(f"{self.exp.name} has no trial {number} in {self.storage}")
                again = {"train.seed": seed} if seed is not None else {}
                fixed = (by_number[number].params, {"rerun_of": number} | (
                    {"seed": seed} if seed is not None else {}))
                outcomes.append((number, self._one_trial(study, base, prepared, again,
                                                         fixed=fixed)))
            if self.votes is not None:  # the re-runs wait for their votes like any trial
                self.votes.settle(study, [o for _, o in outcomes])
            return outcomes
        finally:
            self.spool.close()

    def enqueue(self, params: dict[str, Any]) -> None:
        """Queues a known configuration: the next trial of the study takes it. One a trial
        already has (finished, running or queued) is refused: `rerun` and `confirm` repeat."""
        try:
            study = self._open_study().study
            twin = resume.same_configuration(study, params)
            if twin is not None:
                raise TrainError(resume.repeat_words(self.exp.name, twin), "already tried")
            study.enqueue_trial(params, user_attrs={"enqueued": True})
        finally:
            self.spool.close()

    # -- the sweep
    def _run(self) -> RunSummary:
        exp = self.exp
        summary = RunSummary(exp.name)
        study = self._open_study().study
        prepared, base = self._prepare()
        plain = exp.model_dump(mode="json")

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
            finished=len(study.get_trials(deepcopy=False, states=done_states())),
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
        if self.watch.gone:
            raise StoreGone(self.watch.words(), "store gone")
        if self._stopping.is_set():
            raise KeyboardInterrupt
        return summary

    def _next_trial(self, sweep: SweepState) -> bool:
        """Whether a worker should start another trial (waits while the last ones run)."""
        import optuna

        timeout = self.exp.search.timeout
        while not self._stopping.is_set() and sweep.error is None and not self.watch.gone:
            if timeout and time.monotonic() - sweep.started > timeout:
                with self._lock:
                    first, sweep.timed_out = not sweep.timed_out, True
                if first:
                    self._event(events.SweepTimeout(seconds=timeout))
                return False
            with self._lock:
                search.fail_dead_trials(sweep.study)  # a machine that died (RDB storage)
                trials = sweep.study.get_trials(deepcopy=False)
            done = sum(t.state in done_states() for t in trials)
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
                self._remake_if_gone(sweep)
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
                            f"{last.fail_reason}: {failure(last)}. "
                            f"Fix the cause and run again: finished trials are kept.")
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            with self._lock:
                sweep.error = sweep.error or error

    def _remake_if_gone(self, sweep: SweepState) -> None:
        """What every trial reads (the prepared splits, a scratch base model) deleted during the
        sweep (`rm -rf tunelab-runs`) is made again before the next trial, and the run says
        once what could not be: the folders, so the checkpoints, of the trials before."""
        with self._lock:
            scratch = models.base_folder(self.exp, sweep.prepared.fingerprint, self.runs)
            gone = [f for f in sweep.prepared.files.values() if not Path(f).exists()]
            if scratch is not None and not (scratch / "config.json").exists():
                gone.append(scratch)
            if not gone:
                return
            sweep.prepared, sweep.base = self._prepare()
            lost = [t.number for t in sweep.study.get_trials(deepcopy=False, states=done_states())
                    if not trial_folder(self.trials_dir, t.number).is_dir()]
            self._event(events.Remade(runs=str(self.runs), lost=tuple(lost)))

    def _wait(self, threads: list[threading.Thread]) -> None:
        """Waits for the workers. Ctrl-C once: no new trial, each running trial stops after its
        current evaluation and is recorded as interrupted. Twice: the trials stop now."""
        presses = 0
        while any(t.is_alive() for t in threads):
            try:
                # not join(): a join interrupted by Ctrl-C can leave a live thread looking dead
                # (Python < 3.13), and the trial it runs would go unrecorded
                time.sleep(0.2)
                self.watch.look()
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
        from tunelab.engine.train import fewshot

        known: dict[str, dict[str, float]] = {}
        if self.store.exists():
            self.spool.ingest(wait=5)
            known = {ref: values for ref, values in evaluations(self.store, self.exp.name).items()
                     if is_baseline(ref)}
        # a study begun before the few-shot baseline existed measures it now (and the base again)
        if BASE in known and (len(known) > 1 or not fewshot.wanted(self.exp)):
            self._event(events.Baseline(values=known[BASE], cached=True, baselines=known,
                                        meets=meets_words(self.exp.success, known)))
            return known[BASE]
        self._event(events.BaselineStart())
        result = run_child("baseline", self._job(None, None, plain, base, prepared,
                                                 self.runs / "baseline"))
        if result.state != "complete":
            if result.fail_reason == "interrupted":
                raise KeyboardInterrupt
            # every trial would load the same model the same way: stop before they all fail
            raise TrainError(f"the baseline evaluation failed, and every trial would: "
                             f"{failure(result)}. Nothing was trained (the log: "
                             f"{self.runs / 'baseline' / 'baseline.log'}).", "baseline failed")
        values: dict[str, float] = result.info.get("values") or {}
        found = result.info.get("baselines") or {BASE: values}
        self._event(events.Baseline(values=values, cached=False, baselines=found,
                                    meets=meets_words(self.exp.success, found)))
        return values

    def _one_trial(self, study: Any, base: str, prepared: Prepared,
                   extra: dict[str, Any] | None = None, slot: int = 0,
                   fixed: tuple[dict[str, Any], dict[str, Any]] | None = None) -> TrialOutcome:
        """One trial: sampled, or with `fixed` (parameters, user attributes) a re-run's."""
        import optuna

        with self._lock:
            trial = search.ask_fixed(study, *fixed) if fixed else study.ask()
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
                search.tell(study, trial, state=optuna.trial.TrialState.FAIL)
            self.watch.keep([self._trial_row(number, "failed", params, started, TrialResult(
                "failed", fail_reason="exception", error=f"not started: {error}"))])
            raise
        self._event(events.TrialStart(number=number, params=params, worker=slot,
                                      epochs=trial_exp.train.epochs))
        job = self._job(number, trial._trial_id, trial_exp.model_dump(mode="json"), base,
                        prepared, trial_folder(self.trials_dir, number), slot)
        beat = search.heartbeat(study, trial._trial_id)
        try:
            result = self.launcher.run("trial", number, job, lambda e, p: self._event(
                events.TrialProgress(number=number, kind=e, data=p)))
        except KeyboardInterrupt:
            result = TrialResult("failed", fail_reason="interrupted", error="stopped by Ctrl-C")
            with self._lock:
                search.tell(study, trial, state=optuna.trial.TrialState.FAIL)
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
                search.tell(study, trial, values if len(values or []) > 1 else result.value)
            elif result.state == "pruned":
                search.tell(study, trial, state=optuna.trial.TrialState.PRUNED)
            elif result.state == "voting":
                pass  # stays RUNNING in Optuna until the judge tells it (engine.run.preference)
            else:
                search.tell(study, trial, state=optuna.trial.TrialState.FAIL)
        if result.state != "voting":  # the judge writes the voting trial's row
            self.spool.write([self._trial_row(number, result.state, params, started, result)])
        outcome = TrialOutcome(number, params, result, time.time() - started)
        self.watch.ended(number)
        self._event(events.TrialEnd(outcome=outcome))
        return outcome
