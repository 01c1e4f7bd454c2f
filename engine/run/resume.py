"""What a new run of a study finds of the runs before it: trials a stopped run left RUNNING
(failed, unless another machine or the votes still own them), and with --retry-failed, the
failed trials queued again with their parameters."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from tunelab.engine.run.events import Event, Retry, Stale
from tunelab.engine.run.jobs import TrialResult, running


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


def requeue_failed(study: Any, event: Callable[[Event], None]) -> None:
    """--retry-failed: each failed trial not retried yet is queued again, same parameters."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        if t.state == optuna.trial.TrialState.FAIL and t.number not in retried and t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            event(Retry(number=t.number))
