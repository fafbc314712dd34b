"""``qrewrite quickstart``: the README's main job (prepare -> fine-tune briefly -> evaluate -> outputs/)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from qrewrite.cli.prepare import format_prepare_report
from qrewrite.config import load_config
from qrewrite.data.prepare import DISFL_QA_ENV
from qrewrite.errors import ConfigError
from qrewrite.files import PROJECT_ROOT, safe_join


def add_quickstart(sub):
    p = sub.add_parser("quickstart", help="prepare -> fine-tune the offline model briefly -> evaluate -> outputs/",
                       description="The main job, offline: prepare the shipped sample data, fine-tune the "
                                   "offline SmolLM2-135M-Instruct briefly on CPU, evaluate it and the copy "
                                   "baseline, and write results.md into --outputs (outputs/quickstart; the "
                                   "committed outputs/ stay as they are). --full runs the full CPU recipe on "
                                   "Disfl-QA instead.")
    p.add_argument("--full", action="store_true",
                   help="prepare Disfl-QA from --source and train with configs/smollm2-cpu-full.yaml")
    p.add_argument("--source", default=os.environ.get(DISFL_QA_ENV),
                   help=f"raw Disfl-QA directory for --full (default: ${DISFL_QA_ENV})")
    p.add_argument("--config", help="override the training config file")
    p.add_argument("--model", help="override the config's model (e.g. a local checkpoint directory)")
    p.add_argument("--outputs", default="outputs/quickstart",
                   help="where its evaluations and results.md go (default: outputs/quickstart, git-ignored, so the "
                        "committed results in outputs/ stay as they are; regenerate its results.md with `qrewrite "
                        "results --outputs outputs/quickstart`)")
    p.set_defaults(func=cmd_quickstart)


def cmd_quickstart(args) -> int:
    from qrewrite.data.prepare import prepare_data
    from qrewrite.eval.evaluate import evaluate_model
    from qrewrite.eval.results import write_results
    from qrewrite.run import Run
    from qrewrite.train.trainer import train

    if args.full:
        if not args.source:
            raise ConfigError(f"--full prepares the raw Disfl-QA files: pass --source DIR (the directory holding "
                              f"train.json and dev.json) or set {DISFL_QA_ENV}=DIR")
        source, data_dir, label = args.source, "dataset", "disfl-qa dev"
        config = args.config or "configs/smollm2-cpu-full.yaml"
    else:
        source, data_dir, label = str(PROJECT_ROOT / "dataset" / "sample"), "dataset/quickstart", "sample valid"
        config = args.config or "configs/smollm2-quickstart.yaml"
    print(f"[1/4] prepare: {source} -> {data_dir}")
    print(format_prepare_report(prepare_data(source, data_dir)))
    overrides = {"train_file": f"{data_dir}/train.json", "valid_file": f"{data_dir}/valid.json"}
    if args.model:
        overrides["model"] = args.model
    cfg = load_config(config, overrides)
    run = Run.for_config(cfg)
    run_dir, status = run.path, run.status
    if not args.full and run_dir.exists():
        shutil.rmtree(run_dir)  # the quickstart's own run directory: start fresh each time
        status = None
    if status == "complete":
        print(f"[2/4] train: {run_dir} is already complete; reusing it")
    else:
        print(f"[2/4] train: {config} -> {run_dir}" + (" (resuming)" if status else ""))
        train(cfg, resume=status is not None)
    out = safe_join(args.outputs, cfg.resolved_run_name())
    print(f"[3/4] evaluate: {run_dir} and the copy baseline on {data_dir}/valid.json -> {args.outputs}/")
    for model, out_dir, name in ((str(run_dir), out, cfg.resolved_run_name()),
                                 ("copy", Path(f"{out}-copy-baseline"), f"{cfg.resolved_run_name()}-copy")):
        r = evaluate_model(model, f"{data_dir}/valid.json", out_dir, name=name, data_label=label,
                           train_data=f"{data_dir}/train.json", max_new_tokens=cfg.max_new_tokens)
        print(f"  {name}: ROUGE-L {r['metrics']['rougeL']:.3f}  EM {r['metrics']['exact_match']:.1%}")
    print(f"[4/4] results: {write_results(args.outputs)}")
    print(next_steps(run_dir, args.outputs))
    return 0


def next_steps(run_dir: Path, outputs: str) -> str:
    """What to run next with the model just trained (the paths as this command wrote them)."""
    model, qrewrite = os.path.relpath(run_dir), qrewrite_command()
    return "\n".join([
        "next:",
        f"  {qrewrite} rewrite --model {model} \"Who was the first uh the second man on the moon?\"",
        f"  {qrewrite} serve --model {model}    # then open http://127.0.0.1:8000",
        f"  {qrewrite} results --outputs {outputs}    # regenerate {outputs}/results.md",
    ])


def qrewrite_command() -> str:
    """How this shell runs the qrewrite of this interpreter: ``qrewrite`` when PATH finds it, else its path in
    the interpreter's environment (``.venv/bin/qrewrite`` after ``bash run.sh``), else ``python -m qrewrite``."""
    here = Path(sys.executable).parent
    found = shutil.which("qrewrite")
    if found and Path(found).parent.resolve() == here.resolve():
        return "qrewrite"
    if (here / "qrewrite").is_file():
        return os.path.relpath(here / "qrewrite")
    return "python -m qrewrite"
