"""The CTranslate2 engine (``--engine ctranslate2``): a run's ``model/`` converted once to int8 (or bf16 where the
CPU has it) and rewritten with CTranslate2's CPU kernels, with the same prompt token ids as the transformers path.

The conversion is cached beside the model it was made from: in the run directory (``<run>/ctranslate2-int8/``)
for a run, else under ``weights/ctranslate2/``. A stamp in it records the fingerprint of the weights it was made
from; when the weights change the cache is rebuilt. :func:`export_ctranslate2` writes the same directory, plus the
tokenizer and the prompt settings (``qrewrite.json``, with the chat format's system turn spelled out), for people
who deploy it without qrewrite (``qrewrite export``).

CTranslate2 decodes greedily or with beam search and stops at the end-of-turn token; it has no hook for adjusting
the logits from Python, so the copy bonus is refused with an error naming ``--engine transformers``.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

from qrewrite.errors import ConfigError, ModelLoadError
from qrewrite.files import PROJECT_ROOT, atomic_write_json, exclusive, file_fingerprint, output_dir_targets, read_json
from qrewrite.infer.base import Rewriter
from qrewrite.infer.decoding import GENERATION_BATCH_SIZE, GREEDY, Decoding
from qrewrite.infer.generate import SORT_WINDOW_BATCHES, prompt_ids
from qrewrite.models import check_model_dir, is_adapter_dir
from qrewrite.prompt import SYSTEM_PROMPT, PromptSpec, end_of_turn_ids
from qrewrite.run import INFERENCE_FILE, Run

STAMP = "qrewrite_ctranslate2.json"
CACHE_ROOT = PROJECT_ROOT / "weights" / "ctranslate2"  # conversions of model directories that are not runs
# what a deployment needs beside the converted weights: the tokenizer, the chat template, the prompt settings
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "generation_config.json", INFERENCE_FILE)


def _ctranslate2():
    try:
        import ctranslate2
    except ImportError:
        raise ConfigError("--engine ctranslate2 needs the ctranslate2 package: pip install ctranslate2") from None
    return ctranslate2


def default_quantization() -> str:
    """int8 weights; with bf16 activations where the CPU computes bf16 natively (avx512_bf16 / AMX)."""
    return "int8_bfloat16" if "bfloat16" in _ctranslate2().get_supported_compute_types("cpu") else "int8"


def weights_fingerprint(model_dir: Path) -> str:
    """The fingerprint of a model directory's weights and config (what a conversion depends on)."""
    files = sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin"))
    if not files:
        raise ModelLoadError(f"{model_dir}: no weights (*.safetensors) to convert for --engine ctranslate2")
    return file_fingerprint(model_dir / "config.json", *files)


def check_convertible(model_dir: Path) -> None:
    if is_adapter_dir(model_dir) and not (model_dir / "config.json").is_file():
        raise ConfigError(f"{model_dir} is a LoRA adapter; --engine ctranslate2 converts full checkpoints: use the "
                          "run's merged model/ (merge_after: true) or merge the adapter first")
    check_model_dir(model_dir)  # no config.json, no weights, no tokenizer: one line naming what is missing


def cache_dir_for(model_dir: Path, quantization: str) -> Path:
    run = Run.owning(model_dir)
    if run is not None:
        return run.path / f"ctranslate2-{quantization}"
    return CACHE_ROOT / f"{model_dir.resolve().name}-{quantization}"


def _convert(model_dir: Path, out_dir: Path, quantization: str, fingerprint: str) -> Path:
    converter = _ctranslate2().converters.TransformersConverter(str(model_dir), low_cpu_mem_usage=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        converter.convert(str(tmp / "model"), quantization=quantization, force=True)
        for name in TOKENIZER_FILES:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, tmp / "model" / name)
        atomic_write_json(tmp / "model" / STAMP, {"weights_fingerprint": fingerprint, "quantization": quantization,
                                                  "ctranslate2": _ctranslate2().__version__,
                                                  "source": str(model_dir)})
        if out_dir.exists():
            shutil.rmtree(out_dir)
        (tmp / "model").rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def converted_model(model_dir: str | Path, quantization: str | None = None) -> Path:
    """The CTranslate2 conversion of ``model_dir`` (converted now when missing or made from other weights)."""
    model_dir = Path(model_dir)
    check_convertible(model_dir)
    quantization = quantization or default_quantization()
    out = cache_dir_for(model_dir, quantization)
    fingerprint = weights_fingerprint(model_dir)
    stamp = out / STAMP
    # two servers started on one model (bench_serve starts several) convert it once: the second waits, then reuses
    with exclusive(out.parent / f".{out.name}.lock"):
        if stamp.is_file() and read_json(stamp).get("weights_fingerprint") == fingerprint:
            return out
        return _convert(model_dir, out, quantization, fingerprint)


