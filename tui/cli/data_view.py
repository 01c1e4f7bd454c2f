"""The data report and the preflight render, as `tunelab data` prints them."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tunelab.engine.data.prepare import DataReport
from tunelab.tui.cli import output
from tunelab.tui.cli.layout import fit

LEVEL_MARK = {"error": "[bold red]✗ error[/]", "warning": "[yellow]! warning[/]", "note": "[cyan]· note[/]"}
TRAINED_OPEN, TRAINED_CLOSE = "⟦", "⟧"


def print_report(console: Console, name: str, fingerprint: str, report: DataReport) -> None:
    c = report.counts
    console.print(f"[bold]{name}[/] · data report · fingerprint {fingerprint}")
    width = output.width()  # the terminal's; None in a pipe or a log (never wrapped there)

    def line(head: str, parts: list[str]) -> None:  # broken between parts, never inside one
        console.print(fit([Text(f"{head:<10}{parts[0]}"), *map(Text, parts[1:])], width, " · ", 10))

    line("sources", [", ".join(f"{s} ({f})" for s, f in report.formats.items()) or "—"])
    if report.mixed:
        line("mixed in", [f"{s}: {n:,} rows" for s, n in report.mixed.items()])
    line("template", [report.template, f"tokens of {report.tokenizer}",
                      f"max_length {report.max_length:,}",
                      *([f"order {report.order}"] if report.order != "shuffle" else [])])
    line("rows", [f"{report.rows_read:,} read → {c.get('train', 0):,} / {c.get('validation', 0):,} / "
                  f"{c.get('test', 0):,} (train / validation / test)",
                  f"{report.rows_rejected:,} rejected", f"{report.duplicates_removed:,} duplicates",
                  f"{report.leaked_removed:,} leaked"])
    kept = sum(c.values())
    # turn by turn: a row where the tokenizer merges across a turn's boundary (engine.data.render)
    line("tokens", [f"{kept - report.turn_by_turn:,} rows tokenized whole",
                    f"{report.turn_by_turn:,} turn by turn"])
    table = Table(title="length in tokens", title_justify="left", box=None, padding=(0, 1))
    table.add_column("split")
    for column in ("rows", "min", "p50", "p90", "p99", "max"):
        table.add_column(column, justify="right")
    for split, stats in report.tokens.items():
        if stats:
            table.add_row(split, f"{c.get(split, 0):,}",
                          *[f"{stats[k]:,.0f}" for k in ("min", "p50", "p90", "p99", "max")])
    console.print(table)
    if not report.findings:
        console.print("[green]✓ no problems found[/]")
        return
    console.print("[bold]findings[/]")
    # a rule that removed most rows explains the rest (too few examples, an empty split): first
    causes = [f for f in report.findings if f.removed and f.removed * 2 >= report.rows_read]
    for f in causes + [f for f in report.findings if f not in causes]:
        count = f" ({f.count:,}{', removed' if f.removed else ''})" if f.count else ""
        console.print(f"  {LEVEL_MARK.get(f.level, f.level)}  ", end="")
        console.print(Text(f"{f.message}{count}"))
        if f.examples:
            more = " …" if f.count > len(f.examples) else ""
            console.print(Text("      at " + ", ".join(f.examples) + more, style="dim"))


def print_examples(console: Console, rows: list[dict[str, Any]], tokenizer: Any, template: str) -> None:
    """Examples exactly as the model sees them; trained tokens between ⟦ ⟧ (and in green)."""
    from tunelab.engine.data import render as chat_render

    for number, row in enumerate(rows, start=1):
        rendered = chat_render.render_tokens(row, tokenizer, template)
        present, trained = chat_render.eos_trained(rendered, tokenizer)
        eos = tokenizer.eos_token
        check = ("[green]✓ EOS " if present and trained else "[bold red]✗ EOS ") + (
            "present and trained[/]" if present and trained
            else "trained nowhere: the model will not learn to stop[/]" if present
            else "missing: the model will not learn to stop[/]")
        console.rule(f"example {number} of {len(rows)} · {row.get('origin', '')}", align="left")
        console.print(f"{len(rendered.input_ids):,} tokens, {sum(rendered.trained):,} trained · "
                      f"{check} [dim]({eos})[/]")
        text = Text()
        # runs of trained / untrained tokens, shown as the exact characters they cover
        runs: list[list[int]] = []  # [mask, start, end]
        for (_start, end), mask in zip(rendered.offsets, rendered.trained, strict=True):
            if runs and runs[-1][0] == mask:
                runs[-1][2] = max(runs[-1][2], end)
            else:
                runs.append([mask, runs[-1][2] if runs else 0, end])
        for mask, start, end in runs:
            piece = rendered.text[start:end].replace("\n", "↵\n")
            if mask:
                text.append(TRAINED_OPEN + piece + TRAINED_CLOSE, style="bold green")
            else:
                text.append(piece, style="dim")
        console.print(text)
    if rows:
        console.print(Text(f"{TRAINED_OPEN} {TRAINED_CLOSE} marks the trained tokens (the loss is "
                           "computed on them only); ↵ is a newline.", style="dim"))


def print_preferences(console: Console, name: str, parent: str | None, report: Any) -> None:
    """A preference stage's pairs, or a kto stage's single answers
    (engine.preferences.PreferenceReport): read, left out, kept, and the stage's notes."""
    unit = "examples" if report.stage == "kto" else "pairs"
    console.print(f"[bold]{name}[/] · {report.stage} from {parent} · {unit} from {report.source}")
    out = report.dropped() + ([f"{report.duplicates} duplicates"] if report.duplicates else [])
    console.print(f"{report.rows_read} read → {report.usable} usable {unit}: {report.train} to "
                  f"train on, {report.heldout} held out" + (f" · left out: {', '.join(out)}"
                                                             if out else ""), markup=False)
    for line in report.notes:
        console.print(f"  {line}", markup=False, highlight=False)
    for line in report.broken[:5]:
        console.print(f"  [yellow]! broken[/] {line}", markup=True, highlight=False)
