"""Forgetting, measured: the loss of a model on general text before and after a trial trains it
([eval.forgetting]; peft#2925's method: the trained model's general-text loss minus the base's).

Each trial measures its model twice: once as loaded, before the trainer wraps it (the base, for
QLoRA the quantised base it trains on), and once after training, on the best checkpoint. It
records "general/loss" (after), "general/base_loss" (before), "general/perplexity" and
"general/forgetting" (after minus before, in nats per token: above 0 the trial got worse at
general text). The baseline records the base's loss with forgetting 0. `forgetting` may be an
objective (`objectives = ["eval_loss", "forgetting"]`: task loss against general loss, a Pareto
front) or a success criterion (`forgetting = "< 0.1"`).

The text is `tunelab:general` (40 short texts shipped with tunelab, CC0: engine/data/general/)
or a file: JSONL with a "text" field, or plain text with blank lines between the texts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tunelab.engine.errors import SpecError
from tunelab.engine.objectives import FORGETTING
from tunelab.engine.spec import Experiment
from tunelab.engine.spec.measures import SHIPPED_GENERAL

SHIPPED = {SHIPPED_GENERAL: Path(__file__).resolve().parents[1] / "data" / "general" / "general.txt"}


def source_path(source: str) -> Path:
    """The file of a forgetting source: a shipped set by name, or the file itself."""
    if source.startswith("tunelab:"):
        if source not in SHIPPED:
            raise SpecError(f"eval.forgetting.source: {source!r} is not shipped with tunelab "
                            f"(shipped: {', '.join(SHIPPED)}); or name a file")
        return SHIPPED[source]
    return Path(source).expanduser()


def general_texts(source: str, limit: int) -> list[str]:
    """The first `limit` texts of a source (see the module)."""
    from tunelab.engine.data.prepare import read_rows

    path = source_path(source)
    if path.suffix.lower() in (".jsonl", ".json"):
        texts = [str(r["text"]) for r in read_rows(path) if r.get("text")]
    else:
        texts = [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    return texts[:limit]


def general_loss(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> float:
    """The mean loss per predicted token of the model over the texts (each cut to max_length
    tokens), one text at a time: no padding to get wrong."""
    import torch

    device = next(model.parameters()).device
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True,
                            max_length=max_length)["input_ids"].to(device)
            if ids.shape[1] < 2:
                continue
            loss = model(input_ids=ids, labels=ids).loss
            total += float(loss) * (ids.shape[1] - 1)  # float() is a GPU sync point, once a text
            count += ids.shape[1] - 1
    model.train(was_training)
    return total / max(count, 1)


def _loss(model: Any, tokenizer: Any, exp: Experiment) -> float:
    spec = exp.eval.forgetting
    assert spec is not None
    return general_loss(model, tokenizer, general_texts(spec.source, spec.max_texts), spec.max_length)


def before_training(model: Any, tokenizer: Any, exp: Experiment) -> float | None:
    """The general loss of the model as loaded (the base); None without [eval.forgetting]."""
    if exp.eval.forgetting is None:
        return None
    import torch

    if torch.cuda.is_available() and next(model.parameters()).device.type == "cpu":
        model.to("cuda")  # where the trainer would move it anyway: measured at its speed
    return _loss(model, tokenizer, exp)


def measured(model: Any, tokenizer: Any, exp: Experiment, before: float | None) -> dict[str, float]:
    """"general/…" values of the model against `before` (None: the model is the base itself)."""
    if exp.eval.forgetting is None:
        return {}
    after = _loss(model, tokenizer, exp)
    base = after if before is None else before
    return {"general/loss": after, "general/base_loss": base,
            "general/perplexity": math.exp(min(after, 50)), f"general/{FORGETTING}": after - base}
