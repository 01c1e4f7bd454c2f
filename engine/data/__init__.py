"""Data: read a file, normalise its format, check, de-duplicate, split, render, report; preference pairs.

May import: tunelab.engine.spec, tunelab.engine.errors, tunelab.engine.format, tunelab.store.
"""
