"""Training: one recipe per stage (sft.py, dpo.py, classify.py: a classification head) on a
shared harness (trial.py: callbacks, retries after out-of-memory, manifest, the best
checkpoint), model building, evaluation, generation, metrics, the few-shot baseline, forgetting,
benchmarks. Runs inside a trial process.

May import: tunelab.engine.data, tunelab.engine.spec, tunelab.engine.errors,
tunelab.engine.objectives, tunelab.engine.baselines, tunelab.engine.format, tunelab.store;
and of the runner only tunelab.engine.run.jobs (what a trial receives and returns), tunelab.engine.run.study
(a trial reports to its Optuna study, which may prune it) and tunelab.engine.run.threads
(a trial takes its share of the CPU cores).
"""
