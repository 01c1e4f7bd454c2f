"""Writes docs/benchmarks.md: the machine, the versions, one table of figures and verdicts.

The GPU check (bench/gpu_check.py) owns a section of the same file between two markers; the
suite keeps that section when it rewrites the rest, and the GPU check replaces only it.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.suite import BenchResult

GPU_BEGIN = "<!-- gpu-check: written by bench/gpu_check.py -->"
GPU_END = "<!-- /gpu-check -->"
PACKAGES = ("torch", "transformers", "trl", "peft", "optuna", "duckdb", "textual")


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"cores": str(os.cpu_count()), "cpu": cpu, "memory": memory, "gpu": _gpu(),
            "load average": ", ".join(f"{x:.1f}" for x in os.getloadavg())}


def _gpu() -> str:
    try:
        import torch
    except ImportError:
        return "none (torch not installed)"
    if not torch.cuda.is_available():
        return "none"
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return ", ".join(names)


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def fmt(value: object, unit: str = "") -> str:
    """A number for people: 511,000 rows/s, 84 ms, 0.47 s, 1.2e-4."""
    if value is None:
        return "—"
    if not isinstance(value, int | float):
        return str(value)
    v = float(value)
    if v != 0 and abs(v) < 0.01:
        text = f"{v:.1e}"
    elif abs(v) >= 1000:
        text = f"{v:,.0f}"
    elif abs(v) >= 100:
        text = f"{v:.0f}"
    elif abs(v) >= 10:
        text = f"{v:.1f}"
    else:
        text = f"{v:.2f}"
    return f"{text} {unit}".strip()


def _cell(row: dict[str, object], side: str) -> str:
    text = fmt(row.get(side), str(row.get("unit") or ""))
    spread = row.get(f"{side}_spread")
    if isinstance(spread, int | float) and row.get(side) is not None:
        text += f" ±{fmt(spread)}"
    return text


def verdict(row: dict[str, object]) -> str:
    if not row.get("target"):
        return "no target"
    met = row.get("met")
    return "met" if met else ("not met" if met is False else "no verdict")


def table(results: list[BenchResult]) -> list[str]:
    lines = ["| bench | figure | tunelab | plain | ratio | target | verdict |",
             "|---|---|---|---|---|---|---|"]
    for result in results:
        if result.status != "ok":
            lines.append(f"| {result.name} | — | — | — | — | — | {result.status} |")
            continue
        for row in result.rows:
            ratio = row.get("ratio")
            ratio_text = f"{ratio:.2f}×" if isinstance(ratio, int | float) else "—"
            figure = str(row["figure"]) + (f" ({row['note']})" if row.get("note") else "")
            lines.append(f"| {result.name} | {figure} | {_cell(row, 'tunelab')} | "
                         f"{_cell(row, 'plain')} | {ratio_text} | {row.get('target') or '—'} | "
                         f"{verdict(row)} |")
    return lines


def render(results: list[BenchResult], quick: bool, gpu_section: str | None,
           under_load: bool = True) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    host = machine()
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m bench" + (" --quick" if quick else "") + f"` on {when}. Each "
        "figure pairs tunelab with the plain library doing the same work in the same run "
        "(alternating, several repetitions): the median, ± the spread (max − min). The ratio is "
        "tunelab / plain in the figure's unit (for a rate higher is better, for a time lower).",
        "",
    ]
    if under_load:
        lines += ["**Measured under load** (a shared machine, other work running); the lead "
                  "re-runs quietly before these numbers are quoted.", ""]
    lines += ["## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in host.items()]
    lines += ["", "## Versions", "", ", ".join(f"{k} {v}" for k, v in versions().items()), ""]
    lines += ["## Results", "", *table(results), ""]
    total = sum(r.seconds for r in results)
    lines += [f"{len(results)} benches in {total:.0f}s; \"not wired\" is a bench script that does "
              "not take `--json` yet (run it by hand for its printed table).", ""]
    lines += [gpu_section or _empty_gpu_section(), ""]
    return "\n".join(lines)


def _empty_gpu_section() -> str:
    return (f"{GPU_BEGIN}\n## GPU check\n\nNot run yet: `python bench/gpu_check.py` on a GPU "
            f"machine writes this section.\n{GPU_END}")


def gpu_section(text: str) -> str | None:
    """The GPU check's section of an existing report, markers included."""
    found = re.search(re.escape(GPU_BEGIN) + ".*?" + re.escape(GPU_END), text, re.S)
    return found.group(0) if found else None


def write(path: Path, results: list[BenchResult], quick: bool) -> None:
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results, quick, gpu_section(old)), encoding="utf-8")


def replace_gpu_section(path: Path, section: str) -> None:
    """What gpu_check calls: swap in its section, leave the rest of the report alone."""
    body = f"{GPU_BEGIN}\n{section.strip()}\n{GPU_END}"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if gpu_section(old):
        new = old.replace(gpu_section(old) or "", body)
    else:
        new = (old.rstrip() + "\n\n" if old else "# Benchmarks\n\n") + body + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")
