"""Data: read a file, normalise its format, check, de-duplicate, split, render, report; a dpo
stage's preference pairs (from a review's votes or a file).

May import: tunelab.engine.spec, tunelab.engine.errors, tunelab.engine.format,
tunelab.engine.objectives, tunelab.store; and tunelab.engine.train.model (the tokenizer that
lengths are counted in, imported when it is needed).
"""
