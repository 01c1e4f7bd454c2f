"""How `tunelab run` shows a sweep: the runner sends typed events (engine.run.events) and
`ConsoleReporter.event` matches each to what a person reads; its last case is `assert_never`,
so an event nobody shows is a type error.

On a terminal: a live block at the bottom (one line per running trial with its epoch, step
and losses, then the sweep's counter: done/target, pruned, best so far, ETA) above which a
line per finished trial is printed. Every line is fitted to the terminal's width between its
parts (tui/cli/layout.py): nothing is cut inside a value, and the counter stays in the block.
Otherwise (nohup, CI, logs): plain lines, one per event shown, each with the counter, never
wrapped (see `output`).
"""

from __future__ import annotations

import math
import time
from typing import Any, assert_never

from rich.text import Text

from tunelab.engine import baselines, objectives
from tunelab.engine import format as fmt
from tunelab.engine.run import events as ev
from tunelab.tui.cli.eta import Eta, Snapshot
from tunelab.tui.cli.layout import fit, wrap
from tunelab.tui.cli.output import console, errors, width
from tunelab.tui.states import state_markup

TOKENIZING_SAID = 10_000  # rows: in a log, a trial's tokenizing is a line of its own from here
TRIAL_INDENT = len("trial 123  ")  # a trial's line goes on under its parameters


