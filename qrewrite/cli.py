"""``python -m qrewrite prepare | train | average | evaluate | rewrite | results | quickstart | serve | score``.

Thin: each command parses its options and calls one function of the package. Errors the user can fix
(bad data, bad config, unusable model path) print one clear message and exit with status 2.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from .config import GENERATION_BATCH_SIZE, add_config_arguments, config_from_args, load_config
from .errors import ConfigError, DataError, QrewriteError
from .files import PROJECT_ROOT, check_writable, safe_join
from .serve_cli import add_serve

DISFL_QA = PROJECT_ROOT.parent / "shared" / "data" / "disfl-qa"


def bounded_int(low: int, high: int | None = None):
    """An argparse type: a whole number from ``low`` (to ``high``), with a message saying so."""
    def parse(text: str) -> int:
        value = int(text)
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low}" + (f" and <= {high}" if high else "")
                                             + f", got {text}")
        return value
    return parse


positive_int, non_negative_int = bounded_int(1), bounded_int(0)


def probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def open_fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


# ---- prepare -----------------------------------------------------------------------------------------------

def add_prepare(sub):
    p = sub.add_parser("prepare", help="convert raw data into dataset/ splits",
                       description="Convert raw Disfl-QA (a directory with train.json and dev.json), the older "
                                   "list format, or JSON/JSONL/CSV with named columns into canonical splits.")
    p.add_argument("--source", required=True, help="raw data directory or training file")
    p.add_argument("--out", default="dataset", help="output directory (default: dataset)")
    p.add_argument("--valid", help="validation file when --source is a single file")
    p.add_argument("--test", help="test file when --source is a single file")
    p.add_argument("--valid-fraction", type=open_fraction, default=0.1,
                   help="share of a single source file held out for validation (default: 0.1)")
    p.add_argument("--valid-split", choices=("auto", "topic"), default="auto",
                   help="auto (default): the validation file, else a random --valid-fraction of the source; topic: "
                        "hold out whole topics of train as valid.json (about --valid-size questions, seeded), the "
                        "validation file (Disfl-QA dev, same topics as train) written beside it as valid_dev.json")
    p.add_argument("--valid-size", type=positive_int, default=1000,
                   help="questions held out by --valid-split topic (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed for the split and the typo noise (default: 0)")
    p.add_argument("--typo-copies", type=non_negative_int, default=0,
                   help="typo'd copies of each training input to add")
    p.add_argument("--typo-rate", type=probability, default=0.05, help="per-character typo probability (default: 0.05)")
    p.add_argument("--no-typo-eval", action="store_true", help="do not write valid_typo.json / test_typo.json")
    p.add_argument("--strict", action="store_true", help="fail on the first bad record instead of skipping it")
    p.add_argument("--input-field", help="input column/field name (generic JSON/JSONL/CSV)")
    p.add_argument("--target-field", help="target column/field name")
    p.add_argument("--id-field", help="id column/field name")
    p.add_argument("--download", action="store_true",
                   help="download the official Disfl-QA files into --source first when they are missing")
    p.set_defaults(func=cmd_prepare)


def cmd_prepare(args) -> int:
    from .data import prepare_data
    report = prepare_data(args.source, args.out, valid=args.valid, test=args.test,
                          valid_fraction=args.valid_fraction, seed=args.seed, typo_copies=args.typo_copies,
                          typo_rate=args.typo_rate, typo_eval=not args.no_typo_eval, strict=args.strict,
                          input_field=args.input_field, target_field=args.target_field, id_field=args.id_field,
                          download=args.download, valid_split=args.valid_split, valid_size=args.valid_size)
    print(format_prepare_report(report))
    return 0


def format_prepare_report(report: dict) -> str:
    lines = []
    for split, rep in report.get("splits", {}).items():
        lines.append(f"{split}: {rep.get('n_kept')} kept of {rep.get('n_read')} read from {rep.get('source')}")
        for kind in ("cleaned", "skipped"):
            for reason, ids in (rep.get(kind) or {}).items():
                if ids:
                    shown = ", ".join(map(str, ids[:10])) + (" ..." if len(ids) > 10 else "")
                    lines.append(f"  {kind} ({reason}): {len(ids)} [{shown}]")
    split_off = report.get("split_off") or {}
    if split_off.get("method") == "topic":
        lines.append(f"valid: {split_off['n_topics_held_out']} of {split_off['n_topics_found']} topics held out "
                     f"({', '.join(' '.join(w[:3]) for w in split_off['held_out_topic_words'])})")
        for split, share in split_off.get("seen_name_share", {}).items():
            if share is not None:
                lines.append(f"  {split}: {share:.0%} of its references' capitalised words occur in train's")
    lines.append(f"written: {', '.join(report.get('files', [])) or '(see prepare_report.json)'}")
    return "\n".join(lines)


# ---- train -------------------------------------------------------------------------------------------------

def add_train(sub):
    p = sub.add_parser("train", help="fine-tune (full / lora / qlora); same as finetune.py",
                       description="Fine-tune a causal LM to rewrite questions. Every config field is an option.")
    add_config_arguments(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    cfg = config_from_args(args)  # config errors fail fast, before the slow import of transformers
    from .train import train
    try:
        run_dir = train(cfg, resume=args.resume)
    except KeyboardInterrupt as e:
        print(e, file=sys.stderr)
        return 130
    print(f"run complete: {run_dir} (model in {run_dir}/model)")
    return 0


# ---- average -----------------------------------------------------------------------------------------------

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
    from .average import average_models, describe, load_average_config
    cfg = load_average_config(args.config, {"run_name": args.run_name, "output_root": args.output_root})
    run_dir = average_models(cfg)
    from .run import Run
    info = Run(run_dir).info()
    print(f"{describe(info)}\naveraged in {info['train_time_s']} s: {run_dir} (model in {run_dir}/model)")
    return 0


# ---- evaluate ----------------------------------------------------------------------------------------------

def add_evaluate(sub):
    """Rewrite every question of --data and score against the references. --model copy / rules score the
    baselines that need no model."""
    p = sub.add_parser("evaluate", description=add_evaluate.__doc__,
                       help="score a model on a split; writes metrics.json and predictions")
    add_model_option(p)
    p.add_argument("--data", required=True, help="canonical split to score (e.g. dataset/valid.json)")
    p.add_argument("--out", required=True, help="evaluation directory (e.g. outputs/<run>)")
    p.add_argument("--name", help="run name shown in the results table (default: --out's name)")
    p.add_argument("--data-label", help="data name shown in the results table (default: the file's stem)")
    p.add_argument("--train-data", help="also rewrite a sample of this split into train_io.json")
    p.add_argument("--train-sample", type=non_negative_int, default=100,
                   help="questions in train_io.json (default: 100)")
    p.add_argument("--few-shot", type=non_negative_int, default=0, metavar="K",
                   help="put K seeded pairs of --shots-from in the prompt as earlier turns (an untuned model's best "
                        "effort without training; default 0)")
    p.add_argument("--shots-from", default="dataset/train.json",
                   help="training split the few-shot pairs come from (default: dataset/train.json)")
    add_generation_options(p)
    add_decoding_option(p)
    p.add_argument("--limit", type=non_negative_int, default=0, help="score only the first N questions (0 = all)")
    p.set_defaults(func=cmd_evaluate)


def add_model_option(p):
    p.add_argument("--model", required=True,
                   help="run dir (weights/<run>), model or adapter dir, hub id, 'smollm2' (the untuned offline "
                        "model), 'copy' (copy-the-input baseline) or 'rules' (rule-based baseline)")


def add_decoding_option(p):
    p.add_argument("--num-beams", type=positive_int, default=1,
                   help="beam search with this many beams (default: 1 = greedy, as the model was selected with)")
    p.add_argument("--copy-bonus", type=non_negative_float, default=0.0,
                   help="add this to the logits of the question's own tokens: fewer paraphrased words "
                        "(default: 0 = none)")


def decoding_from_args(args):
    from .decoding import Decoding
    return Decoding(num_beams=args.num_beams, copy_bonus=args.copy_bonus)


def add_generation_options(p):
    p.add_argument("--batch-size", type=positive_int, default=GENERATION_BATCH_SIZE,
                   help=f"questions per generation batch (default: {GENERATION_BATCH_SIZE})")
    p.add_argument("--max-new-tokens", type=positive_int,
                   help="generation budget (default: the model's own, saved with it at training; else 64)")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"],
                   help="inference dtype (default: auto = bf16 on capable GPUs, else fp32)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model repository's own Python code to run (off by default)")


def cmd_evaluate(args) -> int:
    from .evaluation import evaluate_model
    result = evaluate_model(args.model, args.data, args.out, batch_size=args.batch_size,
                            max_new_tokens=args.max_new_tokens, limit=args.limit, train_data=args.train_data,
                            train_sample=args.train_sample, name=args.name, data_label=args.data_label,
                            few_shot=args.few_shot, shots_from=args.shots_from, decoding=decoding_from_args(args),
                            precision=args.precision, trust_remote_code=args.trust_remote_code)
    m = result["metrics"]
    print(f"{result['run']['name']} on {result['run']['data']} ({m['n']} questions): ROUGE-L {m['rougeL']:.4f}  "
          f"ROUGE-1 {m['rouge1']:.4f}  ROUGE-2 {m['rouge2']:.4f}  BLEU {m['bleu']:.2f}  "
          f"EM {m['exact_match']:.2%}  changed {m['changed_input']:.2%}")
    print(f"written: {Path(args.out) / 'metrics.json'}")
    return 0


# ---- rewrite -----------------------------------------------------------------------------------------------

def add_rewrite(sub):
    p = sub.add_parser("rewrite", help="rewrite questions: arguments, a file, or interactively",
                       description="Print the clean question for each QUESTION, rewrite --input FILE into "
                                   "--output JSONL (resumable), or read questions from stdin with --interactive.")
    add_model_option(p)
    p.add_argument("questions", nargs="*", help="questions to rewrite")
    p.add_argument("--input", help="JSON / JSONL / CSV / raw Disfl-QA file of questions")
    p.add_argument("--output", help="JSONL output for --input: id, input, prediction per line, input order")
    p.add_argument("--no-input", action="store_true",
                   help="leave the input out of --output: id and prediction only (blind test inputs must not be "
                        "copied into the project)")
    p.add_argument("--input-field", help="input column/field name in --input")
    p.add_argument("--strict", action="store_true", help="fail on a bad record in --input instead of skipping")
    p.add_argument("--interactive", action="store_true", help="read questions line by line until EOF")
    add_generation_options(p)
    add_decoding_option(p)
    p.set_defaults(func=cmd_rewrite)


def cmd_rewrite(args) -> int:
    if bool(args.input) != bool(args.output):
        raise ConfigError("--input and --output go together")
    if args.no_input and not args.output:
        raise ConfigError("--no-input shapes the --output file; give --input and --output")
    if not (args.questions or args.input or args.interactive):
        raise ConfigError("give questions as arguments, --input/--output, or --interactive")
    records = None
    if args.input:
        from .data import read_records
        records, report = read_records(args.input, input_field=args.input_field, require_target=False,
                                       strict=args.strict)
        if any(report.skipped.values()):
            print(report.summary(), file=sys.stderr)
        check_writable(Path(args.output).parent)
    from .generate import rewrite_file  # torch: only once the input is known to be usable
    from .rewriter import load_rewriter

    rewriter = load_rewriter(args.model, precision=args.precision, trust_remote_code=args.trust_remote_code,
                             batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                             decoding=decoding_from_args(args))
    for text in rewriter.rewrite(args.questions):
        print(text)
    if records is not None:
        from .progress import progress_bar
        with progress_bar(len(records)) as bar:
            out = rewrite_file(rewriter, records, args.output, progress=bar.update, with_input=not args.no_input)
        print(f"written: {out} ({len(records)} questions)", file=sys.stderr)
    if args.interactive:
        if sys.stdin.isatty():
            print("Type a question and press Enter (Ctrl-D to quit).", file=sys.stderr)
        for line in sys.stdin:
            if line.strip():
                print(rewriter.rewrite_batch([line.strip()])[0], flush=True)
    return 0


# ---- push --------------------------------------------------------------------------------------------------

def add_push(sub):
    """Upload a finished run's model/ (weights, tokenizer, generation config, qrewrite.json, model card) to the
    Hugging Face Hub. Needs network access and a token (`huggingface-cli login` or HF_TOKEN)."""
    p = sub.add_parser("push", description=add_push.__doc__, help="upload a run's model/ to the Hugging Face Hub")
    p.add_argument("--model", required=True, help="run directory (weights/<run>) or a model directory")
    p.add_argument("--push-to-hub", required=True, metavar="REPO", help="Hub repository id, e.g. you/qrewrite-smollm2")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.set_defaults(func=cmd_push)


def cmd_push(args) -> int:
    from .errors import OutputError
    from .models import hub_reachable
    from .run import Run

    folder = Run.model_dir_of(args.model)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"--model {args.model}: {folder} holds no model (config.json); point it at a complete "
                          "run directory or its model/ directory")
    if not hub_reachable():
        raise OutputError(f"cannot reach the Hugging Face hub to push {folder} to {args.push_to_hub}; nothing was "
                          "uploaded. Push from a machine with network access (the directory is self-contained: "
                          "copy it there), or unset HF_HUB_OFFLINE")
    from huggingface_hub import HfApi
    api = HfApi()
    api.create_repo(args.push_to_hub, private=args.private, exist_ok=True)
    url = api.upload_folder(folder_path=str(folder), repo_id=args.push_to_hub,
                            commit_message=f"qrewrite: upload {folder}")
    print(f"pushed {folder} to {url}")
    return 0


# ---- results -----------------------------------------------------------------------------------------------

def add_results(sub):
    p = sub.add_parser("results", help="regenerate outputs/results.md, ablations.md and the plots from metrics.json "
                                       "files, and the README's copies of the tables")
    p.add_argument("--outputs", default="outputs", help="outputs directory (default: outputs)")
    readme = p.add_mutually_exclusive_group()
    readme.add_argument("--readme", help="README whose marked tables to update (default: README.md beside the "
                                         "outputs directory, when there is one; see qrewrite/readme_tables.py)")
    readme.add_argument("--no-readme", action="store_true", help="leave every README as it is")
    p.set_defaults(func=cmd_results)


def cmd_results(args) -> int:
    from .ablations import TABLE_NAME
    from .readme_tables import update_readme
    from .results import write_results
    try:  # a malformed metrics.json or ablations.yaml: one line naming the file and field
        print(f"written: {write_results(args.outputs)}")
    except ValueError as e:
        raise DataError(str(e)) from None
    if (Path(args.outputs) / TABLE_NAME).is_file():
        print(f"written: {Path(args.outputs) / TABLE_NAME}")
    if not args.no_readme:
        try:
            done = update_readme(args.outputs, args.readme)
        except ValueError as e:
            raise DataError(str(e)) from None
        if done:
            print(done)
    return 0


# ---- quickstart: the README's main job ---------------------------------------------------------------------

def add_quickstart(sub):
    p = sub.add_parser("quickstart", help="prepare -> fine-tune the offline model briefly -> evaluate -> outputs/",
                       description="The main job, offline: prepare the shipped sample data, fine-tune the "
                                   "offline SmolLM2-135M-Instruct briefly on CPU, evaluate it and the copy "
                                   "baseline, and regenerate outputs/results.md. --full runs the full CPU recipe "
                                   "on Disfl-QA instead.")
    p.add_argument("--full", action="store_true",
                   help="prepare Disfl-QA from --source and train with configs/smollm2-cpu-full.yaml")
    p.add_argument("--source", default=str(DISFL_QA), help=f"raw Disfl-QA directory for --full (default: {DISFL_QA})")
    p.add_argument("--config", help="override the training config file")
    p.add_argument("--model", help="override the config's model (e.g. a local checkpoint directory)")
    p.add_argument("--outputs", default="outputs/quickstart",
                   help="where its evaluations and results.md go (default: outputs/quickstart, git-ignored, so the "
                        "committed results in outputs/ stay as they are)")
    p.set_defaults(func=cmd_quickstart)


def cmd_quickstart(args) -> int:
    from .data import prepare_data
    from .evaluation import evaluate_model
    from .results import write_results
    from .run import Run
    from .train import train

    if args.full:
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
    return 0


# ---- score -------------------------------------------------------------------------------------------------

def add_score(sub):
    p = sub.add_parser("score", help="score a predictions file against references (e.g. the blind test's)",
                       description="Score {\"id\", \"prediction\"} JSON Lines (what rewrite --no-input writes) against "
                                   "references in any format prepare reads (raw Disfl-QA included): ROUGE-1/2/L, "
                                   "BLEU, exact match. Every reference needs one prediction and every prediction a "
                                   "reference.")
    p.add_argument("--predictions", required=True, help="JSON Lines of {\"id\", \"prediction\"}")
    p.add_argument("--references", required=True, help="references: raw Disfl-QA, JSON, JSONL or CSV")
    p.add_argument("--json", action="store_true", help="print one JSON object (rougeL, exact_match in 0..1, ...)")
    p.set_defaults(func=cmd_score)


def cmd_score(args) -> int:
    import json

    from .scoring import format_scores, score_predictions
    scores = score_predictions(args.predictions, args.references)
    print(json.dumps(scores, ensure_ascii=False) if args.json else format_scores(scores))
    return 0


# ---- entry point -------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m qrewrite", description=__doc__.split("\n\n")[0].strip("`. "))
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_prepare, add_train, add_average, add_evaluate, add_rewrite, add_push, add_results, add_quickstart,
                add_serve, add_score):
        add(sub)
    return parser


def run_command(func, args) -> int:
    """Run a command; errors the user can fix become one 'error: ...' line and exit status 2."""
    try:
        return func(args)
    except QrewriteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)
