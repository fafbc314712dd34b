"""Data: raw files -> checked records -> ``dataset/`` splits, and the training copies (typos, synthetic
disfluencies, name swaps) and the collator. Imports only the core modules of :mod:`qrewrite`."""
