"""`tunelab review …`: create a blind review, vote in the terminal, see the statistics, export
the votes as DPO preference pairs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from typer.core import TyperGroup

from tunelab import store as st
from tunelab.engine import format as fmt
from tunelab.store.errors import TunelabError
from tunelab.tui.cli.options import DEFAULT_STORE, LookupStoresOption, StoreOption, holding
from tunelab.tui.cli.output import console, errors


class _VoteByDefault(TyperGroup):
    """`tunelab review NAME` is `tunelab review vote NAME`."""

    def resolve_command(self, ctx, args):  # noqa: ANN001, ANN201 - click's signature
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args.insert(0, "vote")
        return super().resolve_command(ctx, args)


review_app = typer.Typer(cls=_VoteByDefault, no_args_is_help=True,
                         help="Blind A/B review: new, vote (the default), stats, export.")


@review_app.command("new")
def new(
    experiment: Annotated[str, typer.Argument(help="The experiment whose models to compare.")],
    models: Annotated[str, typer.Option(help="Model refs, comma-separated: base, best, trial:N.")]
    = "base,best",
    n: Annotated[int, typer.Option("--n", help="Prompts to compare on.")] = 50,
    prompts: Annotated[str, typer.Option(
        help="test (the experiment's test split) or a JSON-lines file of {\"prompt\": …}.")] = "test",
    name: Annotated[str | None, typer.Option(help="The review's name (default: the experiment's).")]
    = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest output generated.")] = 128,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Generate every model's outputs and create the review."""
    from tunelab.engine.review import reviews as review

    st.flush_orphans(store)
    rows = review.prompts_for(store, experiment, prompts, n)
    refs = [m.strip() for m in models.split(",") if m.strip()]
    label = name or experiment
    with console.status(f"generating {len(rows)} outputs for {len(refs)} models…") as status:
        found = review.create(store, experiment, label, refs, rows, prompts, max_new_tokens,
                              progress=lambda k, total: status.update(
                                  f"generated {k} of {total} outputs…"))
    items = st.review_items(store, found.id)
    console.print(f"review [bold]{label}[/]: {len(items)} items comparing "
                  f"{', '.join(found.models)} (sides random per item)")
    console.print(f"next: tunelab review {label} · tunelab review stats {label}")


@review_app.command("vote")
def vote(
    name: Annotated[str, typer.Argument(help="The review's name.")],
    rater: Annotated[str | None, typer.Option(help="Who votes (default: $TUNELAB_RATER or your login).")]
    = None,
    order: Annotated[str, typer.Option(help="adaptive: the next item where a vote teaches the "
                                       "most; random: the review's shuffled order.")]
    = "adaptive",
    reward: Annotated[str | None, typer.Option(
        help="A reward model (EXPERIMENT:N or EXPERIMENT:best of a stage = \"reward\" "
             "experiment): what it predicted is shown after each vote, never before.")] = None,
    stores: LookupStoresOption = None,
) -> None:
    """The voting screen: a and b, t tie, x both bad, w both good, s skip, u undo, r reveal, C comment,
    V statistics, esc or q to finish."""
    from tunelab.engine.review import reviews as review
    from tunelab.tui.app import run as run_tui
    from tunelab.tui.screens.review import ReviewScreen

    if order not in ("adaptive", "random"):
        raise TunelabError(f"--order {order!r}: adaptive or random", "bad option")
    store, found = _found(stores, name)
    who = review.rater_name(rater)
    if reward is not None:
        from tunelab.engine.review.predicted import reward_folder

        reward_folder(store, reward)  # a wrong name is said now, not after the first vote
    run_tui([store], lambda: ReviewScreen(store, found, who, order, reward))


def _found(stores: list[Path] | None, name: str) -> tuple[Path, st.ReviewRecord]:
    """The review of that name, and the one of the stores (`--store`, repeatable) that holds
    it: a name in two of them is refused, as the votes go to one."""
    return holding(stores, f"review named {name!r}", lambda store: st.find_review(store, name),
                   "; create one with `tunelab review new EXPERIMENT`")


