"""`python -m tunelab.tui.cli`: the `tunelab` command (the tests run it this way)."""

from tunelab.tui.cli import main

if __name__ == "__main__":  # importing this module (tests/test_imports.py does) runs nothing
    main()
