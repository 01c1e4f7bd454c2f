"""A trial on several devices: the trial process launches torchrun, whose ranks train one model
with DDP through the trainer (NCCL on GPUs; gloo on a CPU machine, where `gpus_per_trial` is
the number of processes).

Rank 0 records (spool, Optuna reports) and sends its progress as JSON lines to a file that the
trial process passes on to the runner; its result comes back as a pickle. The other ranks
follow rank 0's pruning and stopping decisions (broadcast after each evaluation).

    python -m torch.distributed.run --standalone --nproc_per_node N -m tunelab.engine.run.distributed JOB.pkl
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from tunelab.engine.run import threads
from tunelab.engine.run.jobs import STOP_AFTER_EVALUATION, TrialJob, TrialResult, exit_when_gone

PARENT = "TUNELAB_TRIAL_PID"


def launch(job: TrialJob, progress: Any, processes: int) -> TrialResult:
    """Runs `job` with torchrun on `processes` ranks; what rank 0 returns, or a failure."""
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / name for name in ("job.pkl", "events.jsonl", "result.pkl", "stop")}
    for name in ("events.jsonl", "result.pkl", "stop"):
        files[name].unlink(missing_ok=True)
    files["job.pkl"].write_bytes(pickle.dumps(job))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", "-m", "tunelab.engine.run.distributed",
               str(files["job.pkl"])]
    per_rank = max(1, (job.threads or threads.cores()) // processes)  # the ranks share the cores
    env = {**os.environ, PARENT: str(os.getpid()), "OMP_NUM_THREADS": str(per_rank),
           "OMP_WAIT_POLICY": "PASSIVE"}
    ranks = subprocess.Popen(command, env=env)  # stdout/stderr: this trial's log
    offset = 0
    stop_sent = False

    def pass_on() -> None:
        nonlocal offset
        if not files["events.jsonl"].exists():
            return
        with files["events.jsonl"].open("rb") as f:
            f.seek(offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        offset += len(complete)
        for line in complete.splitlines():
            event, payload = json.loads(line)
            progress(event, payload)

    try:
        while ranks.poll() is None:
            time.sleep(0.2)
            pass_on()
            if STOP_AFTER_EVALUATION.is_set() and not stop_sent:  # Ctrl-C once
                files["stop"].touch()
                stop_sent = True
        pass_on()
    except BaseException:  # Ctrl-C twice, or the runner gone: the ranks stop now
        ranks.terminate()
        try:
            ranks.wait(10)
        except subprocess.TimeoutExpired:
            ranks.kill()
        raise
    if files["result.pkl"].exists():
        return pickle.loads(files["result.pkl"].read_bytes())
    return TrialResult("failed", fail_reason="killed",
                       error=f"torchrun exited with code {ranks.returncode} and no result; "
                             f"see {out / 'trial.log'}")


def main() -> None:
    """One rank."""
    job: TrialJob = pickle.loads(Path(sys.argv[1]).read_bytes())
    rank = int(os.environ.get("RANK", "0"))
    if os.environ.get(PARENT):
        threading.Thread(target=exit_when_gone, args=(int(os.environ[PARENT]),), daemon=True).start()
    out = Path(job.out_dir)
    events = (out / "events.jsonl").open("a", buffering=1) if rank == 0 else None

    def progress(event: str, data: dict[str, Any]) -> None:
        if events is not None:
            events.write(json.dumps([event, data], default=float) + "\n")

    from tunelab.engine.train import stages

    run_trial = stages.trial(job.stage, job.head)

    print(f"tunelab: rank {rank} of {os.environ.get('WORLD_SIZE')}", flush=True)
    try:
        result = run_trial(job, progress)
        import torch.distributed as dist

        if dist.is_initialized():
            print(f"tunelab: rank {rank} trained with the {dist.get_backend()} backend", flush=True)
    except BaseException as error:  # noqa: BLE001 - rank 0 hands the failure back
        traceback.print_exc()
        if rank != 0:
            raise
        tail = "".join(traceback.format_exception(error)[-6:])
        result = TrialResult("failed", fail_reason="exception", error=tail[-4000:])
    if rank == 0:
        partial = out / "result.pkl.part"
        partial.write_bytes(pickle.dumps(result))
        partial.rename(out / "result.pkl")


if __name__ == "__main__":
    main()
