"""How `tunelab run` shows a sweep: the runner sends events (`data`, `baseline`, `trial_start`,
`trial_progress`, `trial_end`, …) and `ConsoleReporter.event` hands each to its `on_NAME`
method; an event without one is not shown.

On a terminal: a live block (done/running/pruned/failed, best so far, ETA, then one line per
running trial with its step and loss) above which a line per finished trial is printed.
Otherwise (nohup, CI, logs): plain lines, one per event shown (an evaluation, a finished
trial), never wrapped (see `output`).
"""

from __future__ import annotations

from typing import Any

from tunelab.engine import format as fmt
from tunelab.engine import objectives
from tunelab.tui.cli.output import console, errors

TOKENIZING_SAID = 10_000  # rows: in a log, a trial's tokenizing is a line of its own from here


class ConsoleReporter:
    def __init__(self, name: str, direction: str = "minimize") -> None:
        self.name = name
        self.direction = direction
        self.live: Any = None
        self.running: dict[int, dict[str, Any]] = {}  # trial number -> what it shows
        self.target = 0
        self.finished = 0
        self.workers = 1
        self.counts = {"complete": 0, "pruned": 0, "failed": 0}
        self.durations: list[float] = []
        self.best: tuple[float, int] | None = None
        self.note = ""  # shown in the live block (the baseline, stopping…)
        self.shown = fmt.number  # the objective's values (a preference sweep's: fmt.rating)

    def event(self, name: str, **data: Any) -> None:
        handler = getattr(self, f"on_{name}", None)
        if handler is not None:
            handler(**data)

    # ------------------------------------------------------------ the live block and lines

    @property
    def current(self) -> dict[str, Any]:
        """The trial shown last (one worker: the trial)."""
        return next(reversed(self.running.values()), {})

    def _progress(self) -> str:
        """`3/8 · 2 running · 1 pruned · best 0.652 (trial 1) · ETA 2m10s`"""
        parts = [f"{self.finished}/{self.target}"]
        if len(self.running) > 1 or self.workers > 1:
            parts.append(f"{len(self.running)} running")
        for state in ("voting", "pruned", "failed"):
            if self.counts.get(state):
                parts.append(f"{self.counts[state]} {state}")
        if self.best is not None:
            parts.append(f"best {self.shown(self.best[0])} (trial {self.best[1]})")
        if self.durations and self.finished < self.target:
            mean = sum(self.durations) / len(self.durations)
            left = self.target - self.finished
            parts.append(f"ETA {fmt.duration(mean * left / max(1, self.workers))}")
        return " · ".join(parts)

    def _trial_text(self, number: int, params: dict[str, Any], tail: str) -> str:
        parts = [f"trial {number:<3}"]
        for key, value in params.items():
            shown = fmt.number(value) if isinstance(value, float) else str(value)
            parts.append(shown if key == "method.kind" else f"{fmt.param_name(key)} {shown}")
        return "  ".join(parts) + "  " + tail

    def _running_text(self, c: dict[str, Any]) -> str:
        step = f"  step {c['step']}" if c.get("step") is not None else ""
        ev = f"  eval_loss {fmt.number(c['eval'])}" if c.get("eval") is not None else ""
        loss = f"  loss {fmt.number(c['loss'])}" if c.get("loss") is not None else ""
        where = f"epoch {c['epoch']}/{c['epochs']}" if c.get("started") else c.get("setup", "starting…")
        return self._trial_text(c["number"], c["params"], f"{where}{step}{ev}{loss}")

    def _render(self) -> str:
        if not self.running:
            return self.note
        lines = [self._running_text(c) for c in self.running.values()]
        if len(lines) == 1 and self.workers == 1:
            return _beside(lines[0], f"[dim]{self._progress()}[/]", "\n")
        head = f"[bold]{self.name}[/] · {self._progress()}" + (f" · {self.note}" if self.note else "")
        return "\n".join([head, *("  " + line for line in lines)])

    def _refresh(self) -> None:
        if not console.is_terminal:
            return
        from rich.live import Live
        from rich.text import Text

        text = Text.from_markup(self._render())
        if self.live is None:
            self.live = Live(text, console=console, transient=True, refresh_per_second=4)
            self.live.start()
        else:
            self.live.update(text)

    def _status(self, text: str) -> None:
        if console.is_terminal:
            self.note = text
            self._refresh()
        else:
            console.print(text)

    def stop_live(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _print(self, text: str, err: bool = False) -> None:
        """A line above the live block (which stays)."""
        (self.live.console if self.live is not None and not err else errors if err else console).print(text)

    # ------------------------------------------------------------ before the sweep

    def on_data(self, report: Any, **_: Any) -> None:
        counts = report.counts
        rejected = report.rows_rejected
        console.print(
            f"[bold]{self.name}[/] · {report.rows_read:,} examples → "
            f"{counts['train']}/{counts['validation']}/{counts['test']} (train/validation/test)"
            f" · {report.duplicates_removed} duplicates removed · {rejected} rows rejected"
        )
        warned = [f for f in getattr(report, "findings", []) if f.level == "warning"]
        if warned:
            console.print(f"[yellow]{len(warned)} data warning{'s' if len(warned) != 1 else ''}[/]"
                          f" (first: {warned[0].message}); `tunelab data FILE` shows the report")

    def on_preferences(self, parent: str, report: Any, **_: Any) -> None:
        from tunelab.tui.cli import data_view

        data_view.print_preferences(console, self.name, parent, report)

    def on_building_base(self, **_: Any) -> None:
        console.print("building the scratch model and training its tokenizer on the data…")

    def on_stale(self, number: int, **_: Any) -> None:
        console.print(f"trial {number} was left running by a stopped run: marked failed")

    def on_retry(self, number: int, **_: Any) -> None:
        console.print(f"trial {number} failed: queued again with the same parameters")

    def on_baseline_start(self, **_: Any) -> None:
        self._status("evaluating the base model (the baseline)…")

    def on_baseline(self, values: dict[str, float], cached: bool, **_: Any) -> None:
        self.note = ""
        self.stop_live()
        v = values
        from_before = " (from an earlier run)" if cached else ""
        console.print(f"baseline    eval_loss {fmt.number(v.get('validation/loss'))}"
                      f"   test loss {fmt.number(v.get('test/loss'))}{from_before}")
        if "preferences/preference_accuracy" in v:  # a dpo stage: the parent is the baseline
            console.print(
                "            the parent prefers the chosen answer in "
                f"{fmt.percent(v['preferences/preference_accuracy'])} of held-out pairs, "
                f"{fmt.percent(v.get('preferences_train/preference_accuracy'))} of training pairs")

    def on_baseline_failed(self, error: str, **_: Any) -> None:
        self.note = ""
        self.stop_live()
        errors.print(f"the baseline evaluation failed: {error}")

    # ------------------------------------------------------------ the sweep

    def on_sweep(self, trials: int, finished: int, workers: int = 1, threads: int | None = None,
                 **_: Any) -> None:
        self.target, self.finished, self.workers = trials, finished, workers
        left = trials - finished
        resumed = f", resuming after {finished} finished" if finished else ""
        at_once = f", {workers} at a time" if workers > 1 else ""
        cpu = f" ({threads} CPU thread{'s' if threads != 1 else ''} each)" if threads else ""
        console.print(f"{left} trial{'s' if left != 1 else ''} to run{at_once}{resumed}{cpu}")

    def on_trust_remote_code(self, model: Any, **_: Any) -> None:
        console.print(f"[yellow]model.trust_remote_code = true: the Python code that comes with "
                      f"{model} runs in every trial[/]")

    def on_timeout(self, seconds: float, **_: Any) -> None:
        self._print(f"search.timeout ({fmt.duration(seconds)}) reached: no new trial starts")

    def on_stopping(self, running: list[int], now: bool = False, **_: Any) -> None:
        listed = ", ".join(str(n) for n in running) or "none"
        self.note = "stopping now…" if now else "stopping after the current evaluation…"
        self._print("[yellow]Ctrl-C: stopping now[/]" if now else
                    f"[yellow]Ctrl-C: no new trial; trials {listed} stop after their current "
                    "evaluation (Ctrl-C again to stop now)[/]")
        self._refresh()

    def on_stopping_now(self, running: list[int], **_: Any) -> None:
        self.on_stopping(running, now=True)

    def on_trial_start(self, number: int, params: dict[str, Any], epochs: int, **_: Any) -> None:
        self.running[number] = {"number": number, "params": params, "epochs": epochs,
                                "epoch": 0, "eval": None, "loss": None, "step": None,
                                "started": False}
        if console.is_terminal:
            self._refresh()
        elif self.workers > 1:
            console.print(self._trial_text(number, params, "started"))

    def on_trial_progress(self, number: int, kind: str, **data: Any) -> None:
        if kind == "oom":
            self._print(f"trial {number}: out of memory at micro-batch {data['micro_batch']}; "
                        f"retrying at {data['next']} with twice the gradient accumulation "
                        "(same effective batch)")
            return
        c = self.running.get(number)
        if c is None:
            return
        if kind == "tokenizing":  # seconds at a large data set; the sweep's other trials read it back
            c["setup"] = f"tokenizing {data['rows']:,} rows…"
            if not console.is_terminal and data["rows"] >= TOKENIZING_SAID:
                console.print(f"trial {number}: tokenizing {data['rows']:,} rows (once: the "
                              "sweep's other trials read them back)")
        if kind in ("start", "log", "eval"):
            c["started"] = True
        if "step" in data:
            c["step"] = data["step"]
        if kind == "eval":
            c["epoch"] = round(data["epoch"])
            c["eval"] = data["eval_loss"]
        if kind == "log":
            c["loss"] = data["loss"]
        if console.is_terminal:
            self._refresh()
        elif kind == "eval":
            console.print(self._running_text({**c, "loss": None}) + f"   {self._progress()}")

    def on_trial_end(self, outcome: Any, **_: Any) -> None:
        result = outcome.result
        c = self.running.pop(outcome.number, None) or {"epoch": 0, "epochs": "?"}
        self.counts[result.state] = self.counts.get(result.state, 0) + 1
        self.durations.append(outcome.duration_s)
        if result.state in {"complete", "pruned"}:
            self.finished += 1
        if result.state == "complete" and result.value is not None:
            if self.best is None or objectives.better(result.value, self.best[0], self.direction):
                self.best = (result.value, outcome.number)
        mark = {"complete": "[green]✓ complete[/]", "pruned": "[yellow]✂ pruned[/]",
                "voting": "[magenta]⧗ waits for votes[/]"}.get(
            result.state, f"[red]✗ failed ({result.fail_reason})[/]")
        loss = result.value if result.state != "voting" else (  # its objective is the votes'
            (result.info.get("values") or {}).get("validation/loss"))
        tail = (f"epoch {c['epoch']}/{c['epochs']}  eval_loss {fmt.number(loss)}  "
                f"{mark}  {fmt.duration(outcome.duration_s)}")
        # the sweep's progress: beside the line when it fits; on a narrow terminal the live
        # block below shows it, and a log (no terminal) keeps it on the line
        line = self._trial_text(outcome.number, outcome.params, tail)
        self._print(_beside(line, f"[dim]{self._progress()}[/]",
                            "" if console.is_terminal and self.running else "\n    "))
        if result.state == "failed" and result.error:
            last = result.error.strip().splitlines()[-1]
            errors.print(f"            {last}")
        if not self.running:
            self.stop_live()
        else:
            self._refresh()

    # ------------------------------------------------------------ a preference sweep

    def on_preference_review(self, review: str, waiting: int, **_: Any) -> None:
        again = f"; {waiting} trial{'s' if waiting != 1 else ''} still wait for votes" \
            if waiting else ""
        self._print(f"votes steer this sweep: [bold]tunelab review {review}[/] (or v in the TUI) "
                    f"while it trains{again}")
        self.shown = fmt.rating  # the best so far is a placement: a rating over the base
        self.counts["voting"] = waiting

    def on_voting(self, number: int, opponent: str, items: int, review: str, **_: Any) -> None:
        self._print(f"trial {number:<3} waits for votes: {items} items against {opponent} "
                    f"· tunelab review {review}")

    def on_placed(self, number: int, rating: float, how: str, opponent: str, votes: int,
                  **_: Any) -> None:
        self.counts["voting"] = max(0, self.counts.get("voting", 0) - 1)
        self.counts["complete"] = self.counts.get("complete", 0) + 1
        self.finished += 1
        if self.best is None or objectives.better(rating, self.best[0], self.direction):
            self.best = (rating, number)
        why = {"won": f"ranked above {opponent}", "lost": f"ranked below {opponent}",
               "budget": f"not ranked apart from {opponent} within the vote budget"}[how]
        self._print(f"trial {number:<3} [green]placed {fmt.rating(rating)}[/] over the base, told "
                    f"to the search ({why} after {votes} votes)   [dim]{self._progress()}[/]")
        if self.live is not None:
            self._refresh()

    def on_waiting_votes(self, numbers: list[int], review: str, **_: Any) -> None:
        if numbers:
            self._print(f"trials {', '.join(map(str, numbers))} wait for votes: "
                        f"tunelab review {review} (Ctrl-C stops waiting; they stay in the sweep)")

    def on_judge_error(self, error: str, **_: Any) -> None:
        errors.print(f"the votes could not be read this time ({error}); trying again")

    def on_preference_winner(self, number: int, told: float, now: str, rank: str, of: int,
                             votes: int, opponent: str, total: int, review: str,
                             **_: Any) -> None:
        self.stop_live()
        console.print(f"[bold]winner: trial {number}[/] · placed {fmt.rating(told)} over the base "
                      f"(told to the search when {votes} votes against {opponent} placed it)")
        console.print(f"the review now, on all {total} votes: trial {number} rated {now}, rank "
                      f"{rank} of {of} (1000 = the average model; tunelab review stats {review})")
        if told <= 0:
            console.print("[yellow]no trial was preferred to the base model[/]")
        console.print(f"next: tunelab confirm {self.name} · tunelab review stats {review} · "
                      f"tunelab review export {review}")


def _beside(line: str, extra: str, otherwise: str) -> str:
    """`line   extra` when it fits the terminal's width (80 columns over SSH is common), else
    `line` + `otherwise` + `extra` (`otherwise` "" drops `extra`). Not a terminal: beside."""
    from rich.text import Text

    joined = f"{line}   {extra}"
    if not console.is_terminal or Text.from_markup(joined).cell_len <= console.width:
        return joined
    return line if not otherwise else f"{line}{otherwise}{extra}"

