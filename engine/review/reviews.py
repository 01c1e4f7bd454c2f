"""Blind A/B reviews: create one (outputs generated ahead, sides random per item and
recorded), hand out items to a rater, record votes, compute the statistics, export DPO pairs.
"""

from __future__ import annotations

import getpass
import hashlib
import itertools
import json
import math
import os
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.engine.data.preferences import plain, readable
from tunelab.engine.errors import DataError, ReviewError, TrainError
from tunelab.engine.review import stats as rs
from tunelab.engine.review.agreement import (
    JudgeStats,
    agreements,
    by_raters,
    judge_doubts,
    leanings,
)
from tunelab.engine.review.judge import is_judge
from tunelab.engine.review.style import StyleFit, length_share, style_fit
from tunelab.engine.review.votes import REPEAT_SHARE
from tunelab.store import (
    Judgement,
    RatingRow,
    ReviewItem,
    ReviewItemRow,
    ReviewRecord,
    ReviewRow,
    Row,
    Spool,
    VoteRecord,
    experiment_spec,
    find_review,
    judgements,
    list_reviews,
    require_experiment,
    review_items,
    review_votes,
)

GENERATE_BATCH = 16  # prompts per generate() call; progress is reported after each


def _id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def test_prompts(store: Path, experiment: str, n: int) -> list[dict[str, Any]]:
    """The first n rows of the experiment's prepared test split."""
    from tunelab.engine.data.prepare import read_rows
    from tunelab.engine.run.paths import paths
    from tunelab.engine.spec import Experiment

    require_experiment(store, experiment)  # an unknown name is not a missing test split
    plain = experiment_spec(store, experiment)
    spec = Experiment.model_validate(plain) if plain else None
    if spec is not None and spec.method.stage != "sft":  # its test split is its parent's
        experiment = spec.method.parent[0]
    runs, _ = paths(store, experiment)
    files = sorted((runs / "data").glob("*/test.jsonl"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise ReviewError(f"no prepared test split for {experiment}; run the experiment first",
                          "no prompts")
    return read_rows(files[-1])[:n]


REVIEW_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9 _.-]{0,62}[A-Za-z0-9_.-])?$")


def check_new_name(store: Path, name: str) -> None:
    """A new review's name: letters, digits, spaces, `.`, `-` and `_` (never a path), and not
    one a review already has (look-ups by name would find only one of the two)."""
    if not REVIEW_NAME.match(name):
        raise ReviewError(f"{name!r} is not a review name: a letter or digit, then letters, "
                          "digits, spaces, '.', '-' and '_' (64 at most)", "bad review name")
    found = find_review(store, name) if store.exists() else None
    if found is not None and found.name == name:
        raise ReviewError(f"a review named {name!r} exists (of {found.experiment}, "
                          f"{len(found.models)} models); choose another --name, or vote on it: "
                          f"tunelab review {name}", "review exists")


