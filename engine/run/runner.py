"""`tunelab run`: prepare the data once, evaluate the baseline once, then run trials until the
study has as many finished trials as the file asks for. Each trial runs in a fresh process
forked from a server that already imported torch, so GPU memory is fully returned between
trials and a trial starts fast. Everything recorded goes through this process's spool.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Union

from tunelab.engine.data import prepare as data_prep
from tunelab.engine.errors import SpecError, TrainError
from tunelab.engine.run import study as search
from tunelab.engine.run.jobs import TrialJob, TrialResult
from tunelab.engine.run.threads import share as cpu_share
from tunelab.engine.spec import LoadedSpec, with_overrides
from tunelab.engine.train import model as models
from tunelab.engine.train.evaluate import verdict
from tunelab.store import Spool, evaluations, get_experiment, list_experiments

if TYPE_CHECKING:
    from tunelab.engine.data.preferences import PreferenceData

# what trials read: a supervised stage's splits, or a dpo stage's pairs and its parent's splits
Prepared = Union[data_prep.PreparedData, "PreferenceData"]

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
        _CONTEXT.set_forkserver_preload(["tunelab.engine.run.preload"])
    return _CONTEXT


def run_child(kind: str, job: TrialJob, on_progress: Any = None,
              on_start: Any = None, context: Any = None) -> TrialResult:
    """Runs one job in a fresh process; a process that dies becomes a failed result. The
    process is forked from the preloaded server unless another `context` is given."""
    from tunelab.engine.run import child

    ctx = context or _context()
    Path(job.out_dir).mkdir(parents=True, exist_ok=True)
    log = str(Path(job.out_dir) / f"{kind}.log")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=child.main, args=(kind, job, send, os.getpid(), log),
                          name=f"tunelab-{kind}")
    process.start()
    send.close()
    if on_start is not None:
        on_start(process)
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
        reason = "oom" if code == -9 and not interrupted(job) else "killed"
        return TrialResult("failed", fail_reason=reason,
                           error=f"the trial process {how}; see {log}")
    return result


_INTERRUPTED: set[str] = set()  # out_dirs of trials stopped on purpose (second Ctrl-C)


def interrupted(job: TrialJob) -> bool:
    return job.out_dir in _INTERRUPTED


def visible_devices() -> list[str]:
    """The GPUs this machine shows, without importing torch: CUDA_VISIBLE_DEVICES if set, else
    the NVIDIA driver's list. Empty on a CPU machine."""
    pinned = os.environ.get("CUDA_VISIBLE_DEVICES")
    if pinned is not None:
        return [d for d in pinned.split(",") if d.strip() and d.strip() != "-1"]
    folder = Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(folder.iterdir())))] if folder.is_dir() else []


def worker_slots(exp: Any, workers: int | None) -> list[str | None]:
    """One entry per worker: the CUDA_VISIBLE_DEVICES it is pinned to (None on a CPU machine).
    By default one worker per group of `gpus_per_trial` devices; `workers` overrides."""
    res = exp.resources
    devices = [str(d) for d in res.devices] if isinstance(res.devices, list) else visible_devices()
    per = res.gpus_per_trial
    groups = [",".join(devices[i:i + per]) for i in range(0, len(devices) - per + 1, per)]
    if devices and not groups:
        raise SpecError(f"resources.gpus_per_trial is {per} but only {len(devices)} device(s) "
                        f"are available ({','.join(devices)})", "not enough devices")
    count = workers or exp.search.workers or max(1, len(groups))
    if not groups:
        return [None] * count
    return [groups[i % len(groups)] for i in range(count)]


