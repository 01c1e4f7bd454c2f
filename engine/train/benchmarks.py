"""Standard benchmarks through lm-evaluation-harness ([eval.harness]), run inside the trial process
on the model it already holds (`HFLM(pretrained=model, tokenizer=…)`): no second load, no export
first. The baseline runs them on the base model.

Every seed lm-eval draws with (the few-shot examples, its sampling) is eval.harness.seed, and
`limit` caps the documents of each task, so two trials are scored on the same questions with the
same examples. A score lands in `evaluations` as split "harness", name TASK:METRIC
("tunelab_tiny:acc"; a metric under a filter other than lm-eval's "none" keeps it:
"gsm8k:exact_match,strict-match"), so it can be an objective or a success criterion like any
metric.

The extra is optional: `pip install 'tunelab[harness]'`. Tasks are found among lm-eval's own,
in eval.harness.include_path and in the tasks shipped with tunelab (engine/train/tasks:
tunelab_tiny, offline). Indexing lm-eval's ~15,000 task files takes seconds, so it is skipped
when every task named is one of ours or the file's own.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from tunelab.engine.errors import SpecError
from tunelab.engine.objectives import HARNESS_SPLIT
from tunelab.engine.spec import Experiment
from tunelab.engine.spec.measures import HARNESS_MISSING

SHIPPED_TASKS = Path(__file__).resolve().parent / "tasks"


def installed() -> bool:
    return importlib.util.find_spec("lm_eval") is not None


def task_manager(exp: Experiment) -> Any:
    """An lm-eval TaskManager that knows every task the file names (see the module)."""
    if not installed():
        raise SpecError(HARNESS_MISSING, "lm-evaluation-harness missing")
    from lm_eval.tasks import TaskManager

    spec = exp.eval.harness
    assert spec is not None
    paths = [str(SHIPPED_TASKS)] + ([str(Path(spec.include_path))] if spec.include_path else [])
    ours = TaskManager(include_path=paths, include_defaults=False)
    if all(task in ours.all_tasks for task in spec.tasks):
        return ours
    return TaskManager(include_path=paths)


def check_tasks(exp: Experiment) -> None:
    """Refuses a file whose [eval.harness] names a task lm-eval does not know (before a sweep
    trains for hours and every trial fails at its end)."""
    if exp.eval.harness is None:
        return
    manager = task_manager(exp)
    unknown = [t for t in exp.eval.harness.tasks if t not in manager.all_tasks]
    if unknown:
        import difflib

        hints = [f"{t} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(
            t, manager.all_tasks, n=1)) else t for t in unknown]
        raise SpecError(f"eval.harness.tasks: lm-eval knows no task {', '.join(hints)}; "
                        "`lm-eval ls tasks` lists them, include_path adds your own",
                        "unknown benchmark")


def scores(model: Any, tokenizer: Any, exp: Experiment) -> dict[str, float]:
    """"harness/TASK:METRIC" -> score of the model on the tasks of [eval.harness]."""
    spec = exp.eval.harness
    # a trial on several devices: rank 0 scores and records (its rank read as trial.rank() reads
    # it: the harness imports this module through evaluate, so importing it back is a cycle)
    if spec is None or int(os.environ.get("RANK", "0")) != 0:
        return {}
    manager = task_manager(exp)
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=spec.batch_size,
              max_length=exp.train.max_length)
    seed = spec.seed
    found = simple_evaluate(model=lm, tasks=list(spec.tasks), num_fewshot=spec.num_fewshot,
                            limit=spec.limit, task_manager=manager, log_samples=False,
                            bootstrap_iters=0, random_seed=seed, numpy_random_seed=seed,
                            torch_random_seed=seed, fewshot_random_seed=seed)
    return flatten((found or {}).get("results", {}))


def flatten(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """lm-eval's {task: {"acc,none": 0.5, "acc_stderr,none": …, "alias": …}} as tunelab's
    values: {"harness/task:acc": 0.5} (standard errors, labels and document counts left out)."""
    values: dict[str, float] = {}
    for task, found in results.items():
        for key, value in found.items():
            metric, _, filtered = key.partition(",")
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or metric in ("alias", "sample_len") or metric.endswith("_stderr"):
                continue
            name = metric if filtered in ("", "none") else f"{metric},{filtered}"
            values[f"{HARNESS_SPLIT}/{task}:{name}"] = float(value)
    return values
