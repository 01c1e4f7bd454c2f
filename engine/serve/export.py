"""`tunelab export`: a trial's best checkpoint as something to ship.

An adapter (LoRA, QLoRA, prefix) is written as is, loadable with `PeftModel.from_pretrained`;
with `merge` it is folded into the base weights (loaded in full precision, also for QLoRA) and
written as a plain model, loadable with `AutoModelForCausalLM.from_pretrained`. A classifier's
adapter is always merged: its classes live in the config of whole weights, and the export
loads with `AutoModelForSequenceClassification.from_pretrained`. A model card
(README.md) opens with the metadata block the hub and model tools read (base_model,
library_name, tags, datasets), then lists the experiment, the parameters, the data fingerprint
and the metrics.

A base built from scratch lives in the sweep's run folder, recorded by the path the sweep was
given (often relative: `tunelab-runs/…`); the export records it as an absolute path, in the
adapter's config and in the card, so the adapter loads from any folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tunelab.engine.errors import ExportError
from tunelab.engine.serve.refs import kept_checkpoint
from tunelab.engine.spec import Experiment
from tunelab.store import TrialRecord


def _base(manifest: dict[str, Any]) -> str:
    """The base model as something that loads from anywhere: a hub id as it is, a local folder
    as an absolute path."""
    base = str(manifest.get("base", "?"))
    local = Path(base).expanduser()
    return str(local.resolve()) if local.exists() else base


def _metadata(exp: Experiment, base: str, library: str) -> str:
    """The card's YAML block. Values are written as JSON, which YAML reads as they are (a
    path or a hub id needs no further quoting rules)."""
    data = exp.data  # None for a dpo stage read back unresolved: its pairs come from votes
    sources = [s for split in ("train", "validation", "test")
               for s in (data.sources(split) if data is not None else [])]
    datasets = [s.removeprefix("hub:").split("?")[0] if s.startswith("hub:") else Path(s).name
                for s in dict.fromkeys(sources)]
    task = "text-classification" if exp.method.head == "classification" else "text-generation"
    fields = {"base_model": base, "library_name": library,
              "tags": ["tunelab", exp.method.kind, task], "datasets": datasets,
              "pipeline_tag": task}
    return "---\n" + "".join(f"{k}: {json.dumps(v)}\n" for k, v in fields.items()) + "---\n"


def _card(exp: Experiment, trial: TrialRecord, manifest: dict[str, Any], values: dict[str, float],
          merged: bool, adapter: bool) -> str:
    auto = "AutoModelForSequenceClassification" if exp.method.head == "classification" \
        else "AutoModelForCausalLM"
    loader = (f"from transformers import {auto}\n"
              f"model = {auto}.from_pretrained(\"PATH\")") if merged or not adapter else (
        "from peft import AutoPeftModelForCausalLM\n"
        "model = AutoPeftModelForCausalLM.from_pretrained(\"PATH\")")
    params = "\n".join(f"| `{k}` | {v} |" for k, v in trial.params.items()) or "| — | — |"
    metrics = "\n".join(f"| {k} | {v:.4g} |" for k, v in sorted(values.items())) or "| — | — |"
    base = _base(manifest)
    library = "peft" if adapter and not merged else "transformers"
    return _metadata(exp, base, library) + f"""
# {exp.name} · trial {trial.number}

Fine-tuned with tunelab from `{base}`
({exp.method.kind}{', merged into the base weights' if merged else ''}).

{exp.description}

| parameter | value |
|---|---|
{params}

| metric | value |
|---|---|
{metrics}

- data fingerprint: `{manifest.get('data_fingerprint', '?')}`
- seed: {manifest.get('seed', '?')}
- packages: {', '.join(f'{k} {v}' for k, v in manifest.get('packages', {}).items())}

```python
{loader}
```
"""


def _point_at_base(config_file: Path, base: str) -> None:
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = base
    config_file.write_text(json.dumps(config, indent=2) + "\n")


def export_trial(trial: TrialRecord, values: dict[str, float], out: Path, merge: bool) -> Path:
    folder = kept_checkpoint(trial.experiment, trial)
    best = folder / "best"
    exp = Experiment.model_validate(json.loads((folder / "experiment.json").read_text()))
    manifest = json.loads((folder / "manifest.json").read_text())
    adapter = (best / "adapter_config.json").exists()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty folder; choose another --out")
    if merge and adapter and exp.method.kind == "prefix":
        raise ExportError("a prefix-tuning adapter cannot be merged into the weights; "
                          "export it without --merge")
    # written beside `out` under a hidden name and renamed when whole: an export that fails or
    # is killed half-way never leaves a folder that looks like a model
    partial: Path | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        _write(exp, trial, manifest, values, best, partial, merge, adapter)
        _as_umask_allows(partial)
        if out.exists():
            out.rmdir()  # empty (checked above); os.replace cannot replace a folder
        os.replace(partial, out)
    except OSError as error:
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        raise ExportError(f"cannot export trial {trial.number} to {out}: "
                          f"{error.strerror or error}"
                          f"{f' ({error.filename})' if error.filename else ''}; nothing was written",
                          "export failed") from error
    except BaseException:
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    return out


def _as_umask_allows(folder: Path) -> None:
    """The export folder with the permissions a new folder gets (the temporary folder it was
    written in is private, 0700: a model to ship is not)."""
    mask = os.umask(0)
    os.umask(mask)
    folder.chmod(0o777 & ~mask)


def _write(exp: Experiment, trial: TrialRecord, manifest: dict[str, Any], values: dict[str, float],
           best: Path, out: Path, merge: bool, adapter: bool) -> None:
    """The model (adapter, merged or full weights), its tokenizer and the card, into `out`."""
    if exp.method.head == "classification" and adapter:
        # a classifier ships whole, whatever --merge says: the head's classes live in the
        # config, which an adapter folder lacks, so only merged weights load as they are
        _merge_classifier(exp, manifest, best, out)
    elif merge and adapter:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        base = AutoModelForCausalLM.from_pretrained(
            _base(manifest), dtype=torch.float32, use_safetensors=True,
            trust_remote_code=exp.base_model.trust_remote_code)
        model = PeftModel.from_pretrained(base, str(best)).merge_and_unload()
        model.save_pretrained(str(out))
        AutoTokenizer.from_pretrained(str(best)).save_pretrained(str(out))
    else:
        for item in best.iterdir():
            if item.name == "training_args.bin":
                continue  # a pickle of trainer settings: not part of a model to ship
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, out / item.name)
        if adapter:
            _point_at_base(out / "adapter_config.json", _base(manifest))
    merged = adapter and (merge or exp.method.head == "classification")
    (out / "README.md").write_text(_card(exp, trial, manifest, values, merged, adapter))


def _merge_classifier(exp: Experiment, manifest: dict[str, Any], best: Path, out: Path) -> None:
    """A LoRA classifier folded into its base: AutoModelForSequenceClassification loads `out`."""
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    from tunelab.engine.train.classify import labels_of, load_classifier

    tokenizer = AutoTokenizer.from_pretrained(str(best))
    float32 = exp.model_copy(update={"model": exp.base_model.model_copy(update={"dtype": "float32"})})
    base = load_classifier(_base(manifest), float32, labels_of(best.parent), tokenizer)
    model = PeftModel.from_pretrained(base, str(best)).merge_and_unload()
    model.to(torch.float32).save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
