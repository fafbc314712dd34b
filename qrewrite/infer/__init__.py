"""Inference: prompts -> token ids -> rewrites. Decoding settings, batched generation, and the rewriters
(a model, ``copy``, ``rules``) behind every command that rewrites. Imports data and core."""
