"""Writes experiments/data/tickets.csv: the classification example's data set.

Run: python experiments/data/make_tickets.py

Short customer-support messages, each labelled with the team that should answer it: billing,
delivery, account or technical. The messages are built from phrases written for tunelab
(an opening, a complaint shared by every team about a thing only one team handles, a
closing), so the label follows from the thing named, and a test message seldom pairs them as a
training message does. Some things borrow another team's words ("the payment page" is
technical, "the card payment" billing), so one word is not enough. Seeded: the output is
identical on every run, and the committed file is this script's output. The phrases and the
data set are CC0 1.0 (public domain): written for tunelab.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

SEED = 20261205
PER_LABEL = 150
OUT = Path(__file__).with_name("tickets.csv")

OPENINGS = ["", "Hi, ", "Hello, ", "Good morning, ", "Hey, ", "Sorry to bother you, ", "Quick question: "]
CLOSINGS = ["", " Thanks.", " Thank you!", " Please help.", " Can you look into it?",
            " This is urgent.", " Regards, Sam."]

# what each team is asked about; a message names one of them inside a shared complaint, so
# the label is in which thing is named, and a test message is a pairing training never saw
SUBJECTS = {
    "billing": ["invoice", "refund", "monthly charge", "subscription fee", "discount code",
                "card payment", "bank transfer", "receipt", "price of my plan", "late fee"],
    "delivery": ["parcel", "package", "courier", "tracking number", "delivery date",
                 "shipping label", "return parcel", "delivery address", "depot pickup", "box"],
    "account": ["password", "login", "username", "profile email", "verification code",
                "two-factor setting", "account lock", "second user", "account deletion",
                "security question"],
    "technical": ["app", "website", "download", "search page", "video player", "sync",
                  "payment page", "PDF export", "phone app update", "browser extension"],
}
PROBLEMS = [
    "the {x} is wrong", "something is off with my {x}", "I cannot find my {x}",
    "the {x} does not work", "I have a question about the {x}", "the {x} changed without notice",
    "I need help with the {x}", "what happened to my {x}", "the {x} is still not sorted",
    "nobody answered about my {x}", "is there a problem with the {x}", "my {x} looks strange",
]


def messages() -> list[dict[str, str]]:
    rng = random.Random(SEED)
    rows = []
    for label, subjects in SUBJECTS.items():
        seen: set[str] = set()
        while len(seen) < PER_LABEL:
            problem = rng.choice(PROBLEMS).format(x=rng.choice(subjects))
            text = f"{rng.choice(OPENINGS)}{problem}.{rng.choice(CLOSINGS)}"
            text = text[0].upper() + text[1:]
            if text not in seen:
                seen.add(text)
                rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    return rows


def main() -> None:
    with OUT.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(messages())
    print(f"wrote {OUT} ({PER_LABEL * len(SUBJECTS)} messages)")


if __name__ == "__main__":
    main()
