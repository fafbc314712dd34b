"""``evaluate``'s options, declared once (free of torch, so that ``--help`` stays fast)."""

from __future__ import annotations

from dataclasses import dataclass

from qrewrite.flags import non_negative_int, option
from qrewrite.infer.options import RewriteOptions


@dataclass(kw_only=True, frozen=True)
class EvaluateOptions(RewriteOptions):
    """Rewrite every question of ``data`` with ``model`` and score it against the references into ``out``."""
    data: str = option(help="canonical split to score (e.g. dataset/valid.json)")
    out: str = option(help="evaluation directory (e.g. outputs/<run>)")
    name: str | None = option(None, "run name shown in the results table (default: --out's name)")
    data_label: str | None = option(None, "data name shown in the results table (default: the file's stem)")
    train_data: str | None = option(None, "also rewrite a sample of this split into train_io.json")
    train_sample: int = option(100, "questions in train_io.json", parse=non_negative_int)
    few_shot: int = option(0, "put K seeded pairs of --shots-from in the prompt as earlier turns (an untuned "
                              "model's best effort without training; default 0)", parse=non_negative_int, metavar="K")
    shots_from: str = option("dataset/train.json", "training split the few-shot pairs come from")
    limit: int = option(0, "score only the first N questions (0 = all)", parse=non_negative_int)
    overwrite: bool = option(False, "replace an evaluation of another model or other data already in --out",
                             action="store_true")
    show_progress: bool = option(True, "a progress bar on stderr", cli=False)
