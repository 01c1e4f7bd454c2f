"""`tunelab chat EXPERIMENT [MODEL]`: talk to a trained model in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunelab import store as st
from tunelab.store.errors import TunelabError


def chat(
    experiment: Annotated[str, typer.Argument(help="The experiment.")],
    model: Annotated[str, typer.Argument(help="base, best or trial:N (or N).")] = "best",
    store: Annotated[Path, typer.Option("--store", envvar="TUNELAB_STORE",
                                        help="The DuckDB store file.")] = Path(st.DEFAULT_STORE),
) -> None:
    """Chat with a model of an experiment: streamed, multi-turn, in the training template.

    Enter sends, Esc stops a reply, Ctrl+R regenerates it; /help in the input lists the
    commands (system prompt, temperature, top-p, max tokens, seed, saved probes).
    """
    from tunelab.engine.runner import paths
    from tunelab.tui.chat_screen import ChatApp

    st.flush_orphans(store)
    if st.get_experiment(store, experiment) is None:
        raise TunelabError(f"no experiment {experiment!r} in {store}", "unknown experiment")
    ref = f"trial:{model}" if model.isdigit() else model
    runs, _ = paths(store, experiment)
    ChatApp(store, experiment, ref, runs / "probes.json").run()
