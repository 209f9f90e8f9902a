"""The store: bags, predictions, decisions, labels, reviews, models, jobs and the audit trail.

``Store.open(url, data_dir=...)`` (core.store.repo) is the entry point; the
rules on who may do what are enforced there, whatever a GUI shows. Values
returned are plain dataclasses (core.store.values); errors are in
core.store.errors.
"""
