"""qrewrite: fine-tune small causal LMs to rewrite messy questions into the clean question meant."""

__version__ = "0.1.0"
