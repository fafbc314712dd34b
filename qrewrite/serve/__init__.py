"""Serving: the HTTP app, its micro-batcher, its limits and the backend it rewrites with. Imports infer and core."""
