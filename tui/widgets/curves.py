"""The loss curves of a trial as a screen holds them: series by (split, metric), each with its
step, epoch and tokens-seen axes, grown by the rows read since the last refresh. Drawn by the
trial screen and overlaid by the compare screen."""

from __future__ import annotations

from dataclasses import dataclass, field

from tunelab import store as st

X_AXES = ("step", "epoch", "tokens")


@dataclass
class Curves:
    """The series of one trial as the screen holds them, grown by the rows read since."""

    points: dict[tuple[str, str], dict[str, list]] = field(default_factory=dict)

    def add(self, curve: st.TrialCurve) -> int:
        added = 0
        for s in curve.series:
            have = self.points.setdefault((s.split, s.name),
                                          {"step": [], "epoch": [], "tokens": [], "value": []})
            have["step"] += s.steps
            have["epoch"] += s.epochs
            have["tokens"] += s.tokens
            have["value"] += s.values
            added += len(s.steps)
        return added

    def last_steps(self) -> dict[tuple[str, str], int]:
        return {k: v["step"][-1] for k, v in self.points.items() if v["step"]}

    def series(self, split: str, name: str, x: str) -> tuple[list[float], list[float]]:
        have = self.points.get((split, name))
        if not have:
            return [], []
        pairs = [(a, b) for a, b in zip(have[x], have["value"], strict=False)
                 if a is not None and b is not None]
        return [float(a) for a, _ in pairs], [float(b) for _, b in pairs]
