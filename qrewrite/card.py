"""A model card (``README.md`` in the Hub's format) for a run's ``model/`` directory.

Written when training finishes and rewritten by ``qrewrite evaluate`` with the dev metrics it measured, so
the card always states what was measured and on which data. YAML front matter: base model, dataset, licence,
language, tags and a ``model-index`` with the metrics; the body: the prompt format and how to rewrite a
question with plain transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import yaml

from qrewrite.config import AverageConfig
from qrewrite.files import atomic_write_json, atomic_write_text, read_json, repo_relative
from qrewrite.prompt import SYSTEM_PROMPT, PromptSpec

CARD = "README.md"
METRICS_FILE = "qrewrite_metrics.json"  # data label -> metrics, beside the card: what the card reports
BASE_MODELS = {"smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}
DATASET = "google-research-datasets/disfl-qa"

USAGE = '''```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model_dir = "{model_dir}"
tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir)
messages = {messages}
inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
output = model.generate(**inputs, max_new_tokens={max_new_tokens}, do_sample=False)  # stops at <|im_end|>
print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip())
```'''


def _front_matter(base: str, method: str, run_name: str, metrics: dict) -> dict:
    results = [{"task": {"type": "text2text-generation", "name": "question rewriting"},
                "dataset": {"type": DATASET, "name": label},
                "metrics": [{"type": key, "name": name, "value": round(float(m[key]), 4)}
                            for key, name in (("rougeL", "ROUGE-L"), ("exact_match", "exact match"),
                                              ("bleu", "BLEU")) if key in m]}
               for label, m in sorted(metrics.items())]
    return {"base_model": base, "datasets": [DATASET], "license": "apache-2.0",
            "language": ["en"], "library_name": "transformers", "pipeline_tag": "text-generation",
            "tags": ["question-rewriting", "disfluency", "qrewrite", method],
            "model-index": [{"name": run_name, "results": results}]}


def render_card(cfg, info: dict, metrics: dict, model_dir: str = "weights/RUN/model") -> str:
    """The card's text for a run made with ``cfg`` (a TrainConfig, or an AverageConfig; ``info``: its run.json;
    ``metrics``: label -> dict)."""
    base, prompt, max_new_tokens, origin, making = _provenance(cfg, info)
    example = "What year no sorry which city hosted the 1996 games?"
    messages = [{"role": "user", "content": example}]
    if prompt.format == "chat":
        messages.insert(0, {"role": "system", "content": prompt.system_prompt or SYSTEM_PROMPT})
    rows = "\n".join(f"| {label} | {m['n']} | {m['rougeL']:.3f} | {m['exact_match']:.1%} | {m['bleu']:.1f} |"
                     for label, m in sorted(metrics.items()))
    measured = ("| data | questions | ROUGE-L | exact match | BLEU |\n|---|---:|---:|---:|---:|\n" + rows
                if rows else "Not evaluated yet: `python -m qrewrite evaluate --model <this run> ...` adds it.")
    prompt_text = ("**minimal**: the user turn and the assistant turn only, no system turn (the chat template "
                   "saved here renders exactly that for a bare user message)" if prompt.format == "minimal" else
                   f"**chat**: a system turn ({(prompt.system_prompt or 'the default instruction')!r} for qrewrite's "
                   "default), then the user turn")
    front = _front_matter(BASE_MODELS.get(base, base), getattr(cfg, "method", "average"),
                          Path(cfg.resolved_run_name()).name, metrics)
    return f"""---
{yaml.safe_dump(front, sort_keys=False).strip()}
---

# {Path(cfg.resolved_run_name()).name}: a question rewriter

