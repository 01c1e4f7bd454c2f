"""What a new run of a study finds of the runs before it: trials a stopped run left RUNNING
(failed, unless another machine or the votes still own them) and, with --retry-failed, the
failed trials queued again with their parameters. (Trials whose end the study has and the store
never got are recorded from the study: engine.run.reconcile.)"""

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


def same_configuration(study: Any, params: dict[str, Any]) -> Any:
    """The first trial that has, or (queued) will have, exactly these parameters; failed trials
    do not count (running a failed configuration again is a retry)."""
    import optuna

    from tunelab.engine.run.study import same_value

    for t in study.get_trials(deepcopy=False):
        if t.state == optuna.trial.TrialState.FAIL:
            continue
        has = t.system_attrs.get("fixed_params", t.params)
        if has.keys() == params.keys() and all(same_value(has[k], v) for k, v in params.items()):
            return t
    return None


def repeat_words(name: str, twin: Any) -> str:
    """Why a configuration is not queued again, and the way to repeat it on purpose."""
    state = twin.state.name.lower()
    if state == "waiting":
        return (f"this configuration is queued already (trial {twin.number}): the next trial of "
                f"`tunelab run` for {name} takes it.")
    if state == "running":
        return f"trial {twin.number} of {name} is running this configuration now."
    value = f", {twin.value:.4g}" if twin.value is not None else ""
    return (f"trial {twin.number} of {name} already ran this configuration ({state}{value}): "
            f"not queued again. To run it again on purpose: `tunelab rerun {name} {twin.number}` "
            f"(or `tunelab confirm {name}`: the best trials again with other seeds).")
