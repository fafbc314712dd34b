#!/usr/bin/env python
"""Fine-tune a causal LM to rewrite messy questions — the headless twin of notebooks/02_finetune.ipynb.

    python finetune.py --config configs/qwen2-0.5b-full.yaml            # one GPU
    python finetune.py --config configs/smollm2-cpu-full.yaml --max-steps 50
    torchrun --nproc-per-node 4 finetune.py --config configs/qwen2-0.5b-full.yaml     # DDP
    accelerate launch --config_file configs/accelerate/fsdp.yaml finetune.py --config ...

Every config field is an option (see --help); the resolved config lands in weights/<run-name>/config.yaml.
"""

import argparse
import sys

from qrewrite.cli.main import run_command
from qrewrite.cli.train import cmd_train
from qrewrite.config import add_config_arguments


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    return run_command(cmd_train, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
