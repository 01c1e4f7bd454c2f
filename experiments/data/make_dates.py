"""Writes experiments/data/dates.jsonl: dates written by people, to be normalised to ISO 8601.

Run: python experiments/data/make_dates.py

A small realistic extraction task for the hub-model examples (LoRA, QLoRA, prefix): a base
model of 135M parameters gets the format wrong often, and a fine-tune gets it right, so
exact match moves visibly. Seeded: the output is identical on every run.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from pathlib import Path

SEED = 7
COUNT = 1000
OUT = Path(__file__).with_name("dates.jsonl")

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


def spoken(day: date, rng: random.Random) -> str:
    month = MONTHS[day.month - 1]
    styles = [
        f"{month} {day.day}, {day.year}",
        f"{day.day} {month} {day.year}",
        f"{month[:3]} {day.day} {day.year}",
        f"{day.day:02d}/{day.month:02d}/{day.year}",
        f"the {day.day}{_suffix(day.day)} of {month}, {day.year}",
        f"{day.year}.{day.month}.{day.day}",
    ]
    return rng.choice(styles)


def _suffix(n: int) -> str:
    return "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def examples() -> list[dict[str, str]]:
    rng = random.Random(SEED)
    start = date(1990, 1, 1)
    seen: set[str] = set()
    rows = []
    while len(rows) < COUNT:
        day = start + timedelta(days=rng.randrange(365 * 40))
        text = spoken(day, rng)
        if text in seen:
            continue
        seen.add(text)
        rows.append({"prompt": f"Write this date as YYYY-MM-DD: {text}",
                     "completion": day.isoformat()})
    return rows


def main() -> None:
    with OUT.open("w", encoding="utf-8") as f:
        for row in examples():
            f.write(json.dumps(row) + "\n")
    print(f"wrote {COUNT} examples to {OUT}")


if __name__ == "__main__":
    main()
