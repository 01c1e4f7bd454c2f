"""Using trained models: model references (base, best, trial:N), chat, side by side, export.

May import: tunelab.engine.data, tunelab.engine.spec, tunelab.engine.train,
tunelab.engine.errors, tunelab.engine.objectives, tunelab.engine.format, tunelab.engine.refs,
tunelab.store.
"""