class ConsoleReporter:
    def __init__(self, name: str, direction: str = "minimize", objective: str = "eval_loss",
                 stage: str = "sft") -> None:
        self.name, self.direction, self.objective, self.stage = name, direction, objective, stage
        self.live: Any = None
        self.running: dict[int, dict[str, Any]] = {}  # trial number -> what it shows
        self.counts = {"complete": 0, "pruned": 0, "failed": 0}  # waiting for votes: self.eta
        self.best: tuple[float, int] | None = None
        self.note = ""  # shown in the live block (the baseline, stopping…)
        self.eta = Eta(0, 0)
        self.began = time.monotonic()  # the command's start: the total at the end
        self.swept: float | None = None  # the sweep's start
        # the live block as of the last event: trial lines, head, counter, ETA's inputs, note
        self.frame: tuple[list[Text], list[str], list[str], Snapshot | None, list[str]] = (
            [], [], [], None, [])

    def event(self, event: ev.Event) -> None:
        match event:
            case ev.TrustRemoteCode(model=model):
                self._print(f"[yellow]model.trust_remote_code = true: the Python code that comes "
                            f"with {model} runs in every trial[/]")
            case ev.DataPrepared(report=report):
                self.on_data(report)
            case ev.PreferencesPrepared(report=report, parent=parent):
                from tunelab.tui.cli import data_view

                data_view.print_preferences(console, self.name, parent, report)
            case ev.BuildingBase():
                self._print("building the scratch model and training its tokenizer on the data…")
            case ev.Stale(number=number):
                self._print(f"trial {number} was left running by a stopped run: marked failed")
            case ev.Retry(number=number):
                self._print(f"trial {number} failed: queued again with the same parameters")
            case ev.BaselineStart():
                self._status("evaluating the base model (the baseline)…")
            case ev.Baseline():
                self.on_baseline(event)
            case ev.Warned(text=text):
                self._print(f"[yellow]warning:[/] {text}", err=True)
            case ev.Remade():
                self.on_remade(event)
            case ev.Settled(number=number, state=state):
                self._print(f"trial {number} ended {state} but its end never reached the store "
                            "(a full disk?): recorded now, as the study has it")
            case ev.Sweep():
                self.on_sweep(event)
            case ev.SweepTimeout(seconds=seconds):
                self._print(f"search.timeout ({fmt.duration(seconds)}) reached: no new trial starts")
            case ev.Stopping():
                self.on_stopping(event)
            case ev.TrialStart():
                self.on_trial_start(event)
            case ev.TrialProgress():
                self.on_trial_progress(event)
            case ev.TrialTimeout(number=number, seconds=seconds):
                self._print(f"[red]trial {number} ran past search.trial_timeout "
                            f"({fmt.duration(seconds)}): killed[/]")
            case ev.TrialEnd(outcome=outcome):
                self.on_trial_end(outcome)
            case ev.PreferenceReview() | ev.Voting() | ev.Predicted() | ev.Placed() \
                    | ev.WaitingVotes() | ev.JudgeError() | ev.PreferenceWinner():
                self.on_votes(event)
            case _:
                assert_never(event)

    # ------------------------------------------------------------ the live block and lines

    def value(self, value: float | None) -> str:
        """The objective as every surface shows it (a preference sweep's: its placement)."""
        return fmt.objective_value(self.objective, value)

    def counter(self) -> list[str]:
        """`3/8`, `2 running`, `1 pruned`, `best 0.652 (trial 1)`, `ETA 2m10s`: the sweep so far."""
        return self._counted() + self._left(self.eta.snapshot(), time.monotonic()) + \
            ([self.note] if self.note else [])

    def _counted(self) -> list[str]:
        parts = [f"{self.eta.finished}/{self.eta.target}"]
        if len(self.running) > 1 or self.eta.workers > 1:
            parts.append(f"{len(self.running)} running")
        parts += [f"{n} {s}" for s, n in (("voting", self.eta.voting), ("pruned", self.counts["pruned"]),
                                          ("failed", self.counts["failed"])) if n]
        if self.best is not None:
            parts.append(f"best {self.value(self.best[0])} (trial {self.best[1]})")
        return parts

    def _left(self, snapshot: Snapshot, now: float) -> list[str]:
        """`ETA 2m10s` (`ETA ≤ 3m30s` where a pruner may stop trials early); while only votes
        are left, that the sweep waits for them."""
        left = snapshot.remaining(now)
        if left is not None:
            return [f"ETA {'≤ ' if left.bound else ''}{fmt.duration(left.seconds)}"]
        if snapshot.voting and not snapshot.running and not snapshot.not_started:
            return ["waits for your votes"]
        return []

    def _trial_parts(self, number: int, params: dict[str, Any]) -> list[str]:
        parts = [f"trial {number:<3}"]
        for key, value in params.items():
            shown = fmt.number(value) if isinstance(value, float) else str(value)
            parts.append(shown if key == "method.kind" else f"{fmt.param_name(key)} {shown}")
        return parts

    def _running_parts(self, c: dict[str, Any]) -> list[str]:
        # the epoch under way (the last logged step's), else the trial's setup
        where = f"epoch {c['epoch']}/{c['epochs']}" if c.get("started") else c.get("setup", "starting…")
        return [*self._trial_parts(c["number"], c["params"]), where,
                f"step {c['step']}" if c.get("step") is not None else "",
                f"eval_loss {fmt.number(c['eval'])}" if c.get("eval") is not None else "",
                f"loss {fmt.number(c['loss'])}" if c.get("loss") is not None else "",
                c.get("final", "")]

    def __rich__(self) -> Text:
        """The live block, drawn by rich's own thread several times a second: from the frame of
        the last event (never the reporter's changing state), with the ETA worked out now, so
        that it counts down between events."""
        trials, head, counted, snapshot, note = self.frame
        parts = [*counted, *(self._left(snapshot, time.monotonic()) if snapshot else []), *note]
        if not parts:
            return Text("\n").join(trials)
        return Text("\n").join([*trials, _dim(fit([*head, *parts], width(), " · ", 2))])

    def _refresh(self) -> None:
        """The live block made anew from the reporter's state (started on first use)."""
        if not console.is_terminal:
            return
        from rich.live import Live

        several = len(self.running) > 1 or self.eta.workers > 1
        trials = [fit(self._running_parts(c), (width() or 80) - 2 * several, indent=TRIAL_INDENT)
                  for c in self.running.values()]
        if several:  # under the sweep's name
            trials = [Text("\n").join(Text("  ") + line for line in t.split("\n")) for t in trials]
        swept = self.swept is not None
        self.frame = (trials, [f"[bold]{self.name}[/]"] if several else [],
                      self._counted() if swept else [], self.eta.snapshot() if swept else None,
                      [self.note] if self.note else [])
        if self.live is None:
            self.live = Live(self, console=console, transient=True, refresh_per_second=4)
            self.live.start()
        else:
            self.live.refresh()

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

    def _print(self, text: str | Text, err: bool = False, indent: int = 4) -> None:
        """A line above the live block (which stays); a sentence is broken between words to
        the terminal's width, its lines after the first indented."""
        # while the live block is up, every line goes above it through its console (a line
        # written to stderr meanwhile would land inside the block)
        out = self.live.console if self.live is not None else errors if err else console
        out.print(wrap(text, width(), indent) if isinstance(text, str) else text)

    def _print_trial(self, parts: list[str]) -> None:
        """A trial's line: fitted to the terminal (the block below shows the counter); in a log,
        one line with the counter at its end."""
        if console.is_terminal:
            self._print(fit(parts, width(), indent=TRIAL_INDENT))
        else:
            console.print(fit([*parts, " · ".join(self.counter())], None))

    # ------------------------------------------------------------ before the sweep

    def on_data(self, report: Any) -> None:
        counts = report.counts
        console.print(fit([f"[bold]{self.name}[/]",
                           f"{report.rows_read:,} examples → {counts['train']}/"
                           f"{counts['validation']}/{counts['test']} (train/validation/test)",
                           f"{report.duplicates_removed} duplicates removed",
                           f"{report.rows_rejected} rows rejected"], width(), " · ", 2))
        warned = [f for f in getattr(report, "findings", []) if f.level == "warning"]
        if warned:
            self._print(f"[yellow]{len(warned)} data warning{'s' if len(warned) != 1 else ''}[/]"
                        f" (first: {warned[0].message}); `tunelab data FILE` shows the report")

    def on_remade(self, event: ev.Remade) -> None:
        lost, several = event.lost, len(event.lost) > 1
        gone = (f"; the folder{'s' if several else ''} of trial{'s' if several else ''} "
                f"{', '.join(map(str, lost))} {'are' if several else 'is'} gone with it: the "
                "results stay in the store, the checkpoints cannot be exported or chatted with"
                if lost else "")
        self._print(f"[yellow]warning:[/] {event.runs} was deleted during the sweep: the prepared "
                    f"data and the base model were made again{gone}", err=True)

    def on_baseline(self, event: ev.Baseline) -> None:
        self.note = ""
        self.stop_live()
        v = event.values
        # a preference sweep's objective is a rating over this very model: its loss is shown
        shown = "eval_loss" if self.objective == objectives.PREFERENCE else self.objective
        value = v.get(objectives.metric_key(shown, self.stage))
        console.print(fit(["baseline  ", f"{shown} {fmt.number(value)}",
                           f" test loss {fmt.number(v.get('test/loss'))}",
                           "(from an earlier run)" if event.cached else ""], width(), indent=12))
        if "preferences/preference_accuracy" in v:  # a dpo stage: the parent is the baseline
            self._print(
                "            the parent prefers the chosen answer in "
                f"{fmt.percent(v['preferences/preference_accuracy'])} of held-out pairs, "
                f"{fmt.percent(v.get('preferences_train/preference_accuracy'))} of training pairs",
                indent=12)
        elif "preferences/reward_accuracy" in v:  # a reward stage: the parent, an untrained head
            self._print(
                "            an untrained head scores the chosen answer higher in "
                f"{fmt.percent(v['preferences/reward_accuracy'])} of held-out pairs", indent=12)
        for line in fewshot_lines(event.baselines):  # the base with examples in its prompts
            self._print(line, indent=12)
        if event.meets:
            self._print(f"[bold green]{event.meets}[/]")

    # ------------------------------------------------------------ the sweep

    def on_sweep(self, event: ev.Sweep) -> None:
        self.eta = Eta(event.trials, event.finished, event.workers, event.pruning)
        self.swept = time.monotonic()
        left = event.trials - event.finished
        resumed = f", resuming after {event.finished} finished" if event.finished else ""
        at_once = f", {event.workers} at a time" if event.workers > 1 else ""
        threads = event.threads
        cpu = f" ({threads} CPU thread{'s' if threads != 1 else ''} each)" if threads else ""
        self._print(f"{left} trial{'s' if left != 1 else ''} to run{at_once}{resumed}{cpu}")
        self._refresh()

    def on_stopping(self, event: ev.Stopping) -> None:
        listed = ", ".join(str(n) for n in event.running) or "none"
        self.note = "stopping now…" if event.now else "stopping after the current evaluation…"
        self._print("[yellow]Ctrl-C: stopping now[/]" if event.now else
                    f"[yellow]Ctrl-C: no new trial; trials {listed} stop after their current "
                    "evaluation (Ctrl-C again to stop now)[/]")
        self._refresh()

    def on_trial_start(self, event: ev.TrialStart) -> None:
        self.running[event.number] = {"number": event.number, "params": event.params,
                                      "epochs": event.epochs, "epoch": 0, "eval": None,
                                      "loss": None, "step": None, "started": False}
        self.eta.start(event.number, event.epochs)
        if console.is_terminal:
            self._refresh()
        elif self.eta.workers > 1:
            console.print(fit([*self._trial_parts(event.number, event.params), "started"], None))

    def on_trial_progress(self, event: ev.TrialProgress) -> None:
        number, kind, data = event.number, event.kind, event.data
        if kind == "oom":
            self._print(f"trial {number}: out of memory at micro-batch {data['micro_batch']}; "
                        f"retrying at {data['next']} with twice the gradient accumulation "
                        "(same effective batch)")
            return
        c = self.running.get(number)
        if c is None:
            return
        self.eta.progress(number, kind, data.get("epoch"))
        if kind == "tokenizing":  # seconds at a large data set; the sweep's other trials read it back
            c["setup"] = f"tokenizing {data['rows']:,} rows…"
            if not console.is_terminal and data["rows"] >= TOKENIZING_SAID:
                console.print(f"trial {number}: tokenizing {data['rows']:,} rows (once: the "
                              "sweep's other trials read them back)")
        c["started"] = c["started"] or kind in ("start", "log", "eval")
        c["step"] = data.get("step", c["step"])
        if kind == "eval":
            c["epoch"] = c["evaluated"] = round(data["epoch"])
            c["eval"] = data["eval_loss"]
        if kind == "log":
            c["loss"] = data["loss"]
            c["epoch"] = max(c["epoch"], math.ceil(data.get("epoch") or 0))
        if kind == "evaluate":
            c["final"] = "final evaluation…"
        if console.is_terminal:
            self._refresh()
        elif kind == "eval":
            console.print(fit([*self._running_parts({**c, "loss": None}),
                               " · ".join(self.counter())], None))

    def on_trial_end(self, outcome: Any) -> None:
        result = outcome.result
        c = self.running.pop(outcome.number, None) or {"epochs": "?"}
        self.eta.end(outcome.number, result.state, outcome.duration_s)
        if result.state != "voting":  # counted by self.eta until the votes place it
            self.counts[result.state] = self.counts.get(result.state, 0) + 1
        if result.state == "complete" and result.value is not None:
            if self.best is None or objectives.better(result.value, self.best[0], self.direction):
                self.best = (result.value, outcome.number)
        said = {"complete": "✓ complete", "pruned": "✂ pruned", "voting": "⧗ waits for votes"}
        mark = (state_markup(result.state, said[result.state]) if result.state in said
                else state_markup("failed", f"✗ failed ({result.fail_reason})"))
        if result.state == "voting":  # its objective is the votes': its loss is shown
            values = result.info.get("values") or {}
            shown = f"eval_loss {fmt.number(values.get(objectives.metric_key('eval_loss', self.stage)))}"
        else:
            shown = f"{self.objective} {self.value(result.value)}"
        self._print_trial([*self._trial_parts(outcome.number, outcome.params),
                           f"epoch {c.get('evaluated', 0)}/{c['epochs']}", shown, mark,
                           fmt.duration(outcome.duration_s)])
        if result.state == "failed" and result.error:
            last = result.error.strip().splitlines()[-1]
            self._print(f"            {last}", err=True, indent=12)
        self._refresh()

    def finish(self) -> None:
        """The sweep ended: the live block goes, and the time it took is said."""
        self.stop_live()
        ran = {s: n for s, n in {**self.counts, "waiting for votes": self.eta.voting}.items() if n}
        trials = sum(ran.values())
        if self.swept is None or not trials:
            return
        now = time.monotonic()
        what = ", ".join(f"{n} {s}" for s, n in ran.items())
        console.print(fit([f"{trials} trial{'s' if trials != 1 else ''} in "
                           f"{fmt.duration(now - self.swept)} ({what})",
                           f"{fmt.duration(now - self.began)} with the data and the baseline"],
                          width(), " · ", 2))

    # ------------------------------------------------------------ a preference sweep

    def on_votes(self, event: ev.PreferenceReview | ev.Voting | ev.Predicted | ev.Placed
                 | ev.WaitingVotes | ev.JudgeError | ev.PreferenceWinner) -> None:
        match event:
            case ev.PreferenceReview(review=review, waiting=waiting):
                again = f"; {waiting} trial{'s' if waiting != 1 else ''} still wait for votes" \
                    if waiting else ""
                self._print(fit(["votes steer this sweep:", f"[bold]tunelab review {review}[/]",
                                 f"(or v in the TUI) while it trains{again}"], width(), " "))
                self.eta.voting = waiting
            case ev.Voting(number=number, opponent=opponent, items=items, review=review):
                self._print(fit([f"trial {number:<3} waits for votes: {items} items against "
                                 f"{opponent}", f"· tunelab review {review}"], width(), " "))
            case ev.Predicted(number=number, share=share, model=model):
                self._print(fit([f"trial {number:<3} the reward model {model} predicts it wins "
                                 f"{fmt.percent(share)} of its votes",
                                 "(the likeliest winner is voted on first)"], width(), " "))
            case ev.Placed():
                self.on_placed(event)
            case ev.WaitingVotes(numbers=numbers, review=review):
                if numbers:
                    self._print(fit([f"trials {', '.join(map(str, numbers))} wait for votes:",
                                     f"tunelab review {review}",
                                     "(Ctrl-C stops waiting; they stay in the sweep)"], width(), " "))
            case ev.JudgeError(error=error):
                self._print(f"the votes could not be read this time ({error}); trying again",
                            err=True)
            case ev.PreferenceWinner():
                self.on_preference_winner(event)
            case _:
                assert_never(event)
        self._refresh()

    def on_placed(self, event: ev.Placed) -> None:
        number, rating, opponent = event.number, event.rating, event.opponent
        self.eta.placed()
        self.counts["complete"] += 1
        if self.best is None or objectives.better(rating, self.best[0], self.direction):
            self.best = (rating, number)
        why = {"won": f"ranked above {opponent}", "lost": f"ranked below {opponent}",
               "budget": f"not ranked apart from {opponent} within the vote budget"}[event.how]
        placed = (f"trial {number:<3} [green]placed {fmt.rating(rating)}[/] over the base, told "
                  f"to the search ({why} after {event.votes} votes)")
        # on a terminal the counter is in the live block; in a log, at the line's end
        self._print(placed if console.is_terminal else f"{placed}   {' · '.join(self.counter())}")

    def on_preference_winner(self, event: ev.PreferenceWinner) -> None:
        """Two numbers, each named: the placement the search was told, and where the review's
        statistics (the current fit of every vote) put the trial now."""
        self.stop_live()
        self._print(fit([f"[bold]winner: trial {event.number}[/]",
                         f"· placed {fmt.rating(event.told)} over the base",
                         f"(told to the search when {event.votes} votes against "
                         f"{event.opponent} placed it)",
                         f"· the review now, on all {event.total} votes:",
                         f"trial {event.number} rated {event.rated}, rank {event.rank} of "
                         f"{event.of}", "(1000 = the average model;",
                         f"tunelab review stats {event.review})"], width(), " "))
        if event.told <= 0:
            self._print("[yellow]no trial was preferred to the base model[/]")
        self._print(fit([f"next: tunelab confirm {self.name}", f"tunelab review stats {event.review}",
                         f"tunelab review export {event.review}"], width(), " · ", 6))


def fewshot_lines(found: dict[str, dict[str, float]]) -> list[str]:
    """`base 3-shot test exact_match 0.95 (zero-shot 0.10)`: each few-shot baseline's test
    metrics beside the zero-shot base's."""
    zero = found.get(baselines.BASE, {})
    lines = []
    for baseline in baselines.baselines(found):
        if baseline.shots == 0:
            continue
        shown = [f"test {key.split('/', 1)[1]} {fmt.number(value)} "
                 f"(zero-shot {fmt.number(zero.get(key))})"
                 for key, value in sorted(baseline.values.items()) if key.startswith("test/")]
        lines.append(f"{baseline.label:<11} " + (" · ".join(shown) or "nothing measured"))
    return lines


def _dim(text: Text) -> Text:
    text.stylize("dim")
    return text
