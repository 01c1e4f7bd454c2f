"""What a new run of a study finds of the runs before it: trials a stopped run left RUNNING
(failed, unless another machine or the votes still own them), trials whose end the store never
got (a full disk), and with --retry-failed, the failed trials queued again with their
parameters."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from tunelab.engine.run.events import Event, Retry, Settled, Stale
from tunelab.engine.run.jobs import TrialResult, running
from tunelab.store import Spool, list_trials


def fail_stale(study: Any, storage: str, record: Callable[[int, dict[str, Any], float, TrialResult], None],
               event: Callable[[Event], None]) -> None:
    """Trials left RUNNING by a stopped run of this machine (its process is gone) are marked
    failed and recorded so; trials of other machines (an RDB storage) are theirs to finish."""
    import optuna

    host = socket.gethostname()
    for stale in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
        attrs = stale.user_attrs
        if attrs.get("voting"):
            continue  # trained, waiting for votes: the judge of this run places it
        if "host" in attrs:
            if attrs["host"] != host or running(attrs.get("pid", -1)):
                continue
        elif "://" in storage:
            continue  # no owner recorded, shared storage: not ours to judge
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        started = stale.datetime_start.timestamp() if stale.datetime_start else time.time()
        record(stale.number, stale.params, started, TrialResult(
            "failed", fail_reason="killed", error="the run was stopped while this trial ran"))
        event(Stale(number=stale.number))


def settle_unrecorded(study: Any, spool: Spool, experiment: str,
                      record: Callable[[int, str, dict[str, Any], float, TrialResult], None],
                      event: Callable[[Event], None]) -> None:
    """Trials the store still shows running whose end the study has (the run told Optuna, then
    could not write the last row: the disk was full) are recorded as the study has them, once
    the process that ran them is gone."""
    import optuna

    if not spool.store.exists():
        return
    spool.ingest(wait=5)  # what waits in the spool first: it may hold their end
    shown = [t.number for t in list_trials(spool.store, experiment) if t.state == "running"]
    states = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.PRUNED:
              "pruned", optuna.trial.TrialState.FAIL: "failed"}
    host = socket.gethostname()
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number in shown:
        trial = by_number.get(number)
        if trial is None or trial.state not in states or trial.user_attrs.get("voting"):
            continue
        if trial.user_attrs.get("host", host) != host or running(trial.user_attrs.get("pid", -1)):
            continue  # its run may still be writing it
        state = states[trial.state]
        started = trial.datetime_start.timestamp() if trial.datetime_start else time.time()
        record(number, state, trial.params, started, TrialResult(
            state, value=trial.value if state == "complete" else None,
            fail_reason="exception" if state == "failed" else None,
            error="its end was not recorded (the store could not be written then: a full disk?); "
                  "state and value as the study has them"))
        event(Settled(number=number, state=state))


def requeue_failed(study: Any, event: Callable[[Event], None]) -> None:
    """--retry-failed: each failed trial not retried yet is queued again, same parameters."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        if t.state == optuna.trial.TrialState.FAIL and t.number not in retried and t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            event(Retry(number=t.number))
