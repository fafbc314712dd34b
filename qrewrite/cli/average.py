"""``qrewrite average``: a weight average (model soup) of fine-tuned runs."""

from __future__ import annotations


def add_average(sub):
    p = sub.add_parser("average", help="average fine-tuned models' weights into a new run (a model soup)",
                       description="Build weights/<run_name>/ whose every tensor is the weighted mean of the same "
                                   "tensor in the recipe's models (fine-tuned from the same start, same tokenizer "
                                   "and prompt). No training; evaluate, rewrite and serve take it like any run.")
    p.add_argument("--config", required=True, help="average recipe: run_name and models (dir -> weight); see "
                                                   "configs/average/")
    p.add_argument("--run-name", help="override the recipe's run_name")
    p.add_argument("--output-root", help="override the recipe's output_root (default: weights)")
    p.set_defaults(func=cmd_average)


def cmd_average(args) -> int:
    from qrewrite.card import describe
    from qrewrite.config import load_average_config
    from qrewrite.train.soup import average_models
    cfg = load_average_config(args.config, {"run_name": args.run_name, "output_root": args.output_root})
    run_dir = average_models(cfg)
    from qrewrite.run import Run
    info = Run(run_dir).info()
    print(f"{describe(info)}\naveraged in {info['train_time_s']} s: {run_dir} (model in {run_dir}/model)")
    return 0
