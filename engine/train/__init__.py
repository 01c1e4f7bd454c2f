"""Training: build the model, one file per stage (SFT, DPO, a classifier), metrics, evaluation,
generation, the few-shot baseline, forgetting, benchmarks.
Runs inside a trial process.

May import: tunelab.engine.data, tunelab.engine.spec, tunelab.engine.errors,
tunelab.engine.objectives, tunelab.engine.baselines, tunelab.engine.format, tunelab.store;
and of the runner only tunelab.engine.run.jobs (what a trial receives and returns), tunelab.engine.run.study
(a trial reports to its Optuna study, which may prune it) and tunelab.engine.run.threads
(a trial takes its share of the CPU cores).
"""
