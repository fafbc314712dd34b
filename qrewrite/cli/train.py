"""``qrewrite train``: fine-tune (full / lora / qlora), as finetune.py does."""

from __future__ import annotations

from qrewrite.config import add_config_arguments, config_from_args


def add_train(sub):
    p = sub.add_parser("train", help="fine-tune (full / lora / qlora); same as finetune.py",
                       description="Fine-tune a causal LM to rewrite questions. Every config field is an option.")
    add_config_arguments(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    cfg = config_from_args(args)  # config errors fail fast, before the slow import of transformers
    from qrewrite.train.trainer import train
    run_dir = train(cfg, resume=args.resume)  # Ctrl-C / SIGTERM: a checkpoint, then Interrupted (run_command)
    print(f"run complete: {run_dir} (model in {run_dir}/model)")
    return 0
