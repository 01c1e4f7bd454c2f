"""`python -m tunelab.tui.cli`: the `tunelab` command (the tests run it this way)."""

from tunelab.tui.cli import main

main()
