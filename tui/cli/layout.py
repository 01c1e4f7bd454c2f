"""Lines of the live output made of parts (`trial 3`, `lr 2.9e-3`, `eval_loss 0.994`,
`✓ complete`) that a line break may fall between but never inside: at 80 columns a value
stays beside its name (never `loss` / `0.0966`), and a line too long for the terminal goes
on under itself, indented, instead of being wrapped by the terminal back at column 0 (where
it reads as a line of its own)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

UNIT_SIGNS = frozenset({"%", "s", "GiB", "MiB"})  # a word never put on a line without its number


def fit(parts: Sequence[str | Text], width: int | None, sep: str = "  ", indent: int = 4) -> Text:
    """The parts (rich markup, or Text) joined by `sep` on lines of at most `width` cells,
    broken only between parts; each line after the first starts with `indent` spaces. `width`
    None (a pipe or a log): one line."""
    pieces = [p if isinstance(p, Text) else Text.from_markup(p) for p in parts]
    pieces = [c for p in pieces if p.plain for c in _chunks(p, width, indent)]
    if not pieces:
        return Text()
    out = pieces[0].copy()
    used = out.cell_len
    for piece in pieces[1:]:
        if width is None or used + len(sep) + piece.cell_len <= width:
            out.append(sep)
            used += len(sep) + piece.cell_len
        else:
            out.append("\n" + " " * indent)
            used = indent + piece.cell_len
        out.append_text(piece)
    return out


def _chunks(part: Text, width: int | None, indent: int) -> list[Text]:
    """A part longer than an indented line (a long path), cut where the line ends."""
    room = (width or 0) - indent
    if width is None or room < 1 or part.cell_len <= room:
        return [part]
    return list(part.divide(range(room, len(part.plain), room)))


def wrap(markup: str, width: int | None, indent: int = 4, is_markup: bool = True) -> Text:
    """A sentence (rich markup, or plain text) broken between words, its lines after the first
    indented (the spaces it starts with are kept)."""
    lead = len(markup) - len(markup.lstrip(" "))
    text = markup.lstrip(" ")
    words: list[Text] = []
    for word in (Text.from_markup(text) if is_markup else Text(text)).split(" "):
        if words and word.plain in UNIT_SIGNS:  # `95 %` stays on one line
            words[-1] = Text(" ").join([words[-1], word])
        else:
            words.append(word)
    if words:
        words[0] = Text(" " * lead) + words[0]
    return fit(words, width, " ", indent)
