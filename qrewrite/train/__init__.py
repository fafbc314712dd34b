"""Training: a config -> the Trainer -> a run directory, its callbacks, and weight averaging (model soups).
Imports infer, data and core."""
