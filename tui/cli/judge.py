"""`tunelab review judge NAME --model REF` (or `--endpoint URL`): an LLM judge votes on a review
as rater judge:NAME, in both orders; then its agreement with each human. `tunelab review
judge-prompt` writes the default judging prompt, to edit."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tunelab import store as st
from tunelab.store.errors import TunelabError
from tunelab.tui.cli.options import DEFAULT_STORE, StoreOption
from tunelab.tui.cli.output import console, print_wide


def judge(
    name: Annotated[str, typer.Argument(help="The review to judge.")],
    model: Annotated[str | None, typer.Option(
        help="The judging model: a folder, a hub id, base, best, trial:N (of the review's "
             "experiment) or EXPERIMENT:N; with --endpoint, the server's model name.")] = None,
    endpoint: Annotated[str | None, typer.Option(
        help="An OpenAI-compatible server (vLLM, llama.cpp), e.g. http://127.0.0.1:8000/v1.")]
    = None,
    prompt: Annotated[Path | None, typer.Option(
        help="The judging prompt file ({question}, {answer_a}, {answer_b}); default: the one "
             "`tunelab review judge-prompt` prints.")] = None,
    as_: Annotated[str | None, typer.Option(
        "--as", help="The judge's name: its votes are rater judge:NAME (default: the model's).")]
    = None,
    key_env: Annotated[str, typer.Option(
        help="The environment variable holding the server's key, if it wants one (never stored).")]
    = "OPENAI_API_KEY",
    max_new_tokens: Annotated[int, typer.Option(help="The longest answer the judge writes.")]
    = 512,
    parallel: Annotated[int, typer.Option(help="Requests at once to an endpoint.")] = 4,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """An LLM judge votes on every item in both orders (a disagreement between the orders is
    a tie); its votes go in as rater judge:NAME, then its agreement with each human is shown."""
    from tunelab.engine.review import judge as judging
    from tunelab.engine.review.endpoint import Endpoint

    if model is None and endpoint is None:
        raise TunelabError("give the judging model: --model REF (a folder, a hub id, best, "
                           "trial:N…) or --endpoint URL of an OpenAI-compatible server",
                           "no judge")
    st.flush_orphans(store)
    review = _review(store, name)
    text = judging.JudgePrompt.load(prompt)
    found: judging.Judge
    if endpoint is not None:
        found = judging.EndpointJudge(Endpoint(endpoint, model, key_env, max_new_tokens,
                                               parallel=parallel))
    else:
        with console.status(f"loading {model}…"):
            found = judging.load_local(store, review.experiment, str(model), max_new_tokens)
    rater = judging.judge_name(as_, found.label)
    with console.status(f"{rater} judging {review.name} in both orders…") as status:
        run = judging.judge_review(store, review, found, rater, text, progress=lambda k, n:
                                   status.update(f"{rater}: {k} of {n} judgements…"))
    console.print(f"{rater} ({found.label}, {text.source}) judged {run.items} items in both "
                  f"orders: {run.agreed} the same both times, {run.disagreed} differently (ties)"
                  + (f", {run.unclear} without a verdict in an order (skips)" if run.unclear
                     else ""), markup=False)
    print_judges(store, review)
    console.print(f"next: tunelab review stats {review.name} · tunelab sql \"select * from "
                  f"votes where rater = '{rater}'\"", markup=False)


def judge_prompt(
    out: Annotated[Path | None, typer.Option(help="The file to write (default: stdout).")] = None,
) -> None:
    """The default judging prompt, to edit and pass as `tunelab review judge … --prompt FILE`."""
    from tunelab.engine.review.judge import JudgePrompt

    text = JudgePrompt.load().text
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}: edit it, then tunelab review judge NAME --model REF "
                      f"--prompt {out}", markup=False)


def register(app: typer.Typer) -> None:
    """`review judge` and `review judge-prompt`, in the review group."""
    app.command("judge")(judge)
    app.command("judge-prompt")(judge_prompt)


def _review(store: Path, name: str) -> st.ReviewRecord:
    found = st.find_review(store, name) if store.exists() else None
    if found is None:
        raise TunelabError(f"no review {name!r} in {store}; create one with "
                           "`tunelab review new EXPERIMENT`", "unknown review")
    return found


def print_judges(store: Path, review: st.ReviewRecord) -> None:
    """The judges' agreement with each human, and every rater's position and length leanings."""
    from tunelab.engine.review import judge_words, reviews

    found = reviews.review_judges(store, review.id)
    if not found.judged:
        return
    table = Table(title="judges and humans", title_justify="left")
    for column in judge_words.AGREEMENT_COLUMNS:
        table.add_column(column, justify="left" if column in {"judge", "human"} else "right")
    for row in judge_words.agreement_rows(found.agreements):
        table.add_row(*row)
    print_wide(table)
    leaning = Table(title="position and length", title_justify="left")
    for column in judge_words.LEANING_COLUMNS:
        leaning.add_column(column, justify="left" if column == "rater" else "right")
    for row in judge_words.leaning_rows(found.leanings):
        leaning.add_row(*row)
    print_wide(leaning)
    for line in judge_words.notes(found.agreements, found.leanings):
        console.print(line, markup=False)