def export_ctranslate2(model_arg: str | Path, out_dir: str | Path, quantization: str | None = None) -> Path:
    """Write the CTranslate2 conversion of a run (or model directory) to ``out_dir``, with its tokenizer and
    prompt settings (``qrewrite.json``), for deployment without qrewrite."""
    model_dir = Run.model_dir_of(model_arg)
    if not model_dir.is_dir():
        raise ModelLoadError(f"{model_arg}: no such run or model directory to export")
    check_convertible(model_dir)
    out_dir = Path(out_dir)
    output_dir_targets(out_dir, (), inputs=(model_dir,), what="OUT", replaces_whole=True)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / STAMP).is_file():
        raise ConfigError(f"{out_dir} exists and is not an export of qrewrite: choose an empty or new directory")
    _convert(model_dir, out_dir, quantization or default_quantization(), weights_fingerprint(model_dir))
    settings = out_dir / INFERENCE_FILE
    if settings.is_file():  # spelled out for readers without qrewrite: the system turn the chat format sends
        values = read_json(settings)
        if values.get("prompt_format") == "chat" and not values.get("system_prompt"):
            atomic_write_json(settings, {**values, "system_prompt": SYSTEM_PROMPT})
    return out_dir


class CT2Rewriter(Rewriter):
    """A converted model rewriting with CTranslate2: batched (it sorts a batch by length itself), greedy or beams."""

    engine = "ctranslate2"

    def __init__(self, generator, tokenizer, *, name: str, source: str, method: str, prompt: PromptSpec,
                 max_new_tokens: int = 64, batch_size: int = GENERATION_BATCH_SIZE, decoding: Decoding = GREEDY,
                 quantization: str = "int8", replicas: int = 1):
        if decoding.adjusts_logits:
            raise ConfigError(f"{' / '.join(Decoding.bonus_flags())}: CTranslate2 cannot adjust the logits from "
                              "Python; decode with --engine transformers for a bonus")
        self.generator, self.tokenizer = generator, tokenizer
        self.name, self.source, self.method, self.prompt = name, source, method, prompt
        self.max_new_tokens, self.batch_size, self.decoding = max_new_tokens, batch_size, decoding
        self.quantization, self.replicas = quantization, replicas
        self.end_ids = end_of_turn_ids(tokenizer)

    def prompt_tokens(self, questions: list[str]) -> list[list[str]]:
        """The prompts as the token strings CTranslate2 takes: the transformers path's ids, one for one."""
        return [self.tokenizer.convert_ids_to_tokens(ids) for ids in prompt_ids(self.tokenizer, questions, self.prompt)]

    def rewrite_batch(self, questions: list[str]) -> list[str]:
        if not questions:
            return []
        # CTranslate2 splits a call into sub-batches of max_batch_size and decodes them on its replicas at once:
        # a batch smaller than replicas x batch_size is split evenly so that every replica gets a part
        per_replica = min(self.batch_size, math.ceil(len(questions) / self.replicas))
        results = self.generator.generate_batch(
            self.prompt_tokens(questions), max_batch_size=per_replica, beam_size=self.decoding.num_beams,
            max_length=self.max_new_tokens, end_token=self.end_ids, include_prompt_in_result=False,
            sampling_topk=1)
        return [self.tokenizer.decode(r.sequences_ids[0], skip_special_tokens=True).strip() for r in results]

    def stream(self, questions, progress=None):
        window = self.batch_size * SORT_WINDOW_BATCHES
        for start in range(0, len(questions), window):
            chunk = questions[start:start + window]
            for i, text in enumerate(self.rewrite_batch(chunk)):
                yield start + i, text
            if progress:
                progress(len(chunk))


def load_ct2_rewriter(model_dir: Path, tokenizer, *, quantization: str | None = None, threads: int = 0,
                      replicas: int = 1, **kwargs) -> CT2Rewriter:
    """A :class:`CT2Rewriter` for ``model_dir`` (converted once, see :func:`converted_model`); ``kwargs`` as the
    rewriter takes them. ``threads``: CPU threads per batch (0: CTranslate2's default, one per core, or the cores
    shared out between the replicas); ``replicas``: batches decoded at once (CTranslate2's inter_threads; on CPU
    they share one copy of the weights)."""
    if replicas < 1:
        raise ConfigError(f"--replicas must be >= 1, got {replicas}")
    quantization = quantization or default_quantization()
    supported = _ctranslate2().get_supported_compute_types("cpu")
    if quantization not in supported:
        raise ConfigError(f"--quantization {quantization}: this CPU's CTranslate2 computes only "
                          f"{', '.join(sorted(supported))}; choose one of them")
    path = converted_model(model_dir, quantization)
    if not threads and replicas > 1:
        threads = max(1, (os.cpu_count() or 1) // replicas)
    generator = _ctranslate2().Generator(str(path), device="cpu", compute_type=quantization, intra_threads=threads,
                                         inter_threads=replicas)
    return CT2Rewriter(generator, tokenizer, quantization=quantization, replicas=replicas, **kwargs)
