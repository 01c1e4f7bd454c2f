"""Writes experiments/data/arithmetic.jsonl: the quickstart's training set.

Run: python experiments/data/make_arithmetic.py

Small-number arithmetic in a few phrasings, answered with the worked sum
("What is 7 plus 12?" -> "7 + 12 = 19"). A 0.8M-parameter model learns the
answer format in one epoch and the arithmetic itself over a few more, so loss
curves move visibly within seconds on a CPU. Seeded: the output is identical on
every run, and the committed file is this script's output.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 20261128
COUNT = 1200
OUT = Path(__file__).with_name("arithmetic.jsonl")

TEMPLATES = [
    ("What is {a} plus {b}?", "+", lambda a, b: a + b, 30),
    ("Add {a} and {b}.", "+", lambda a, b: a + b, 30),
    ("What is {a} minus {b}?", "-", lambda a, b: a - b, 30),
    ("Subtract {b} from {a}.", "-", lambda a, b: a - b, 30),
    ("What is {a} times {b}?", "*", lambda a, b: a * b, 12),
    ("Multiply {a} by {b}.", "*", lambda a, b: a * b, 12),
]


def examples() -> list[dict[str, str]]:
    every = [
        {"prompt": phrase.format(a=a, b=b), "completion": f"{a} {op} {b} = {fn(a, b)}"}
        for phrase, op, fn, top in TEMPLATES
        for a in range(top + 1)
        for b in range(top + 1)
    ]
    return random.Random(SEED).sample(every, COUNT)


def main() -> None:
    with OUT.open("w", encoding="utf-8") as f:
        for row in examples():
            f.write(json.dumps(row) + "\n")
    print(f"wrote {COUNT} examples to {OUT}")


if __name__ == "__main__":
    main()
