"""Running a sweep: the study, the runner and its trial processes, devices, torchrun, importance.

May import: every other engine subpackage and tunelab.store.
"""
