"""Writes experiments/data/quickstart.jsonl: the quickstart's training set.

Run: python experiments/data/make_quickstart.py

1,200 dates as people write them ("the 3rd of May, 1994", "Mar 3 1994", "1994.5.3"), each to
be rewritten as YYYY-MM-DD: the generator of dates.jsonl with another seed and size. A model
built from scratch learns it on a CPU within a minute: the digits are copied, the month names
are twelve facts, and every test date is one it never saw. (The quickstart used small-number
arithmetic before: in the same budget its best trial got 4 % of the sums exactly right.)
Seeded: the output is identical on every run, and the committed file is this script's output.
"""

from __future__ import annotations

import json
from pathlib import Path

import make_dates

SEED = 20261129
COUNT = 1200
OUT = Path(__file__).with_name("quickstart.jsonl")


def main() -> None:
    make_dates.SEED, make_dates.COUNT = SEED, COUNT
    rows = make_dates.examples()
    with OUT.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print(f"wrote {len(rows)} examples to {OUT}")


if __name__ == "__main__":
    main()
