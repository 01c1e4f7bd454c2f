"""A tiny supervised trial and a blind review of it with a scripted rater whose votes use every
kind of verdict, and the stage files that learn from them: for the tests of the preference
stages (kto, reward, dpo's label smoothing, orpo, simpo) and of the judge."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tunelab.engine.review import reviews as review
from tunelab.store import ReviewItem, Spool, review_items, vote_event

from conftest import EXPERIMENTS, train_tiny

# the scripted rater's verdicts on the originals, in turn: mostly the base's answer (the
# opposite of what the trained model likes), and every other kind of verdict
SCRIPT = ("base", "base", "both_bad", "base", "both_good", "tie", "base", "skip", "trained")
SWAP = {"a": "b", "b": "a"}


@dataclass(frozen=True)
class Voted:
    store: Path
    review_id: str
    items: list[ReviewItem]
    votes: list[tuple[int, str]]  # (item, choice) as written, repeats included
    consistent: int  # repeats judged as their original
    repeats: int  # repeats judged


def choice_for(item: ReviewItem, verdict: str) -> str:
    """A verdict as the item's sides: base/trained win → a or b; other kinds as they are."""
    if verdict not in ("base", "trained"):
        return verdict
    base_side = "a" if item.model_a == "base" else "b"
    return base_side if verdict == "base" else SWAP[base_side]


def voted_review(folder: Path, prompts: int = 100) -> Voted:
    """A LoRA SFT trial ('sft'), a review 'taste' of base against it on prompts it did not
    train on (about a tenth come back swapped), and the scripted rater's votes; the rater
    flips on one repeat, so its consistency is (repeats - 1) / repeats."""
    store = train_tiny(folder, "sft", 'kind = "lora"\nr = 8')
    rows = (EXPERIMENTS / "data" / "arithmetic.jsonl").read_text().splitlines()[600:600 + prompts]
    source = folder / "prompts.jsonl"
    source.write_text("".join(json.dumps({"prompt": json.loads(r)["prompt"]}) + "\n"
                              for r in rows))
    made = review.create(store, "sft", "taste", ["base", "best"],
                         review.file_prompts(source, prompts), str(source), max_new_tokens=3)
    items = review_items(store, made.id)
    originals = {i.item: i for i in items if i.repeat_of is None}
    votes: list[tuple[int, str]] = []
    for k, item in enumerate(originals.values()):
        votes.append((item.item, choice_for(item, SCRIPT[k % len(SCRIPT)])))
    given = dict(votes)
    consistent = repeats = 0
    flipped = False
    for item in (i for i in items if i.repeat_of is not None):
        first = given[item.repeat_of]
        if first == "skip":
            continue
        again = SWAP.get(first, first)  # the same verdict on the swapped sides
        if not flipped and first in SWAP:  # the first decisive repeat: the rater flips
            again, flipped = first, True
        votes.append((item.item, again))
        repeats += 1
        consistent += again == SWAP.get(first, first)
    with Spool(store, tag="scripted") as spool:
        spool.write([vote_event(made.id, item, "ana", choice, 2.0) for item, choice in votes])
    return Voted(store, made.id, items, votes, consistent, repeats)


def stage_file(folder: Path, stage: str, name: str, extra: str = "",
               train: str = "epochs = 3\nbatch_size = 4\nlearning_rate = 5e-3") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\n[method]\nstage = "{stage}"\nfrom = "sft:best"\n'
        f'preferences = "review:taste"\nmin_pairs = 4\n{extra}'
        f'[train]\n{train}\nlogging_steps = 1\nearly_stopping_patience = 10\n'
        '[search]\ntrials = 1\n[eval]\nsamples = 2\nmax_examples = 8\nmax_new_tokens = 8\n')
    return path