@review_app.command("stats")
def stats(
    name: Annotated[str, typer.Argument(help="The review's name.")],
    tui: Annotated[bool, typer.Option("--tui", help="The statistics screen (with interval "
                                      "bars) instead of text.")] = False,
    ties: Annotated[str, typer.Option(help="How ties and both-bad count: half (half a win "
                                      "each) or ignore (left out).")] = "half",
    raters: Annotated[str, typer.Option(help="Whose votes the ratings count: humans (the "
                                        "people), judges (the LLM judges) or all.")] = "humans",
    stores: LookupStoresOption = None,
) -> None:
    """Ratings with intervals and ranks, win rates per pair, side bias, agreement, and each LLM
    judge's agreement with each person. The people's ratings are saved to the store (the
    leaderboard view)."""
    from tunelab.engine.review import reviews as review
    from tunelab.engine.review import votes as review_words
    from tunelab.engine.review import words
    from tunelab.engine.review.agreement import check_raters

    review_words.check_ties(ties)
    check_raters(raters)
    store, found = _found(stores, name)
    if tui:
        from tunelab.tui.app import run as run_tui
        from tunelab.tui.screens.review_stats import ReviewStatsScreen

        run_tui([store], lambda: ReviewStatsScreen(store, found))
        return
    s = review.stats(store, found.id, ties=ties, raters=raters)
    whose = "" if raters == "humans" else f" ({raters}' votes; not saved)"
    console.print(f"[bold]{s.review.name}[/]{whose} · "
                  + words.header(s.votes, s.verdicts, s.items, s.per_rater))
    if not s.votes:
        console.print(f"no votes yet: tunelab review {name}")
        return
    table = Table(title="Ratings · Bradley–Terry; 95 % intervals", title_justify="left")
    styled = [words.LENGTH_COLUMN] if s.style else []
    # the group column only when the votes left the models in several comparison groups
    grouped = ["group"] if len({r.group for r in s.ratings}) > 1 else []
    for column in (*grouped, "rank", "model", "rating", *styled, "95 % interval", "votes"):
        table.add_column(column, justify="left" if column in {"model", "95 % interval"}
                         else "right")
    for r in s.ratings:
        table.add_row(*([str(r.group)] if grouped else []), words.rank_text(r), r.model,
                      words.rating_text(r),
                      *([words.styled_text(s.style, r.model)] if s.style else []),
                      r.interval(), fmt.number(r.votes))
    console.print(table)
    for line in words.notes(s.ratings, s.ties, s.style):
        console.print(line)
    pairs = Table(title=words.pairs_title(s.ties), title_justify="left")
    for column in words.PAIR_COLUMNS:
        pairs.add_column(column, justify="left" if column in {"model", "vs"} else "right")
    for row in words.pair_rows(s.pairs):
        pairs.add_row(*row)
    console.print(pairs)
    bias, warn = words.bias_text(s.bias)
    console.print(bias + (" [yellow]More wins on one side than chance allows.[/]" if warn
                          else ""))
    for (r1, r2), (k, kappa) in s.agreement.items():
        console.print(f"agreement {r1} × {r2}: Cohen's {words.kappa_text(kappa)} on {k} shared "
                      "items")
    for rater, (k, share) in s.consistency.items():
        console.print(f"self-consistency {rater}: {fmt.percent(share)} of {k} repeated items "
                      "judged alike")
    from tunelab.tui.cli.judge import print_judges

    print_judges(store, s.review)


@review_app.command("export")
def export(
    name: Annotated[str, typer.Argument(help="The review's name.")],
    format_: Annotated[str, typer.Option("--format", help="dpo: prompt/chosen/rejected JSONL.")]
    = "dpo",
    out: Annotated[Path | None, typer.Option(help="The file to write (default: stdout).")] = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """The votes as a preference data set (ties, both-bad and skips are left out and counted)."""
    from tunelab.engine.data.preferences import dpo_pairs

    if format_ != "dpo":
        raise TunelabError(f"--format {format_!r}: only dpo is supported", "bad option")
    st.flush_orphans(store)
    rows, left_out = dpo_pairs(store, name)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
    counts = ", ".join(f"{v} {k.replace('_', '-')}" for k, v in left_out.items())
    errors.print(f"{len(rows)} preference pairs ({counts} left out)")
