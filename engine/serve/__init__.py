"""Using trained models: model references (base, best, trial:N), chat, side by side, export.

May import: tunelab.engine.data, .spec, .train and tunelab.store.
"""
