"""Running a sweep: the study, the runner, its trial processes (pipe, devices, the baseline),
torchrun, importance.

May import: tunelab.engine.data, tunelab.engine.review, tunelab.engine.serve,
tunelab.engine.spec, tunelab.engine.train, tunelab.engine.errors, tunelab.engine.objectives,
tunelab.engine.baselines, tunelab.engine.format, tunelab.engine.refs, tunelab.store.
"""
