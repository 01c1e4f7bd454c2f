"""Writes an SVG screenshot of each screen of `tunelab tui`, for the README.

    python docs/screenshots.py --store /path/to/tunelab.duckdb   # the quickstart's store

The app runs headless against the store; each screen is reached by its keys, as a person would.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from tunelab.tui.app import TunelabApp

SHOTS = [  # (file, keys from the previous shot)
    ("experiments", []),
    ("trials", ["enter"]),
    ("trial-curves", ["j", "j", "enter"]),  # past the two baselines: trial 0, the best
    ("trial-evaluation", ["2"]),
    ("trial-config", ["3"]),
    ("trial-samples", ["4"]),
    ("compare-curves", ["escape", "space", "space", "c"]),
    ("compare-importance", ["2"]),
    ("compare-scatter", ["p"]),
    ("sql", ["escape", "colon", *"select number, state, method_kind, value from trials", "enter"]),
    ("help", ["escape", "enter", "question_mark"]),
    ("review-stats", ["escape", "escape", "V"]),  # needs a review with votes in the store
]


async def shoot(store: Path, out: Path, size: tuple[int, int]) -> None:
    app = TunelabApp([store])
    async with app.run_test(size=size) as pilot:
        for name, keys in SHOTS:
            for key in ("", *keys):
                if key:
                    await pilot.press(key)
                await app.workers.wait_for_complete()
                await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
            app.save_screenshot(f"{name}.svg", str(out))
            print(out / f"{name}.svg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, default=Path("tunelab.duckdb"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--size", default="100x30", help="WIDTHxHEIGHT of the terminal")
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    asyncio.run(shoot(args.store, args.out, (width, height)))


if __name__ == "__main__":
    main()
