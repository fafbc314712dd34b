"""The one place where training defaults live.

A run is a config file under ``configs/`` plus command-line overrides (``--learning-rate 1e-4``); every
field of :class:`TrainConfig` is an option of ``finetune.py`` and ``python -m qrewrite train``. The resolved
config is saved next to every checkpoint and output.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

from qrewrite.errors import ConfigError  # also importable from here, as before
from qrewrite.files import atomic_write_text, project_path, safe_join
from qrewrite.flags import add_override_options, option
from qrewrite.flags import coerce as coerce_as
from qrewrite.prompt import PROMPT_FORMATS

QWEN2_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
METHODS = ("full", "lora", "qlora")
# bf16-mixed is for training only: the weights a run saves (and rewrites with) stay fp32
PRECISIONS = ("auto", "bf16", "fp16", "fp32", "bf16-mixed")
ATTENTION = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")
BEST_METRICS = ("loss", "rougeL_sample", "rougeL_sample_typo", "rougeL_sample_mean")
# the kinds of training pair made from clean extra questions (qrewrite.data.extra)
EXTRA_KINDS = ("synthetic", "typo", "filler", "clean")


def parse_mix(mix: str) -> dict[str, float]:
    """``"synthetic=0.55,typo=0.15,..."`` -> shares summing to 1; raises ValueError naming what is wrong."""
    shares: dict[str, float] = {}
    for part in mix.replace(" ", ",").split(","):
        if not part:
            continue
        kind, sep, value = part.partition("=")
        if not sep or kind not in EXTRA_KINDS:
            raise ValueError(f"{part!r} is not KIND=SHARE with KIND one of {', '.join(EXTRA_KINDS)}")
        try:
            share = float(value)
        except ValueError:
            raise ValueError(f"{part!r}: the share must be a number") from None
        if not 0 <= share < float("inf"):
            raise ValueError(f"{part!r}: the share must be a finite number >= 0")
        shares[kind] = shares.get(kind, 0.0) + share
    total = sum(shares.values())
    if not total > 0:
        raise ValueError(f"{mix!r}: give at least one kind a share above 0")
    return {k: shares.get(k, 0.0) / total for k in EXTRA_KINDS}


@dataclass
class TrainConfig:
    # what to train
    model: str = option("smollm2", "hub id (e.g. Qwen/Qwen2-0.5B-Instruct), local checkpoint dir, or 'smollm2' "
                              "for the offline SmolLM2-135M-Instruct")
    method: str = option("full", "full | lora | qlora")
    train_file: str = option("dataset/train.json", "training split (canonical JSON from `qrewrite prepare`); empty: "
                                                   "train on the pairs made from extra_questions alone (a first stage)")
    valid_file: str = option("dataset/valid.json", "validation split")
    run_name: str = option("", "run directory name under output_root (default: derived from model and method)")
    output_root: str = option("weights", "where run directories are created")
    seed: int = option(0, "seed for data order, init of LoRA weights and dropout")
    # optimisation
    max_steps: int = option(-1, "optimizer steps; -1 = num_epochs over the training split")
    num_epochs: float = option(1.0, "epochs when max_steps is -1")
    batch_size: int = option(16, "examples per device per micro-batch")
    grad_accum: int = option(1, "micro-batches per optimizer step")
    learning_rate: float = option(5e-5, "peak learning rate")
    lr_scheduler: str = option("cosine", "transformers scheduler name (linear, cosine, constant_with_warmup, ...)")
    warmup_ratio: float = option(0.03, "share of steps used for linear warm-up")
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_grad_norm: float = option(1.0, "gradient clipping norm")
    optim: str = option("adamw_torch_fused", "transformers optimizer name: adamw_torch_fused (one fused kernel for "
                                        "all parameters, CPU and GPU), adamw_torch, adamw_bnb_8bit, ...")
    optim_args: str = option("", "the optimizer's own options as transformers reads them, comma-separated "
                                "key=value (e.g. bf16_stochastic_round=True for adamw_torch_8bit: torchao's "
                                "8-bit AdamW rounding bf16 weights stochastically); empty = none")
    # memory / speed
    precision: str = option("auto", "auto (bf16 on GPUs that support it, else fp32) | bf16 | fp16 | fp32 | "
                                   "bf16-mixed (fp32 weights and optimizer, bf16 autocast: faster on CPUs with "
                                   "avx512_bf16 / AMX; the saved model is fp32)")
    gradient_checkpointing: bool = option(False, "recompute activations in backward to save memory")
    attn_implementation: str = option("sdpa", "sdpa | eager | flash_attention_2")
    max_length: int = option(256, "max tokens of prompt + answer; longer examples are truncated and counted")
    group_by_length: bool = option(True, "batch examples of similar length together (less padding)")
    dataloader_workers: int = option(0, "DataLoader worker processes")
    supervised_logits: bool = option(True, "apply the output layer only at positions whose next token carries loss "
                                          "(same loss and gradients, far fewer vocabulary-sized products)")
    torch_compile: bool = option(False, "compile the model with torch.compile (inductor); the first steps pay "
                                       "for the compilation")
    padding_free: bool = option(False, "concatenate each batch into one row with position_ids instead of padding")
    freeze_embeddings: bool = option(False, "full fine-tune: keep the token embeddings (and the output layer, when "
                                           "tied to them, as in SmolLM2) at the base model's values: the loss "
                                           "cannot push down tokens that training targets never use")
    # data
    typo_copies: int = option(0, "add this many typo'd copies of each training input (seeded)")
    typo_rate: float = option(0.05, "per-character typo probability for typo augmentation")
    typo_rate_max: float = option(0.0, "if > typo_rate: the typo'd copies get rates spaced evenly from typo_rate "
                                      "to typo_rate_max (heavier noise for later copies); 0 = all at typo_rate")
    typo_nonwords: bool = option(False, "typo'd copies never spell another real word (a word of the training "
                                       "inputs or targets): an edit that would is drawn again (qrewrite.data.typos)")
    synthetic_copies: int = option(0, "add this many synthetic disfluent copies of each training question, built "
                                     "from its clean target (qrewrite.data.synthetic: corrections and restarts)")
    name_swap_copies: int = option(0, "add this many copies of each training pair with its names and numbers "
                                     "replaced consistently in input and target (qrewrite.data.name_swap: copy what "
                                     "is new)")
    extra_questions: str = option("", "a .jsonl ({\"question\": ...} per line) or .txt file of clean questions on "
                                     "other topics, each made a training pair (qrewrite.data.extra): a synthetic "
                                     "disfluency, typos, fillers, or left clean (empty = none)")
    extra_count: int = option(0, "questions drawn (seeded) from extra_questions; 0 = all of them")
    extra_mix: str = option("synthetic=0.55,typo=0.15,filler=0.1,clean=0.2",
                           "shares of the kinds of pair made from extra_questions (synthetic, typo, filler, clean)")
    max_train_examples: int = option(0, "use only the first N training examples after shuffling (0 = all)")
    prompt_format: str = option("chat", "chat (system instruction + the model's chat template) | minimal (user and "
                                       "assistant turns only: ~40 percent fewer tokens per example)")
    system_prompt: str = option("", "chat format: override the system instruction (empty = "
                                   "qrewrite.prompt.SYSTEM_PROMPT)")
    # LoRA / QLoRA
    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA alpha (scale = alpha / r)")
    lora_dropout: float = option(0.05, "LoRA dropout")
    lora_targets: list = option(help="module names to adapt; each must match a module of the model",
                                default_factory=lambda: list(QWEN2_TARGETS))
    merge_after: bool = option(True, "after LoRA/QLoRA training also save a merged full checkpoint")
    # evaluation, checkpoints, logging
    eval_steps: int = option(50, "evaluate (loss + sampled ROUGE-L) every N steps; 0 = only at the end")
    eval_sample: int = option(32, "validation questions rewritten for ROUGE-L at each evaluation (and a typo'd "
                                 "copy of them when training on typo'd copies or selecting on it)")
    best_metric: str = option("loss", "which checkpoint is kept as the final model: loss (eval loss) | "
                                     "rougeL_sample (ROUGE-L on the validation sample) | rougeL_sample_typo (on "
                                     "its typo'd copy) | rougeL_sample_mean (mean of the two)")
    max_eval_examples: int = option(0, "cap the validation split used for eval loss (0 = all)")
    save_steps: int = option(50, "checkpoint every N steps (a multiple of eval_steps keeps the best one)")
    save_total_limit: int = option(2, "checkpoints kept (the best is always kept)")
    logging_steps: int = option(10, "log loss every N steps")
    max_new_tokens: int = option(64, "generation budget when rewriting")
    trust_remote_code: bool = option(False, "allow the model repo's own Python code to run (off unless asked)")
    report_to: str = option("tensorboard", "tensorboard | none")

    # ---- derived helpers -------------------------------------------------------------------------------
    def typo_copy_rates(self) -> list[float]:
        """The typo rate of each typo'd training copy, in order."""
        n, top = self.typo_copies, self.typo_rate_max
        if n <= 1 or not top > self.typo_rate:
            return [self.typo_rate] * n
        return [round(self.typo_rate + (top - self.typo_rate) * k / (n - 1), 6) for k in range(n)]

    def resolved_run_name(self) -> str:
        if self.run_name:
            return self.run_name
        base = Path(self.model.rstrip("/")).name.lower().replace("_", "-")
        return f"{base}-{self.method}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> "TrainConfig":
        errors = []
        if self.run_name:
            try:
                safe_join(self.output_root, self.run_name)
            except ValueError as e:
                errors.append(f"run_name: {e}")
        if self.method not in METHODS:
            errors.append(f"method: {self.method!r} is not one of {', '.join(METHODS)}")
        if not self.learning_rate > 0:
            errors.append(f"learning_rate: must be > 0, got {self.learning_rate}")
        for name in ("batch_size", "grad_accum", "max_length", "max_new_tokens", "logging_steps"):
            if getattr(self, name) < 1:
                errors.append(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            errors.append(f"max_steps: must be -1 (use num_epochs) or >= 1, got {self.max_steps}")
        if self.max_steps == -1 and not self.num_epochs > 0:
            errors.append(f"num_epochs: must be > 0, got {self.num_epochs}")
        errors += self._adapter_errors()
        if not 0 <= self.warmup_ratio < 1:
            errors.append(f"warmup_ratio: must be in [0, 1), got {self.warmup_ratio}")
        errors += self._augmentation_errors()
        if self.freeze_embeddings and self.method != "full":
            errors.append(f"freeze_embeddings: only for method full ({self.method} trains adapters only; the "
                          "embeddings stay frozen already)")
        if self.best_metric not in BEST_METRICS:
            errors.append(f"best_metric: {self.best_metric!r} is not one of {', '.join(BEST_METRICS)}")
        elif self.best_metric != "loss" and self.eval_sample < 1:
            errors.append(f"best_metric: {self.best_metric} needs eval_sample >= 1 (the questions it is measured on)")
        for name in ("eval_steps", "save_steps", "eval_sample", "save_total_limit", "max_train_examples",
                     "max_eval_examples", "dataloader_workers", "synthetic_copies", "name_swap_copies",
                     "extra_count"):
            if getattr(self, name) < 0:
                errors.append(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.attn_implementation not in ATTENTION:
            errors.append(f"attn_implementation: {self.attn_implementation!r} is not one of {', '.join(ATTENTION)}")
        for name in ("weight_decay", "max_grad_norm"):
            if not getattr(self, name) >= 0:
                errors.append(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.precision not in PRECISIONS:
            errors.append(f"precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.prompt_format not in PROMPT_FORMATS:
            errors.append(f"prompt_format: {self.prompt_format!r} is not one of {', '.join(PROMPT_FORMATS)}")
        elif self.prompt_format == "minimal" and self.system_prompt:
            errors.append("system_prompt: the minimal prompt format has no system turn; leave it empty or use "
                          "prompt_format: chat")
        if self.report_to not in ("tensorboard", "none"):
            errors.append(f"report_to: {self.report_to!r} is not one of tensorboard, none")
        named = {e.split(":")[0] for e in errors}
        errors += [e for e in self._out_of_range() if e.split(":")[0] not in named]
        if errors:
            raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
        return self

    def _adapter_errors(self) -> list[str]:
        errors = []
        if self.method in ("lora", "qlora"):
            if self.lora_r < 1:
                errors.append(f"lora_r: must be >= 1, got {self.lora_r}")
            if self.lora_alpha <= 0:
                errors.append(f"lora_alpha: must be > 0, got {self.lora_alpha}")
            if not self.lora_targets:
                errors.append("lora_targets: name at least one module (e.g. q_proj v_proj)")
        if not 0 <= self.lora_dropout < 1:
            errors.append(f"lora_dropout: must be in [0, 1), got {self.lora_dropout}")
        return errors

    def _augmentation_errors(self) -> list[str]:
        """The typo'd copies' and the extra questions' settings."""
        errors = []
        if not 0 <= self.typo_rate <= 1 or self.typo_copies < 0:
            errors.append("typo_rate must be in [0, 1] and typo_copies >= 0")
        if self.typo_nonwords and not self.typo_copies:
            errors.append("typo_nonwords: set typo_copies >= 1 too (it shapes the typo'd copies; there are none)")
        if not (self.typo_rate_max == 0 or self.typo_rate <= self.typo_rate_max <= 1):
            errors.append(f"typo_rate_max: must be 0 (off) or between typo_rate ({self.typo_rate}) and 1, "
                          f"got {self.typo_rate_max}")
        try:
            parse_mix(self.extra_mix)
        except ValueError as e:
            errors.append(f"extra_mix: {e}")
        if self.extra_count and not self.extra_questions:
            errors.append("extra_count: set extra_questions too (the file the questions are drawn from)")
        if not self.train_file and not self.extra_questions:
            errors.append("train_file: empty, and no extra_questions to train on instead; name a training split")
        return errors

    def _out_of_range(self) -> list[str]:
        """Numbers no field can take: a float that is not finite (``.inf`` passes ``> 0``; ``.nan`` passes
        nothing and fails nothing), a seed past numpy's 2**32 - 1, a whole number past 2**31 - 1."""
        errors = []
        for name, f in FIELDS.items():
            value, typ = getattr(self, name), _field_type(f)
            if typ is float and not math.isfinite(value):
                errors.append(f"{name}: must be a finite number, got {value}")
            elif name == "seed" and not 0 <= value <= 2**32 - 1:
                errors.append(f"seed: must be a whole number from 0 to 2**32 - 1 = {2**32 - 1}, got {value}")
            elif typ is int and name != "seed" and abs(value) > 2**31 - 1:
                errors.append(f"{name}: {value} is out of range (at most {2**31 - 1})")
        return errors


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
# What --resume may change: how long to train and how often to evaluate, save and log. Every other field changes
# the model, the data or the optimisation, and a resumed run must keep it (start a new --run-name instead).
RESUMABLE_FIELDS = ("max_steps", "num_epochs", "eval_steps", "eval_sample", "max_eval_examples", "save_steps",
                    "save_total_limit", "logging_steps", "report_to", "dataloader_workers", "max_new_tokens")


def _field_type(f: dataclasses.Field):
    hints = typing.get_type_hints(TrainConfig)
    return hints[f.name]


def coerce(key: str, value):
    """Convert ``value`` (from YAML or the command line) to the type of config field ``key``."""
    return coerce_as(key, _field_type(FIELDS[key]), value)


def unknown_key_error(key: str, source: str) -> ConfigError:
    close = difflib.get_close_matches(key, FIELDS, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(FIELDS)}"
    return ConfigError(f"unknown config key {key!r} in {source}{hint}")


class _DuplicateKey(yaml.YAMLError):
    pass


class _Loader(yaml.SafeLoader):
    """YAML as a config means it: a key given twice is an error (not the last one winning silently), and
    ``5e-1`` is a number as in YAML 1.2 and JSON (YAML 1.1 wants ``5.0e-1`` and reads ``5e-1`` as text)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, typing.Hashable) and key in seen:
                raise _DuplicateKey(f"the key {key!r} is given twice (lines {seen[key] + 1} and "
                                    f"{key_node.start_mark.line + 1}); keep one")
            if isinstance(key, typing.Hashable):
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def load_yaml(path: Path, what: str = "config file", named: str = ""):
    """The YAML document at ``path`` (UTF-8, or UTF-16 / UTF-32 with a byte order mark), or one ConfigError
    naming the file: missing, a directory, unreadable, not YAML, a key given twice."""
    try:
        data = path.read_bytes()  # bytes: PyYAML reads the byte order mark and decodes UTF-16 / UTF-8 by it
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}{named}") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path}{named} is a directory; name a YAML file") from None
    except OSError as e:
        raise ConfigError(f"{what} {path}{named} cannot be read: {e.strerror or e}") from None
    try:
        return yaml.load(data, Loader=_Loader)
    except _DuplicateKey as e:
        raise ConfigError(f"{what} {path}{named}: {e}") from None
    except yaml.reader.ReaderError as e:
        raise ConfigError(f"{what} {path}{named} is not UTF-8 (or UTF-16 with a byte order mark) text: byte "
                          f"{e.position}: {e.reason}; save it as UTF-8") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        text = f"{e.problem} (line {where.line + 1}, column {where.column + 1})" if where else str(e)
        raise ConfigError(f"{what} {path}{named} is not valid YAML: {' '.join(text.split())}") from None


BASE_KEY = "base"  # a config file may start from another: `base: other.yaml` (relative to the file), then change


def _config_file_values(path: Path, children: tuple[Path, ...] = ()) -> dict:
    """The field values a YAML config file sets, its ``base`` chain's first (a file's own keys win)."""
    path = project_path(path)
    loaded = load_yaml(path, named=f" (the base of {children[-1]})" if children else "") or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must be a mapping of key: value, got {type(loaded).__name__}")
    values: dict = {}
    base = loaded.pop(BASE_KEY, None)
    if base is not None:
        if not isinstance(base, str) or not base.strip():
            raise ConfigError(f"config file {path}: '{BASE_KEY}' must name another config file, got {base!r}")
        base_path = path.parent / base
        chain = (*children, path)
        if base_path.resolve() in {c.resolve() for c in chain}:
            raise ConfigError(f"config file {path}: '{BASE_KEY}: {base}' makes a loop: "
                              + " -> ".join(str(c) for c in (*chain, base_path)))
        values.update(_config_file_values(base_path, chain))
    for k, v in loaded.items():
        k = str(k).replace("-", "_")
        if k not in FIELDS:
            raise unknown_key_error(k, str(path))
        values[k] = coerce(k, v)
    return values


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """Defaults <- YAML file (after its ``base`` file, if it names one) <- overrides (a dict of field -> value,
    strings allowed), validated."""
    values: dict = _config_file_values(Path(path)) if path else {}
    for k, v in (overrides or {}).items():
        k = k.replace("-", "_")
        if k not in FIELDS:
            raise unknown_key_error(k, "the command line")
        values[k] = coerce(k, v)
    return TrainConfig(**values).validate()


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` plus one ``--<field>`` option per config field (help text from the field)."""
    parser.allow_abbrev = False  # else a typo such as --lr 1e-4 silently sets --lr-scheduler
    parser.add_argument("--config", help="YAML config file (see configs/); options below override it")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last checkpoint in the run directory")
    add_override_options(parser.add_argument_group("config fields (override the config file)"), TrainConfig,
                         dest_prefix="cfg_")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    return load_config(args.config, overrides)


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    return atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


@dataclasses.dataclass
class AverageConfig:
    run_name: str
    models: dict[str, float]
    output_root: str = "weights"
    # the share of the model the ingredients were fine-tuned from (WiSE-FT, Wortsman et al., 2022: moving a
    # fine-tune back toward its start); the ingredients share the rest in proportion to their weights
    start_model_weight: float = 0.0

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        if not self.start_model_weight:  # a plain soup's recipe reads as it always did
            del values["start_model_weight"]
        return values

    def resolved_run_name(self) -> str:
        return self.run_name

    def weights(self) -> list[float]:
        """The ingredients' shares, summing to 1 - start_model_weight."""
        total = sum(self.models.values())
        return [(1 - self.start_model_weight) * w / total for w in self.models.values()]

def load_average_config(path: str | Path, overrides: dict | None = None) -> AverageConfig:
    """The recipe at ``path`` (relative to the working directory or the project), validated; ``overrides``
    (run_name / output_root) win over the file."""
    path = project_path(path)
    values = load_yaml(path, "average recipe") or {}
    if not isinstance(values, dict):
        raise ConfigError(f"average recipe {path} must be a mapping with run_name and models")
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(AverageConfig)})
    if unknown:
        raise ConfigError(f"average recipe {path}: unknown key {unknown[0]!r}; keys: run_name, models, output_root, "
                          "start_model_weight")
    for key in ("run_name", "models"):
        if key not in values:
            raise ConfigError(f"average recipe {path}: '{key}' is missing")
    if not isinstance(values["run_name"], str):
        raise ConfigError(f"average recipe {path}: run_name must be a name, got {values['run_name']!r}")
    start = values.get("start_model_weight", 0.0)
    if isinstance(start, bool) or not isinstance(start, (int, float)) or not 0 <= start < 1:
        raise ConfigError(f"average recipe {path}: start_model_weight must be a number from 0 up to (not "
                          f"including) 1, got {start!r}")
    models = values["models"]
    fewest = 1 if start else 2
    if not isinstance(models, dict) or len(models) < fewest:
        raise ConfigError(f"average recipe {path}: 'models' must map at least {'one' if start else 'two'} run or "
                          f"model {'directory' if start else 'directories'} to weights, got {models!r}")
    for model, weight in models.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0 \
                or weight == float("inf"):
            raise ConfigError(f"average recipe {path}: models: {model}: the weight must be a positive number, "
                              f"got {weight!r}")
    return AverageConfig(run_name=values["run_name"], models={str(k): float(v) for k, v in models.items()},
                         output_root=str(values.get("output_root", "weights")), start_model_weight=float(start))
