"""Where the `tunelab` command writes: `console` (stdout) and `errors` (stderr).

On a terminal, rich wraps long lines to the window. Into a pipe or a log (nohup, CI, `| tee`)
it would wrap at 80 columns, which splits one `file:line: message` over two lines and breaks
grep; so away from a terminal lines are never wrapped (soft wrap), decided when each line is
printed (tests and `tunelab … > log` swap stdout after this module is imported).
"""

from __future__ import annotations

from rich.console import Console, RenderableType


class _Console(Console):
    """A rich console that wraps lines only on a terminal."""

    @property
    def soft_wrap(self) -> bool:
        return not self.is_terminal

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:
        pass  # set by Console.__init__; decided per line instead


# no emoji codes: a message quoting a file ("root:x:0:0") must not print "root❌0:0"
console = _Console(highlight=False, emoji=False)
errors = _Console(stderr=True, highlight=False, emoji=False)


def print_wide(renderable: RenderableType) -> None:
    """A table to stdout: fitted to the window on a terminal; in a pipe or a log at its natural
    width (lines there are never wrapped), so no header is cut to `duratio…` at 80 columns."""
    if console.is_terminal:
        console.print(renderable)
    else:
        Console(file=console.file, width=1000, highlight=False).print(renderable)

