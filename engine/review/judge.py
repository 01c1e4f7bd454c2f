"""An LLM judge is a rater: `tunelab review judge NAME --model REF` (or `--endpoint URL`).

The judge reads each item of a review twice, in both orders (the item's A first, then its B
first), with a judging prompt that is a plain file the user can edit (`judge_prompt.txt` is the
default: {question}, {answer_a} and {answer_b} are filled in, and the judge ends with [[A]],
[[B]] or [[C]] for a tie). Its vote, in `votes` as rater `judge:NAME`, is the verdict of both
orders when they agree and a tie when they do not, as MT-bench counts it: a verdict that
follows the position rather than the answers is no verdict. Each order's verdict and what the
judge wrote are in `judgements`. Repeated items are not judged again (both orders already are).

A local model (a folder, a hub id, or a model of the store: base, best, trial:N, EXP:N) writes
its reasoning greedily; when it ends without a verdict, the likeliest of the three verdicts
after what it wrote is taken (a small model rarely follows the format). An endpoint's answer
without a verdict gives none for that order, and the item's vote is a skip.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from tunelab.engine.errors import DataError, TrainError
from tunelab.engine.refs import WORDS, ModelRef
from tunelab.engine.review.endpoint import Endpoint
from tunelab.store import (
    JudgementRow,
    ReviewRecord,
    Spool,
    review_items,
    vote_row,
)

FIELDS = ("{question}", "{answer_a}", "{answer_b}")
VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")
LETTERS = {"A": "first", "B": "second", "C": "tie"}
ORDERS = ("as shown", "swapped")
JUDGE_PREFIX = "judge:"


@dataclass(frozen=True)
class JudgePrompt:
    text: str
    source: str  # the file, or "the default prompt"

    @classmethod
    def load(cls, path: Path | None = None) -> JudgePrompt:
        """The prompt file (default: the shipped judge_prompt.txt), checked for its fields."""
        if path is None:
            text = (resources.files("tunelab.engine.review") / "judge_prompt.txt").read_text(
                encoding="utf-8")
            return cls(text, "the default prompt")
        try:
            text = path.expanduser().read_text(encoding="utf-8")
        except OSError as error:
            raise DataError(f"cannot read the judging prompt {path}: {error.strerror or error}",
                            "no judging prompt") from None
        missing = [f for f in FIELDS if f not in text]
        if missing:
            raise DataError(f"{path}: the judging prompt has no {', '.join(missing)}; it needs "
                            f"all of {', '.join(FIELDS)} (`tunelab review judge-prompt` writes "
                            "the default to start from)", "bad judging prompt")
        return cls(text, str(path))

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]

    def fill(self, question: str, answer_a: str, answer_b: str) -> str:
        # replaced one by one, not str.format: an answer may hold braces
        return (self.text.replace("{question}", question).replace("{answer_a}", answer_a)
                .replace("{answer_b}", answer_b))


def parse_verdict(text: str) -> str | None:
    """first | second | tie from the last [[A]], [[B]] or [[C]] of an answer; None: none."""
    found = VERDICT.findall(text or "")
    return LETTERS[found[-1]] if found else None


def in_item_sides(verdict: str | None, shown: str) -> str | None:
    """A verdict on the order shown to the judge, as the item's sides (a, b or tie)."""
    if verdict is None or verdict == "tie":
        return verdict
    first = verdict == "first"
    return ("a" if first else "b") if shown == ORDERS[0] else ("b" if first else "a")


def combined(as_shown: str | None, swapped: str | None) -> str:
    """The vote of both orders: their verdict when they agree, a tie when they do not (MT-bench),
    a skip when an order gave none."""
    if as_shown is None or swapped is None:
        return "skip"
    return as_shown if as_shown == swapped else "tie"


class Judge(Protocol):
    label: str  # the judging model, as judgements.model records it

    def answers(self, texts: list[str]) -> list[tuple[str, str | None]]:
        """(what the judge wrote, first | second | tie | None) for each filled prompt."""
        ...


@dataclass
class EndpointJudge:
    endpoint: Endpoint
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or self.endpoint.model_name()

    def answers(self, texts: list[str]) -> list[tuple[str, str | None]]:
        said = self.endpoint.complete_all(texts, self.label)
        return [(s, parse_verdict(s)) for s in said]


