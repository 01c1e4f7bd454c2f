"""The engine's kinds of user error; all are TunelabError (title + message, no traceback)."""

from __future__ import annotations

from tunelab.store.errors import StoreError, TunelabError


class SpecError(TunelabError):
    title = "experiment file error"


class DataError(TunelabError):
    title = "data error"


class TrainError(TunelabError):
    title = "training error"


class ReviewError(TunelabError):
    title = "review error"


class ExportError(TunelabError):
    title = "export error"


__all__ = ["DataError", "ExportError", "ReviewError", "SpecError", "StoreError", "TrainError",
           "TunelabError"]
