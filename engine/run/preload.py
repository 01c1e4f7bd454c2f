"""Imported once by the fork server, so every trial process starts with these already loaded.

Importing torch, transformers, peft and TRL takes seconds; a trial forked from a
server that holds them starts in a fraction of that.
"""

from __future__ import annotations

from tunelab.engine.run import quiet, threads

# before torch loads libgomp, which reads its wait policy once: every forked trial inherits it
threads.quiet_openmp()
quiet.install()  # before peft imports bitsandbytes (see quiet.py)

import datasets  # noqa: E402, F401
import peft  # noqa: E402, F401
import torch  # noqa: E402, F401
import transformers  # noqa: E402, F401
import trl  # noqa: E402, F401

import tunelab.engine.train.evaluate  # noqa: E402, F401
import tunelab.engine.train.sft  # noqa: E402, F401
