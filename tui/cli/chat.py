"""`tunelab chat EXPERIMENT [MODEL]`: talk to a trained model in the terminal; with
`--arena A,B`, two hidden models answer side by side and you vote after each turn."""

from __future__ import annotations

from typing import Annotated

import typer

from tunelab import store as st
from tunelab.tui.cli.options import LookupStoresOption, holding


def chat(
    experiment: Annotated[str, typer.Argument(help="The experiment.")],
    model: Annotated[str, typer.Argument(help="base, best or trial:N (or N).")] = "best",
    arena: Annotated[str | None, typer.Option(
        help="Two models, e.g. best,base or 3,7: a blind arena, A and B side by side.")] = None,
    rater: Annotated[str | None, typer.Option(
        help="Who votes in the arena (default: $TUNELAB_RATER or your login).")] = None,
    stores: LookupStoresOption = None,
) -> None:
    """Chat with a model of an experiment: streamed, multi-turn, in the training template.

    Enter sends, Esc stops a reply (and leaves when none is being written), Ctrl+R writes
    it again, Ctrl+N forgets the conversation; /help in the input lists the commands (system
    prompt, temperature, top-p, max tokens, seed, saved probes).

    With --arena A,B: both models answer each message as A and B (which is which is drawn at
    random); after each turn vote a, b, t (tie), x (both bad), w (both good) or s (skip), u
    undoes, r reveals the models, Enter writes the next message. The votes go to a review of kind arena
    (`tunelab review stats NAME`).
    """
    from tunelab.engine.refs import ModelRef
    from tunelab.engine.run.runner import paths
    from tunelab.tui.app import run as run_tui

    # a trial's number names a trial of one store: the chat reads the one that holds the
    # experiment
    store, _ = holding(stores, f"experiment named {experiment!r}",
                       lambda path: st.get_experiment(path, experiment), "")
    if arena is not None:
        from tunelab.engine.review.arena import refs_of, resolve_pair
        from tunelab.engine.review.reviews import rater_name
        from tunelab.tui.screens.arena import ArenaScreen

        refs = resolve_pair(store, experiment, refs_of(arena))  # a mistake is told here, not later
        who = rater_name(rater)
        run_tui([store], lambda: ArenaScreen(store, experiment, refs, who))
        return
    from tunelab.tui.screens.chat import ChatScreen

    ref = str(ModelRef.parse(model))  # a mistake is told here, not in the chat screen
    runs, _ = paths(store, experiment)
    run_tui([store], lambda: ChatScreen(store, experiment, ref, runs / "probes.json"))
