"""Where the `tunelab` command writes: `console` (stdout) and `errors` (stderr).

On a terminal, rich wraps long lines to the window. Into a pipe or a log (nohup, CI, `| tee`)
it would wrap at 80 columns, which splits one `file:line: message` over two lines and breaks
grep; so away from a terminal lines are never wrapped (soft wrap), decided when each line is
printed (tests and `tunelab … > log` swap stdout after this module is imported).
"""

from __future__ import annotations

from rich.console import Console


class _Console(Console):
    """A rich console that wraps lines only on a terminal."""

    @property  # type: ignore[override]
    def soft_wrap(self) -> bool:
        return not self.is_terminal

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:
        pass  # set by Console.__init__; decided per line instead


console = _Console(highlight=False)
errors = _Console(stderr=True, highlight=False)


def plural(n: int, word: str) -> str:
    """`1 row`, `3 rows`."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"