def file_prompts(path: Path, n: int) -> list[dict[str, Any]]:
    """Prompts from a JSON-lines file: {"prompt": …} rows (or chat `messages`)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}", "no prompts") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{path}:{number}: not JSON; each line is {{\"prompt\": …}}",
                            "no prompts") from None
        if not isinstance(row, dict) or not (row.get("prompt") or row.get("messages")):
            raise DataError(f"{path}:{number}: no \"prompt\" (or \"messages\") in this line",
                            "no prompts")
        rows.append(_conversation(row))
    return rows[:n]


def prompts_for(store: Path, experiment: str, prompt_set: str, n: int) -> list[dict[str, Any]]:
    """`test` (the experiment's test split) or a JSON-lines file: the first n prompts."""
    if n < 1:
        raise DataError(f"compare on at least one prompt (got {n})", "no prompts")
    rows = (test_prompts(store, experiment, n) if prompt_set == "test"
            else file_prompts(Path(prompt_set).expanduser(), n))
    if not rows:
        raise DataError(f"no prompts found in {prompt_set}", "no prompts")
    return rows


def _conversation(row: dict[str, Any]) -> dict[str, Any]:
    """A row as a conversation that ends in the assistant turn to generate."""
    messages = list(row.get("messages") or [{"role": "user", "content": row["prompt"]}])
    if messages[-1]["role"] != "assistant":
        messages.append({"role": "assistant", "content": ""})
    return {**row, "messages": messages}


def schedule(models: list[str], prompts: int, seed: int) -> list[tuple[int, str, str]]:
    """(prompt index, left, right) per item: the model pairs take turns over the prompts so each
    pair gets about as many items; the left side is a coin flip per item; ~10 % of items come
    back later with sides swapped."""
    rng = random.Random(seed)
    pairs = list(itertools.combinations(models, 2))
    items = []
    for k in range(prompts):
        a, b = pairs[k % len(pairs)]
        items.append((k, a, b) if rng.random() < 0.5 else (k, b, a))
    rng.shuffle(items)
    return items


def create(store: Path, experiment: str, name: str, models: list[str], prompts: list[dict],
           prompt_set: str, max_new_tokens: int = 128,
           progress: Callable[[int, int], None] | None = None) -> ReviewRecord:
    """Generates every model's outputs (greedy, the training template), then writes the review
    and its items. Generation runs here, once, before anyone votes. `progress(done, total)` is
    called with the outputs generated so far."""
    from tunelab.engine.data import render as chat_render
    from tunelab.engine.serve.refs import ModelPool, resolve
    from tunelab.engine.train.generate import generate

    if not prompts:
        raise DataError("a review needs at least one prompt", "no prompts")
    check_new_name(store, name)
    sources: dict[str, Any] = {}
    for ref in models:  # best resolved to trial:N; best and that trial are one model
        source = resolve(store, experiment, ref)
        sources.setdefault(source.ref, source)
    if len(sources) < 2:
        raise ReviewError(f"a review compares at least two different models; got {len(sources)}"
                         f" ({', '.join(models) or 'none chosen'})", "fewer than two models")
    refs = list(sources)
    pool = ModelPool()
    outputs: dict[str, list[str]] = {}
    shown: list[str] = []
    done = 0
    for source in sources.values():
        model, tokenizer = pool.get(source)
        template = chat_render.template_text(prompts[0].get("template", "auto"), tokenizer)
        rendered = [chat_render.generation_prompt(_conversation(r), tokenizer, template)
                    for r in prompts]
        texts = [p[0] for p in rendered if p is not None]
        if not shown:
            kept = [r for r, p in zip(prompts, rendered, strict=True) if p]
            turns = [_conversation(r)["messages"][:-1] for r in kept]
            # a conversation is kept whole (a prepared test row also carries a flattened
            # `prompt`, which is not what the models saw): shown with its roles, and stored for
            # a dpo stage to render as the models were prompted; a lone user turn is the prompt
            shown = [readable(t) for t in turns]
            context = [None if plain(t) else json.dumps(t) for t in turns]
        outputs[source.ref] = []
        for start in range(0, len(texts), GENERATE_BATCH):  # a batch at a time, to say how far
            batch = texts[start:start + GENERATE_BATCH]
            outputs[source.ref] += generate(model, tokenizer, batch, max_new_tokens,
                                            batch_size=GENERATE_BATCH)
            done += len(batch)
            if progress:
                progress(done, len(sources) * len(texts))
    review_id = uuid.uuid4().hex
    now = time.time()
    plan = schedule(refs, len(shown), seed=int(review_id[:8], 16))
    rng = random.Random(review_id)
    repeats = [x for x in plan if rng.random() < REPEAT_SHARE] or plan[:1]
    events: list[Row] = [ReviewRow(
        id=review_id, experiment=experiment, name=name, models=json.dumps(refs),
        prompt_set=prompt_set, status="open", kind="review", created_at=now,
        updated_at=now)]
    rows: list[tuple[int, str, str, int | None]] = [(k, a, b, None) for k, a, b in plan]
    rows += [(k, b, a, plan.index((k, a, b))) for k, a, b in repeats]  # swapped, at the end
    for item, (k, left, right, repeat_of) in enumerate(rows):
        events.append(ReviewItemRow(
            review_id=review_id, item=item, prompt_id=_id(shown[k]), prompt=shown[k],
            messages=context[k],
            model_a=left, model_b=right, output_a=outputs[left][k],
            output_b=outputs[right][k], repeat_of=repeat_of, created_at=now))
    with Spool(store, tag="review") as spool:
        spool.write(events)
    found = find_review(store, review_id)
    assert found is not None
    return found


def rater_name(given: str | None = None) -> str:
    """Who votes: `--rater`, else $TUNELAB_RATER, else the login name."""
    return given or os.environ.get("TUNELAB_RATER") or getpass.getuser()


def next_item(items: list[ReviewItem], votes: list[VoteRecord], rater: str,
              order: str = "adaptive", steer: list[Any] | None = None,
              waiting: set[str] | None = None,
              judged: list[Judgement] | None = None) -> ReviewItem | None:
    """The next item for this rater, in the `adaptive` or `random` order (see `order`; `steer`:
    the doubts of the last fit of the ratings); a rater never gets the same item twice.
    `votes`: every rater's live votes on the review. `waiting`: models a preference sweep
    waits on (`store.waiting_models`): their items come first. `judged`: the LLM judges'
    verdicts (`store.judgements`): in the adaptive order, the items where a judge disagrees
    with itself or with the people's ratings come next (engine.review.agreement)."""
    from tunelab.engine.review import order as orders

    first = [i for i in items if waiting and {i.model_a, i.model_b} & waiting]
    if first:  # the fit of these items alone: their votes are what the sweep waits for
        ids = {i.item for i in first}
        waited: ReviewItem | None = orders.choose(
            first, as_votes(first, [v for v in votes if v.item in ids]), rater, order, None)
        if waited is not None:
            return waited
    if judged and order == "adaptive" and not is_judge(rater):
        doubted = judge_doubts(items, as_votes(items, votes), judged, rater)
        if doubted:
            return doubted[0]
    found: ReviewItem | None = orders.choose(items, as_votes(items, votes), rater, order, steer)
    return found


def flagged(item: ReviewItem, models: list[str]) -> bool:
    """An output that names a model or trial would break the blindness: flag it to the rater."""
    words = {m.lower() for m in models} | {m.split(":")[-1] for m in models if ":" in m and
                                           len(m.split(":")[-1]) > 2}
    text = f"{item.output_a}\n{item.output_b}".lower()
    return any(w in text for w in words if w not in {"base"})


def as_votes(items: list[ReviewItem], votes: list[VoteRecord]) -> list[rs.Vote]:
    by_item = {i.item: i for i in items}
    return [rs.Vote(v.item, v.rater, v.choice, by_item[v.item].model_a, by_item[v.item].model_b,
                    by_item[v.item].repeat_of, v.review_id,
                    length_share(by_item[v.item].output_a or "", by_item[v.item].output_b or ""))
            for v in votes if v.item in by_item]


@dataclass(frozen=True)
class ReviewStats:
    review: ReviewRecord
    items: int
    votes: int
    pairs: list[rs.PairRecord]
    ratings: list[rs.Rating]
    bias: rs.PositionBias
    agreement: dict[tuple[str, str], tuple[int, float]]
    consistency: dict[str, tuple[int, float]]
    per_rater: dict[str, int]
    ties: str = "half"  # how ties and both-bad counted: half | ignore
    # the ratings with answer length as a covariate, shown beside the raw ones only when the
    # two disagree (`StyleFit.disagrees`)
    style: StyleFit | None = None
    verdicts: int = 0  # what the votes count for: skips dropped, a repeat folded into its original
    raters: str = "humans"  # whose votes the ratings, pairs and bias count: humans | judges | all


def stats(store: Path, name: str, bootstrap: int = 1000, ties: str = "half",
          raters: str = "humans") -> ReviewStats:
    """Everything the stats screen and `review stats` show, from the votes of `raters` (the
    people by default; the LLM judges, or all). The people's ratings are fitted by
    `fit_ratings`, so they are also written to the store (the `leaderboard` view)."""

    review = find_review(store, name)
    if review is None:
        raise TrainError(f"no review {name!r} in {store}", "unknown review")
    items = review_items(store, review.id)
    votes = by_raters(as_votes(items, review_votes(store, review.id)), raters)
    per_rater: dict[str, int] = {}
    for v in votes:
        per_rater[v.rater] = per_rater.get(v.rater, 0) + 1
    fitted = fit_ratings(store, review.experiment, bootstrap, review_id=review.id, ties=ties,
                         raters=raters)
    styled = style_fit(votes, fitted[review.id], ties)
    return ReviewStats(review, len(items), len(votes), rs.pairwise(votes, ties), fitted[review.id],
                       rs.position_bias(votes), rs.agreement(votes), rs.self_consistency(votes),
                       per_rater, ties, styled if styled and styled.disagrees(fitted[review.id])
                       else None, len(rs.counted(votes)), raters)


def fit_ratings(store: Path, experiment: str, bootstrap: int = 1000,
                review_id: str | None = None, ties: str = "half",
                raters: str = "humans") -> dict[str, list[rs.Rating]]:
    """Bradley–Terry ratings per review (scope: the review's id) and over every review and arena
    of the experiment pooled (scope 'all'), written to `review_ratings` through a spool, so the
    `leaderboard` view shows them. With `review_id`, only that review and the pool are refitted.

    A model left without counted votes (all undone) gets no new row: its last one stays in
    `review_ratings` (a spooled NULL cannot blank a column), and the leaderboard, which lists
    models by their live votes, no longer shows it.

    A model without a finite rating is written with `rating` as its bound (NULL when it has
    none), the open side of its interval NULL and `rating_is` saying which; ranks are ranges
    within a comparison group (`rank` … `rank_worst`), `position` the fit's order and `ties`
    how it counted ties, so the leaderboard counts its win rates the same way.

    The people's votes are fitted (and saved) by default; `raters` "judges" or "all" fits the
    LLM judges' or everyone's, shown but not saved, so the leaderboard stays the people's."""

    reviews = [r for r in list_reviews(store) if r.experiment == experiment]
    votes = {r.id: by_raters(as_votes(review_items(store, r.id), review_votes(store, r.id)), raters)
             for r in reviews}
    scopes = {r.id: votes[r.id] for r in reviews if review_id in (None, r.id)}
    scopes["all"] = [v for vs in votes.values() for v in vs]
    fitted = {scope: rs.ratings(scope_votes, bootstrap=bootstrap, ties=ties)
              for scope, scope_votes in scopes.items()}
    now = time.time()
    events = [RatingRow(
        experiment=experiment, scope=scope, model_ref=r.model, rating=r.rating,
        rating_low=_finite(r.low), rating_high=_finite(r.high), rank=r.rank, votes=r.votes,
        fitted_at=now, rank_worst=r.ranks[1], rating_is=rating_is(r), ties=ties, position=k)
        for scope, found in fitted.items() for k, r in enumerate(found)]
    if events and raters == "humans":
        with Spool(store, tag="ratings") as spool:
            spool.write(events)
    return fitted


def rating_is(r: rs.Rating) -> str:
    """What the rating column of a fit holds, as the store's `rating_is` says it (a NULL cannot
    blank an older value, so the leaderboard reads the bounds through this word)."""
    if r.undecided:
        return "ties only"
    if r.finite:
        return "fitted"
    if r.rating is not None:
        return "at least" if r.open_side == "above" else "at most"
    return "between" if math.isfinite(r.low) and math.isfinite(r.high) else "no bound"


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def review_judges(store: Path, review_id: str) -> JudgeStats:
    """The LLM judges' agreement with each person and every rater's leanings on one review
    (engine.review.agreement)."""
    votes = as_votes(review_items(store, review_id), review_votes(store, review_id))
    return JudgeStats(agreements(votes), leanings(votes, judgements(store, review_id)))