Rewrites a messy question into the clean question the user meant: drops disfluencies ("What year no sorry which
city hosted ..." -> "Which city hosted ..."), fixes typos, keeps every fact. {origin}.

## Measured (greedy decoding)
{measured}

## Prompt
The question is the user turn; the model answers with the clean question and stops at `<|im_end|>`
(`generation_config.json` says so). Format: {prompt_text}. `qrewrite.json` records it for qrewrite itself.

## Use it with plain transformers
{USAGE.format(model_dir=model_dir, messages=messages, max_new_tokens=max_new_tokens)}

Or `python -m qrewrite rewrite --model {model_dir} "..."`, or serve it (`python -m qrewrite serve`, or vLLM's
OpenAI-compatible server with the chat template saved here).

{making}
"""


class Provenance(NamedTuple):
    base: str              # the model training started from
    prompt: PromptSpec
    max_new_tokens: int
    origin: str            # one sentence: how the model was made
    making: str            # the card's last section: the training, or the averaged ingredients


def _provenance(cfg, info: dict) -> Provenance:
    """What the card says about where the model comes from: a trained run (TrainConfig) or an average."""
    if isinstance(cfg, AverageConfig):
        base = info.get("base_model") or ""
        prompt = PromptSpec(info.get("prompt_format", "chat"), info.get("system_prompt"))
        max_new_tokens = info.get("max_new_tokens")
        tuned = [p for p in info.get("average", []) if not p.get("start_model")]
        start = " and that model itself" if len(tuned) < len(info.get("average", [])) else ""
        origin = (f"The weighted average of {len(tuned)} models fine-tuned from "
                  f"`{BASE_MODELS.get(base, base)}`{start} with qrewrite on Disfl-QA (CC BY 4.0, Gupta et al., 2021)")
        making = ("## Made by averaging\nEvery tensor is the weighted mean of the same tensor in (weights sum "
                  f"to 1):\n{describe(info)}\n\nNo training of its own; git commit `{info.get('git_commit')}`. The "
                  "recipe is `config.yaml` of the run directory (`python -m qrewrite average --config ...`).")
    else:
        base = cfg.model
        prompt = PromptSpec.of_config(cfg)
        max_new_tokens = cfg.max_new_tokens
        typo = f" plus {cfg.typo_copies} seeded typo'd copies of each input" if cfg.typo_copies else ""
        origin = (f"Fine-tuned from `{BASE_MODELS.get(base, base)}` ({cfg.method}) with qrewrite on Disfl-QA\n"
                  f"(CC BY 4.0, Gupta et al., 2021){typo}")
        making = f"""## Training
{info.get("steps")} steps at batch {cfg.batch_size} x {cfg.grad_accum}, learning rate {cfg.learning_rate} ({cfg.lr_scheduler}),
max length {cfg.max_length}, seed {cfg.seed}; git commit `{info.get("git_commit")}`, data fingerprint
`{info.get("data_fingerprint")}`. The full config is `config.yaml` of the run directory."""  # noqa: E501
    return Provenance(base, prompt, max_new_tokens, origin, making)


def write_model_card(model_dir: str | Path, cfg, info: dict, new_metrics: dict | None = None) -> Path:
    """Write (or refresh) ``model_dir/README.md``; ``new_metrics`` (data label -> metrics) are kept beside it."""
    model_dir = Path(model_dir)
    saved = model_dir / METRICS_FILE
    metrics = read_json(saved) if saved.is_file() else {}
    if new_metrics:
        metrics.update(new_metrics)
        atomic_write_json(saved, metrics)
    return atomic_write_text(model_dir / CARD, render_card(cfg, info, metrics, repo_relative(model_dir)))


def describe(info: dict) -> str:
    """One line per ingredient, for the model card and the CLI."""
    return "\n".join(f"- {p['weight']:.3g} x `{p['source']}`{_origin(p)}" for p in info.get("average", []))


def _origin(part: dict) -> str:
    if part.get("run"):
        return f" (run {part['run']}, {part['steps']} steps, commit `{part['git_commit']}`)"
    return " (the model they were fine-tuned from)" if part.get("start_model") else ""
