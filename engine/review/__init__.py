"""Human judgement: blind reviews, their statistics (Bradley–Terry, intervals), the arena.

May import: tunelab.engine.data, tunelab.engine.serve, tunelab.engine.spec,
tunelab.engine.train, tunelab.engine.errors, tunelab.engine.objectives, tunelab.engine.format,
tunelab.engine.refs, tunelab.store; and of the runner only tunelab.engine.run.paths (where a
sweep's files are).
"""
