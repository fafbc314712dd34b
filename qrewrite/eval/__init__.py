"""Evaluation: rewrite a split, score it, write ``outputs/``; the tables, plots and notebook frames made from
them. Imports infer, data and core (never train)."""