class Runner:
    def __init__(self, spec: LoadedSpec, store: Path, reporter: Reporter,
                 storage: str | None = None, new_study: bool = False, smoke: bool = False,
                 workers: int | None = None, retry_failed: bool = False) -> None:
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
        self.slots = worker_slots(self.exp, workers)
        self.retry_failed = retry_failed
        self._lock = threading.RLock()  # the study, the reporter, the shared counters
        self._stopping = threading.Event()  # Ctrl-C once: no new trial
        self._children: dict[int, Any] = {}  # trial number -> its process
        self._jobs: dict[int, TrialJob] = {}
        self._parent: str | None = None  # a dpo stage's parent adapter (see _prepare)
        self._check_objectives()

    def _check_objectives(self) -> None:
        from tunelab.engine.spec import EXTRA_OBJECTIVES

        computed = self.exp.computed_metrics | set(EXTRA_OBJECTIVES)
        for name in self.exp.search.all_objectives:
            if name not in computed:
                raise SpecError(f"search.objectives: {name!r} is never computed; use eval_loss, "
                                f"cost, duration_s or a metric of eval.metrics", "unknown objective")

    def _event(self, name: str, **data: Any) -> None:
        with self._lock:
            self.reporter.event(name, **data)

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
            return self._run()
        finally:
            self.spool.close()

    def _prepare(self) -> tuple[Prepared, str]:
        """The data splits and the base model, made once and reused by every trial."""
        exp = self.exp
        if exp.method.stage == "dpo":
            return self._prepare_preferences()
        prepared = data_prep.prepare(self.spec, self.runs / "data")
        self._event("data", report=prepared.report, fingerprint=prepared.fingerprint,
                            smoke=self.smoke)
        self.spool.write([data_prep.report_event(exp.name, prepared)])
        if self.smoke:
            prepared = _smoke_data(prepared, self.runs / "data-smoke")
        self._record_experiment()
        base = models.base_ref(exp, prepared.fingerprint, self.runs)
        folder = models.base_folder(exp, prepared.fingerprint, self.runs)
        if folder is not None and not (folder / "config.json").exists():
            self._event("building_base")
            result = run_child("base", self._job(None, None, exp.model_dump(mode="json"), base,
                                                 prepared, self.runs / "base"))
            if result.state != "complete":
                raise TrainError(f"could not build the scratch model: {result.error}")
        return prepared, base

    def _prepare_preferences(self) -> tuple[Prepared, str]:
        """A dpo stage: the checked pairs and the parent's splits; the parent is its base."""
        from tunelab.engine.data import preferences

        prepared = preferences.prepare(self.spec, self.store, self.runs / "data")
        self._event("preferences", report=prepared.report, parent=self.exp.method.from_,
                    smoke=self.smoke)
        self.spool.write([preferences.report_event(self.exp.name, prepared)])
        if self.smoke:
            prepared = _smoke_data(prepared, self.runs / "data-smoke")
        self._record_experiment()
        self._parent = prepared.parent_adapter
        return prepared, prepared.base

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

    def confirm(self, plan: list[tuple[int, int]]) -> list[tuple[int, TrialOutcome]]:
        """Each (trial, seed) of the plan re-run as a new trial of the study."""
        try:
            prepared, base = self._prepare()
            study = search.open_study(self.exp, self.storage)
            by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
            outcomes = []
            for number, seed in plan:
                if number not in by_number:
                    raise TrainError(f"{self.exp.name} has no trial {number} in {self.storage}")
                study.enqueue_trial(by_number[number].params,
                                    user_attrs={"rerun_of": number, "seed": seed})
                outcomes.append((number, self._one_trial(study, base, prepared,
                                                         {"train.seed": seed})))
            return outcomes
        finally:
            self.spool.close()

    def enqueue(self, params: dict[str, Any]) -> None:
        """Queues a known configuration: the next trial of the study takes it."""
        study = search.open_study(self.exp, self.storage)
        study.enqueue_trial(params, user_attrs={"enqueued": True}, skip_if_exists=True)
        self.spool.close()

    # -- the sweep
    def _fail_stale(self, study: Any) -> None:
        """Trials left RUNNING by a stopped run of this machine (its process is gone) are marked
        failed; trials of other machines (an RDB storage) are theirs to finish."""
        import optuna

        host = socket.gethostname()
        for stale in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
            attrs = stale.user_attrs
            if "host" in attrs:
                if attrs["host"] != host or _alive(attrs.get("pid", -1)):
                    continue
            elif "://" in self.storage:
                continue  # no owner recorded, shared storage: not ours to judge
            study.tell(stale.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            started = stale.datetime_start.timestamp() if stale.datetime_start else time.time()
            self.spool.write([self._trial_row(stale.number, "failed", stale.params, started,
                              TrialResult("failed", fail_reason="killed",
                                          error="the run was stopped while this trial ran"))])
            self._event("stale", number=stale.number)

    def _requeue_failed(self, study: Any) -> None:
        """--retry-failed: each failed trial not retried yet is queued again, same parameters."""
        import optuna

        trials = study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get("retry_of") for t in trials}
        for t in trials:
            if t.state == optuna.trial.TrialState.FAIL and t.number not in retried and t.params:
                study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
                self._event("retry", number=t.number)

    def _run(self) -> RunSummary:
        import optuna

        exp = self.exp
        summary = RunSummary(exp.name)
        prepared, base = self._prepare()
        plain = exp.model_dump(mode="json")

        study = search.open_study(exp, self.storage)
        self._fail_stale(study)
        if self.retry_failed:
            self._requeue_failed(study)

        if exp.eval.baseline:
            summary.baseline = self._baseline(base, prepared, plain)

        done_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        target = exp.search.trials
        if exp.search.sampler == "grid":
            target = min(target, search.grid_size(exp))
        self._event("sweep", trials=target, workers=len(self.slots), threads=cpu_share(len(self.slots)),
                    finished=len(study.get_trials(deepcopy=False, states=done_states)))
        state = {"failures": 0, "error": None}
        started = time.monotonic()

        def next_trial() -> bool:
            """Whether this worker should start another trial (waits while the last ones run)."""
            while not self._stopping.is_set():
                if exp.search.timeout and time.monotonic() - started > exp.search.timeout:
                    if not state.get("timed_out"):
                        state["timed_out"] = True
                        self._event("timeout", seconds=exp.search.timeout)
                    return False
                with self._lock:
                    search.fail_dead_trials(study)  # a machine that died (RDB storage)
                    trials = study.get_trials(deepcopy=False)
                done = sum(t.state in done_states for t in trials)
                running = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
                if done >= target:
                    return False
                if done + running < target:
                    return True
                time.sleep(1.0)  # the trials still running may finish the study, or fail
            return False

        def worker(slot: int) -> None:
            try:
                while state["error"] is None and next_trial():
                    outcome = self._one_trial(study, base, prepared, slot=slot)
                    with self._lock:
                        summary.trials.append(outcome)
                        failed = outcome.result.state == "failed"
                        state["failures"] = state["failures"] + 1 if failed else 0
                        if failed and outcome.result.fail_reason == "interrupted":
                            self._stopping.set()
                        if state["failures"] >= MAX_FAILURES_IN_A_ROW and state["error"] is None:
                            last = outcome.result
                            state["error"] = TrainError(
                                f"{state['failures']} trials in a row failed; the last: "
                                f"{last.fail_reason}: {(last.error or '').strip().splitlines()[-1:]}. "
                                f"Fix the cause and run again: finished trials are kept.")
            except BaseException as error:  # noqa: BLE001 - handed to the main thread
                with self._lock:
                    state["error"] = state["error"] or error

        threads = [threading.Thread(target=worker, args=(i,), name=f"tunelab-worker-{i}", daemon=True)
                   for i in range(len(self.slots))]
        for thread in threads:
            thread.start()
            time.sleep(0.2)  # the first asks of a sampler are not made at the same instant
        self._wait(threads)
        for thread in threads:
            thread.join()
        if state["error"] is not None:
            raise state["error"]
        if self._stopping.is_set():
            raise KeyboardInterrupt
        return summary

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
                with self._lock:
                    children = dict(self._children)
                if presses == 1:
                    self._event("stopping", running=sorted(children))
                    how = signal.SIGUSR1
                else:
                    self._event("stopping_now", running=sorted(children))
                    how = signal.SIGINT
                    _INTERRUPTED.update(j.out_dir for j in self._jobs.values())
                for process in children.values():
                    try:
                        os.kill(process.pid, how)
                    except (ProcessLookupError, TypeError):
                        pass
                if presses >= 3:  # the trial processes do not answer: end them
                    for process in children.values():
                        process.kill()

    def _baseline(self, base: str, prepared: Prepared,
                  plain: dict[str, Any]) -> dict[str, float]:
        known = {}
        if self.store.exists():
            self.spool.ingest(wait=5)
            known = evaluations(self.store, self.exp.name).get("base", {})
        if known:
            self._event("baseline", values=known, cached=True)
            return known
        self._event("baseline_start")
        result = run_child("baseline", self._job(None, None, plain, base, prepared,
                                                 self.runs / "baseline"))
        if result.state != "complete":
            self._event("baseline_failed", error=result.error)
            return {}
        self.spool.ingest(wait=5)
        values = evaluations(self.store, self.exp.name).get("base", {})
        self._event("baseline", values=values, cached=False)
        return values

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
        self.spool.write([self._trial_row(number, "running", params, started)] + [
            {"table": "trial_params", "row": {
                "experiment": self.exp.name, "number": number, "name": k,
                "value_num": float(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                else None, "value_text": str(v)}} for k, v in params.items()])
        self._event("trial_start", number=number, params=params, worker=slot,
                    epochs=trial_exp.train.epochs, method=trial_exp.method.kind)
        job = self._job(number, trial._trial_id, trial_exp.model_dump(mode="json"), base,
                        prepared, self.runs / f"trial-{number:04d}", slot)
        with self._lock:
            self._jobs[number] = job

        def started_process(process: Any) -> None:
            with self._lock:
                self._children[number] = process

        beat = search.heartbeat(study, trial._trial_id)
        try:
            result = run_child("trial", job, lambda e, p: self._event(
                "trial_progress", number=number, kind=e, **p), started_process)
        except KeyboardInterrupt:
            result = TrialResult("failed", fail_reason="interrupted", error="stopped by Ctrl-C")
            with self._lock:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.spool.write([self._trial_row(number, "failed", params, started, result)])
            raise
        finally:
            beat.join()
            with self._lock:
                self._children.pop(number, None)
                self._jobs.pop(number, None)
        if result.state == "failed" and result.fail_reason == "killed" and interrupted(job):
            result = TrialResult("failed", fail_reason="interrupted", info=result.info,
                                 error="stopped by Ctrl-C (twice)")
        result.info["duration_s"] = time.time() - started
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
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        self.spool.write([self._trial_row(number, result.state, params, started, result)])
        outcome = TrialOutcome(number, params, result, time.time() - started)
        self._event("trial_end", outcome=outcome)
        return outcome


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _smoke_data(prepared: Prepared, folder: Path) -> Prepared:
    """A few dozen rows of each split: enough to run every stage once, in seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    limits = {"train": 48, "validation": 16, "test": 16, "heldout": 16}
    files = {}
    for split, path in prepared.files.items():
        rows = data_prep.read_rows(path)[: limits.get(split, 16)]
        files[split] = folder / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return dataclasses.replace(prepared, folder=folder, files=files)
