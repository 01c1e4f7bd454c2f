"""Training: build the model, one file per stage (SFT, DPO), metrics, evaluation, generation.

May import: tunelab.engine.data, tunelab.engine.spec, tunelab.engine.run.jobs, tunelab.store.
"""
