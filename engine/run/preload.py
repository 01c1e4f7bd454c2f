"""Imported once by the fork server, so every trial process starts with these already loaded.

Importing torch, transformers, peft and TRL takes seconds; a trial forked from a
server that holds them starts in a fraction of that.
"""

from __future__ import annotations

import datasets  # noqa: F401
import peft  # noqa: F401
import torch  # noqa: F401
import transformers  # noqa: F401
import trl  # noqa: F401

import tunelab.engine.train.evaluate  # noqa: F401
import tunelab.engine.train.sft  # noqa: F401