@dataclass
class LocalJudge:
    model: Any
    tokenizer: Any
    label: str
    max_new_tokens: int = 256

    def answers(self, texts: list[str]) -> list[tuple[str, str | None]]:
        from tunelab.engine.data import render as chat_render
        from tunelab.engine.train.generate import generate

        template = chat_render.template_text("auto", self.tokenizer)
        rendered = []
        for text in texts:
            found = chat_render.generation_prompt({"messages": [
                {"role": "user", "content": text}, {"role": "assistant", "content": ""}]},
                self.tokenizer, template)
            rendered.append(found[0] if found else text)
        written = generate(self.model, self.tokenizer, rendered, self.max_new_tokens, batch_size=8)
        out: list[tuple[str, str | None]] = []
        unclear = [k for k, said in enumerate(written) if parse_verdict(said) is None]
        likeliest = self._likeliest([f"{rendered[k]}{written[k]}\n" for k in unclear])
        chosen = dict(zip(unclear, likeliest, strict=True))
        for k, said in enumerate(written):
            if k in chosen:  # no verdict written: the likeliest one after what it wrote
                said = f"{said}\n(no verdict written; the likeliest after it: [[{chosen[k]}]])"
            out.append((said, parse_verdict(said)))
        return out

    def _likeliest(self, contexts: list[str], batch_size: int = 8) -> list[str]:
        """A, B or C for each context: the verdict whose letter the model finds likeliest after
        the context and the "[[" all three verdicts share. One forward pass per context, in
        right-padded batches (the logits of a row's last real token are read)."""
        import torch

        device = next(self.model.parameters()).device
        verdicts = [self.tokenizer(f"[[{k}]]", add_special_tokens=False)["input_ids"]
                    for k in LETTERS]
        shared = 0  # the tokens the three verdicts begin with alike ("[[")
        while all(len(v) > shared + 1 for v in verdicts) and \
                len({v[shared] for v in verdicts}) == 1:
            shared += 1
        letters = [v[shared] for v in verdicts]
        limit = getattr(self.model.config, "max_position_embeddings", None) or 4096
        pad = self.tokenizer.pad_token_id or 0
        found = []
        for start in range(0, len(contexts), batch_size):
            rows = [(self.tokenizer(c, add_special_tokens=False)["input_ids"] + verdicts[0][:shared])
                    [-limit:] for c in contexts[start:start + batch_size]]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, :len(r)], mask[i, :len(r)] = torch.tensor(r), 1
            with torch.no_grad():
                logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            last = logits[torch.arange(len(rows)), mask.sum(1).to(device) - 1][:, letters]
            found += [list(LETTERS)[k] for k in last.argmax(-1).tolist()]  # a GPU sync point
        return found


def load_local(store: Path, experiment: str, ref: str, max_new_tokens: int) -> LocalJudge:
    """A local judge: a model of the store (base, best, trial:N of the review's experiment, or
    EXPERIMENT:best / EXPERIMENT:N), a folder, or a hub id."""
    from tunelab.engine.serve.refs import ModelPool, resolve

    parsed = ModelRef.parse(ref, plain=True)
    if parsed.kind == "plain":
        return LocalJudge(*_plain_model(ref), label=ref, max_new_tokens=max_new_tokens)
    source = resolve(store, *parsed.of(experiment))
    model, tokenizer = ModelPool().get(source)
    return LocalJudge(model, tokenizer, ref, max_new_tokens)


def _plain_model(ref: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(ref)
        model = AutoModelForCausalLM.from_pretrained(ref, use_safetensors=True)
    except (OSError, ValueError) as error:
        raise TrainError(f"cannot load the judge {ref!r} (a folder, a hub id, or {WORDS} of "
                         f"the store): {str(error).splitlines()[0]}", "no judge model") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def judge_name(given: str | None, model: str) -> str:
    """The rater's name: judge:NAME (NAME given, else the model's last path part)."""
    name = given or Path(model.rstrip("/")).name or model
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name.removeprefix(JUDGE_PREFIX)).strip("-")
    return JUDGE_PREFIX + (name or "judge")


@dataclass(frozen=True)
class JudgeRun:
    rater: str
    items: int
    agreed: int  # both orders gave the same verdict
    disagreed: int  # the orders disagreed: a tie
    unclear: int  # an order gave no verdict: a skip


def judge_review(store: Path, review: ReviewRecord, judge: Judge, rater: str,
                 prompt: JudgePrompt,
                 progress: Callable[[int, int], None] | None = None) -> JudgeRun:
    """Every item of the review judged in both orders; the judgements and the votes written
    (a judge run again replaces its own). `progress(done, total)` after each batch."""
    items = [i for i in review_items(store, review.id) if i.repeat_of is None]
    if not items:
        raise DataError(f"review {review.name!r} has no items to judge", "nothing to judge")
    texts = [prompt.fill(i.prompt, *((i.output_a or "", i.output_b or "") if order == ORDERS[0]
                                     else (i.output_b or "", i.output_a or "")))
             for i in items for order in ORDERS]
    said: list[tuple[str, str | None]] = []
    for start in range(0, len(texts), 16):  # a batch at a time, to say how far it got
        said += judge.answers(texts[start:start + 16])
        if progress:
            progress(len(said), len(texts))
    now = time.time()
    rows: list[Any] = []
    agreed = disagreed = unclear = 0
    for k, item in enumerate(items):
        sides = [in_item_sides(said[2 * k + j][1], order) for j, order in enumerate(ORDERS)]
        rows += [JudgementRow(review_id=review.id, item=item.item, rater=rater, shown=order,
                              verdict=sides[j], answer=said[2 * k + j][0], model=judge.label,
                              prompt_sha=prompt.sha, created_at=now)
                 for j, order in enumerate(ORDERS)]
        choice = combined(*sides)
        agreed += choice not in ("tie", "skip") or sides == ["tie", "tie"]
        disagreed += choice == "tie" and sides != ["tie", "tie"]
        unclear += choice == "skip"
        vote_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{review.id}/{item.item}/{rater}").hex
        rows.append(vote_row(review.id, item.item, rater, choice, None, vote_id=vote_id))
    with Spool(store, tag=f"judge-{rater.removeprefix(JUDGE_PREFIX)}") as spool:
        spool.write(rows)
    return JudgeRun(rater, len(items), agreed, disagreed, unclear)


def is_judge(rater: str) -> bool:
    return rater.startswith(JUDGE_PREFIX)
