"""Where a data preparation's time goes: `prepare` in this one process under cProfile, with counts.

    python bench/make_chat_data.py --rows 20000 --out /tmp/chat20k
    python bench/profile_data.py /tmp/chat20k/experiment.toml [--top 25]

Everything runs in this process (the preparation's worker processes are turned off), so the
profile sees all the work and its shares add up to the whole preparation: read the shares, not
the seconds (cProfile's own cost is in them, and a loaded machine stretches them alike). Beside
the profile it counts what does not depend on the machine's load: chat-template renders
through Jinja, calls into the Rust tokenizer and the texts and characters it was given, and
this process's peak resident memory.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


class CountingBackend:
    """The Rust tokenizer of a transformers tokenizer, counting what it is asked to encode."""

    def __init__(self, backend: Any, counts: dict[str, int]) -> None:
        self._backend = backend
        self._counts = counts

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._backend, name)
        if not name.startswith("encode"):
            return found

        def counted(texts: Any, *args: Any, **kwargs: Any) -> Any:
            many = name.endswith("batch") or name.endswith("fast")
            items = texts if many else [texts]
            self._counts["tokenizer calls"] += 1
            self._counts["texts tokenized"] += len(items)
            self._counts["characters tokenized"] += sum(len(t) for t in items if isinstance(t, str))
            return found(texts, *args, **kwargs)

        return counted


def _counting(counts: dict[str, int]) -> None:
    """Every tokenizer a preparation loads counts its encodes; every Jinja render is counted."""
    import jinja2
    import jinja2.sandbox

    from tunelab.engine.train import model as models

    load = models.load_tokenizer

    def load_counted(*args: Any, **kwargs: Any) -> Any:
        tokenizer = load(*args, **kwargs)
        tokenizer._tokenizer = CountingBackend(tokenizer._tokenizer, counts)
        return tokenizer

    models.load_tokenizer = load_counted  # type: ignore[assignment]
    concat = jinja2.Environment.concat  # every render of a compiled template joins its pieces

    def concat_counted(pieces: Any) -> str:
        counts["jinja renders"] += 1
        return str(concat(pieces))

    jinja2.Environment.concat = staticmethod(concat_counted)  # type: ignore[assignment]
    jinja2.sandbox.ImmutableSandboxedEnvironment.concat = staticmethod(concat_counted)  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("experiment", type=Path)
    parser.add_argument("--top", type=int, default=25, help="functions listed (by own time)")
    args = parser.parse_args()

    from tunelab.engine.data import parallel
    from tunelab.engine.data.prepare import prepare
    from tunelab.engine.data.progress import Progress
    from tunelab.engine.spec import load_spec

    parallel.PARALLEL_MIN = 10**12  # one process: the profile sees every row's work
    counts = {k: 0 for k in ("jinja renders", "tokenizer calls", "texts tokenized",
                             "characters tokenized")}
    _counting(counts)
    spec = load_spec(args.experiment)
    cache = Path(tempfile.mkdtemp())
    profile = cProfile.Profile()
    started = time.perf_counter()
    try:
        profile.enable()
        prepared = prepare(spec, cache, progress=Progress(show=False))
        profile.disable()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    wall = time.perf_counter() - started
    report = prepared.report
    stats = pstats.Stats(profile, stream=io.StringIO())
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"{report.rows_read:,} rows read, {sum(report.counts.values()):,} kept; "
          f"{wall:.1f} s under the profiler")
    for name, n in counts.items():
        print(f"{name:24}{n:>14,}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{'peak resident memory':24}{peak:>11.2f} GiB")
    print(f"{'rows turn by turn':24}{getattr(report, 'turn_by_turn', 0):>14,}")
    entries = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    print(f"\n{'own time':>9} {'with callees':>13}  function (shares of the whole preparation)")
    for (file, line, name), (_, calls, own, cumulative, _) in entries[:args.top]:
        where = f"{Path(file).name}:{line}" if line else file
        print(f"{own / total:>8.1%} {cumulative / total:>12.1%}   {name} ({where}, {calls:,} calls)")
    print("\ntunelab's data functions from 1 % of the whole (with callees):")
    ours = [(cumulative, file, line, name, calls) for (file, line, name), (_, calls, _, cumulative, _)
            in stats.stats.items() if "engine/data/" in file and cumulative >= total / 100]  # type: ignore[attr-defined]
    for cumulative, file, line, name, calls in sorted(ours, reverse=True):
        print(f"{cumulative / total:>8.1%}   {name} ({Path(file).name}:{line}, {calls:,} calls)")


if __name__ == "__main__":
    sys.exit(main())
