"""A command run in a real pseudo-terminal of a given size, its output drawn by a terminal
emulator (pyte) as a person's terminal would draw it: rich sees a terminal (live blocks,
cursor moves, wrapping at the window's width), and the test reads the screens a person saw.

`Terminal.run` returns every distinct screen seen while the command ran, and the whole
transcript (the lines scrolled away and the last screen), each line as shown.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Seen:
    returncode: int
    screens: list[list[str]] = field(default_factory=list)  # each distinct screen, in order
    transcript: list[str] = field(default_factory=list)  # scrolled-away lines, then the last screen

    def lines(self) -> list[str]:
        """Every line any screen showed (each once), in the order first seen."""
        seen: dict[str, None] = {}
        for screen in [*self.screens, self.transcript]:
            for line in screen:
                if line.strip():
                    seen.setdefault(line, None)
        return list(seen)


def _row(line: dict, columns: int) -> str:
    return "".join(line[x].data for x in range(columns)).rstrip()


def run(args: list[str], columns: int = 80, rows: int = 24, cwd: Path | None = None,
        env: dict[str, str] | None = None, timeout: float = 600,
        on_screen: Callable[[list[str]], None] | None = None) -> Seen:
    """Runs `args` in a terminal of `columns` × `rows` until it exits; `on_screen` is called
    with each new screen (a test may act on what it shows, as a person would)."""
    import pyte  # a dev dependency (pyproject.toml): the tests that need it skip without it

    screen = pyte.HistoryScreen(columns, rows, history=100_000)
    stream = pyte.ByteStream(screen)
    main, side = os.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    environment = {k: v for k, v in (env or os.environ).items() if k not in {"COLUMNS", "LINES"}}
    environment.update(TERM="xterm-256color", NO_COLOR="1")
    process = subprocess.Popen(args, stdin=side, stdout=side, stderr=side, cwd=cwd,
                               env=environment, start_new_session=True)
    os.close(side)
    seen = Seen(returncode=-1)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the command exited and the terminal closed
                break
            if not chunk:
                break
            stream.feed(chunk)
            shown = [line.rstrip() for line in screen.display]
            if not seen.screens or seen.screens[-1] != shown:
                seen.screens.append(shown)
                if on_screen is not None:
                    on_screen(shown)
        else:
            process.kill()
            raise TimeoutError(f"{args} ran past {timeout} s:\n" + "\n".join(screen.display))
    finally:
        os.close(main)
    seen.returncode = process.wait(timeout=60)
    seen.transcript = [_row(line, columns) for line in screen.history.top] + \
        [line.rstrip() for line in screen.display]
    return seen
