"""Human judgement: blind reviews, their statistics (Bradley–Terry, intervals), the arena.

May import: tunelab.engine.data, .serve, .spec, .train (generation) and tunelab.store.
"""
