"""Weight averaging ("model soup", Wortsman et al., 2022): one model whose every tensor is the weighted mean of
the same tensor in several models fine-tuned from the same start, with no training (seconds on a CPU).

A recipe (``configs/average/*.yaml``) names the run and its ingredients::

    run_name: smollm2-full-typo-soup        # weights/<run_name>/
    models:                                 # run or model directory -> weight (normalised to sum to 1)
      weights/smollm2-full-typo-cycle2: 1
      weights/smollm2-full-typo-synth-cycle2: 1

``start_model_weight: 0.2`` adds the model the ingredients were fine-tuned from with that share (WiSE-FT: a
fine-tune moved back toward its start, which can keep more of what the start knew on inputs unlike the training
data); the ingredients share the rest.

The run directory then holds what a trained run holds for inference (``model/`` with the ingredients' tokenizer,
chat template, generation config and ``qrewrite.json``; ``config.yaml``; ``run.json`` naming every ingredient's
run, commit and data fingerprint), so ``evaluate``, ``rewrite`` and ``serve`` take it like any run. The
ingredients must share architecture, tokenizer and prompt; anything else is an error naming the directory.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path

from qrewrite.card import write_model_card
from qrewrite.config import AverageConfig, TrainConfig
from qrewrite.errors import ConfigError, ModelLoadError, RunStateError
from qrewrite.files import (
    check_writable,
    command_line,
    file_fingerprint,
    git_commit,
    project_path,
    read_json,
    repo_relative,
    safe_join,
    umask,
)
from qrewrite.memory import peak_memory_mb, reset_peak_memory
from qrewrite.models import load_tokenizer, resolve_model_source
from qrewrite.prompt import PromptSpec
from qrewrite.run import INFERENCE_FILE, LOCK_FILE, Run, inference_settings
from qrewrite.train.inference_files import save_inference_files

WEIGHTS_INDEX = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
# What must agree across ingredients besides the tensors: the tokenizer and the prompt the model was trained with.
SAME_FILES = ("tokenizer.json", "chat_template.jinja")
# config.json keys that are not the architecture: where it was loaded from, how it was saved, and use_cache, which
# checkpoints saved mid-training with gradient checkpointing turn off
CONFIG_KEYS_IGNORED = ("_name_or_path", "transformers_version", "dtype", "torch_dtype", "use_cache")
METHOD = "average"
# The first ingredient's files that are not copied: its weights (averaged instead), its own card and metrics,
# its training arguments (a pickle of how that one model was trained) and qrewrite.json (written anew, naming the
# model training started from).
NOT_COPIED = ("README.md", "training_args.bin", INFERENCE_FILE)


# ---- the ingredients -------------------------------------------------------------------------------------------

def ingredient_model_dir(source: str) -> tuple[Path, Run | None]:
    """The model directory ``source`` stands for (a complete run's ``model/``, or a model directory), and its run."""
    path = project_path(Path(source).expanduser())
    run = Run.owning(path)
    model_dir = Run.model_dir_of(path)
    if not model_dir.is_dir():
        raise ModelLoadError(f"average: {source} is not a directory (give a run directory weights/<run> or a "
                             "model directory)")
    if (model_dir / "adapter_config.json").exists() and not _weight_files(model_dir, required=False):
        raise ModelLoadError(f"average: {source} holds a LoRA adapter only; average the run's merged model/")
    _weight_files(model_dir)
    return model_dir, run


def _weight_files(model_dir: Path, required: bool = True) -> list[str]:
    if (model_dir / WEIGHTS_INDEX).is_file():
        try:
            return sorted(set(read_json(model_dir / WEIGHTS_INDEX)["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError) as e:
            raise ModelLoadError(f"average: cannot read the weight map of {model_dir / WEIGHTS_INDEX} ({e!r}); "
                                 "re-save the model") from None
    if (model_dir / SINGLE_FILE).is_file():
        return [SINGLE_FILE]
    if required:
        raise ModelLoadError(f"average: {model_dir} has no {SINGLE_FILE} (or {WEIGHTS_INDEX}): only safetensors "
                             "model directories can be averaged")
    return []


def _architecture(model_dir: Path) -> dict:
    try:
        config = read_json(model_dir / "config.json")
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"average: cannot read {model_dir / 'config.json'}: {e}") from None
    return {k: v for k, v in config.items() if k not in CONFIG_KEYS_IGNORED}


def _prompt(model_dir: Path) -> dict:
    """The prompt and generation budget the model rewrites with (its qrewrite.json, else its run's config)."""
    try:
        return inference_settings(model_dir)
    except (OSError, ValueError, AttributeError) as e:
        raise ModelLoadError(f"average: cannot read {model_dir / INFERENCE_FILE}: {e}") from None


def _is_final_model(model_dir: Path) -> bool:
    """A finished model directory (training wrote qrewrite.json and the template of its prompt), not a
    ``checkpoint-N`` the trainer saved on the way."""
    return (model_dir / INFERENCE_FILE).is_file()


def check_compatible(model_dirs: list[Path]) -> None:
    """Same architecture, weight files, tokenizer and prompt as the first ingredient, or an error naming what
    differs."""
    first = model_dirs[0]
    for other in model_dirs[1:]:
        for what, read in (("architecture (config.json)", _architecture), ("weight files", _weight_files),
                           (f"prompt ({INFERENCE_FILE})", _prompt)):
            theirs, ours = read(other), read(first)
            if theirs != ours:
                keys = sorted(k for k in {*ours, *theirs} if ours.get(k) != theirs.get(k)) \
                    if isinstance(ours, dict) and isinstance(theirs, dict) else []
                raise ModelLoadError(f"average: {other} has another {what} than {first}"
                                     + (f" ({', '.join(keys)} differ)" if keys else "")
                                     + "; only models fine-tuned from the same start with the same prompt can be "
                                       "averaged")
        for name in SAME_FILES:
            if name == "chat_template.jinja" and not (_is_final_model(first) and _is_final_model(other)):
                continue  # a checkpoint keeps the base model's template; the prompt itself was compared above
            a, b = first / name, other / name
            if a.is_file() != b.is_file() or (a.is_file() and file_fingerprint(a) != file_fingerprint(b)):
                raise ModelLoadError(f"average: {other / name} differs from {a}: the models must share a tokenizer")


def start_model(ingredients: list[tuple[Path, Run | None]]) -> tuple[str, Path]:
    """The model every ingredient was fine-tuned from, as named in training (``smollm2``, a directory, a hub id
    in the local cache), and its directory; an error if they name none or several."""
    bases = sorted({str(ingredient_base_model(d, run)) for d, run in ingredients})
    if len(bases) != 1 or bases == ["None"]:
        raise ConfigError("average: start_model_weight needs ingredients fine-tuned from one model; they name "
                          f"{', '.join(bases)}")
    try:
        source = resolve_model_source(bases[0])
    except ModelLoadError as e:
        raise ModelLoadError(f"average: the start model {bases[0]!r} cannot be loaded: {e}") from None
    path = Path(source)
    if not path.is_dir():  # a hub id found in the local cache
        from huggingface_hub import snapshot_download
        path = Path(snapshot_download(source))
    first = ingredients[0][0]
    if _architecture(path) != _architecture(first) or _weight_files(path) != _weight_files(first):
        raise ModelLoadError(f"average: the start model {bases[0]} ({path}) has another architecture or other "
                             f"weight files than {first}")
    return bases[0], path


def root_base_model(model_dir: Path) -> str | None:
    """Follow ``qrewrite.json``'s base_model through fine-tuned directories to the model training started from."""
    base, seen = _read_base(model_dir), set()
    while base and base not in seen:
        seen.add(base)
        parent = _read_base(project_path(base))
        if not parent:
            return base
        base = parent
    return base


def ingredient_base_model(model_dir: Path, run: Run | None) -> str | None:
    """The model ``model_dir`` was fine-tuned from: :func:`root_base_model`, or for a ``checkpoint-N`` directory
    (which has no qrewrite.json) its run's model's, or the model its run's record names."""
    base = root_base_model(model_dir)
    if base is None and run is not None:
        base = root_base_model(run.model_dir) if run.model_dir.is_dir() else None
        if base is None and run.exists():
            base = run.info().get("model")
    return base


def ingredient_steps(model_dir: Path, run_info: dict) -> int | None:
    """Optimizer steps behind ``model_dir``: a checkpoint's own (its trainer_state.json), else its run's."""
    state = model_dir / "trainer_state.json"
    if state.is_file():
        try:
            return read_json(state).get("global_step")
        except (OSError, ValueError, AttributeError):
            pass
    return run_info.get("steps")


def _read_base(model_dir: Path) -> str | None:
    saved = Path(model_dir) / INFERENCE_FILE
    try:
        return read_json(saved).get("base_model") if saved.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None  # an unreadable file is reported by check_compatible


# ---- the average -----------------------------------------------------------------------------------------------

def average_tensors(model_dirs: list[Path], weights: list[float], out_dir: Path) -> None:
    """Write the weighted mean of every tensor, file by file (summed in fp32, saved in the tensors' dtype)."""
    from safetensors.torch import save_file

    for name in _weight_files(model_dirs[0]):
        total, dtypes = {}, {}
        for model_dir, weight in zip(model_dirs, weights):
            tensors = _read_tensors(model_dir / name)
            if total and tensors.keys() != total.keys():
                differs = sorted(set(total) ^ set(tensors))[0]
                raise ModelLoadError(f"average: {model_dir / name} and {model_dirs[0] / name} hold different "
                                     f"tensors (e.g. {differs!r})")
            for key, tensor in tensors.items():
                if key not in total:
                    total[key], dtypes[key] = weight * tensor.float(), tensor.dtype
                elif (total[key].shape, dtypes[key]) != (tensor.shape, tensor.dtype):
                    raise ModelLoadError(f"average: {model_dir / name}: tensor {key!r} is {tensor.dtype} of shape "
                                         f"{tuple(tensor.shape)}, {dtypes[key]} of {tuple(total[key].shape)} in "
                                         f"{model_dirs[0]}")
                else:
                    total[key] += weight * tensor.float()
        save_file({k: v.to(dtypes[k]).contiguous() for k, v in total.items()}, out_dir / name,
                  metadata={"format": "pt"})


def _read_tensors(path: Path) -> dict:
    from safetensors.torch import load_file
    try:
        return load_file(path)
    except Exception as e:  # safetensors raises its own SafetensorError (or OSError) for a damaged file
        raise ModelLoadError(f"average: cannot read {path}: {e}") from None


def average_models(cfg: AverageConfig) -> Path:
    """Build ``<output_root>/<run_name>/`` from the recipe; returns the run directory. Like training, one process
    at a time writes a run directory (:meth:`Run.lock`)."""
    run = Run(safe_join(cfg.output_root, cfg.run_name))
    check_writable(run.path if run.path.exists() else run.path.parent)
    with run.lock():
        return _average(cfg, run)


def _average(cfg: AverageConfig, run: Run) -> Path:
    _clear_unfinished_average(run)
    ingredients = [ingredient_model_dir(source) for source in cfg.models]
    model_dirs = [model_dir for model_dir, _ in ingredients]
    if len({d.resolve() for d in model_dirs}) < len(model_dirs):
        raise ConfigError(f"average: models name the same directory twice: {', '.join(cfg.models)}")
    check_compatible(model_dirs)
    started_from = start_model(ingredients) if cfg.start_model_weight else None
    check_writable(run.path.parent)

    reset_peak_memory()
    start = time.perf_counter()
    run.path.mkdir(parents=True, exist_ok=True)
    info = _initial_info(cfg, ingredients, started_from)
    run.write_config(cfg)
    run.write_info(info)
    # Built beside model/ and renamed into place, card included; "complete" is written last: an interrupted
    # average leaves a run that is not complete, which the next `average` of the same recipe replaces.
    tmp = Path(tempfile.mkdtemp(dir=run.path, prefix=".model-"))
    try:
        # the start model last: the tokenizer and configs come from a fine-tuned ingredient
        _fill_model_dir(tmp, model_dirs + ([started_from[1]] if started_from else []),
                        cfg.weights() + ([cfg.start_model_weight] if started_from else []), info)
        tmp.rename(run.model_dir)
        write_model_card(run.model_dir, cfg, info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        run.write_info({**info, "status": "interrupted"})
        raise
    info.update(status="complete", train_time_s=round(time.perf_counter() - start, 1),
                peak_memory_mb=round(peak_memory_mb(), 1))
    run.write_info(info)
    return run.path


def _clear_unfinished_average(run: Run) -> None:
    """Remove what an interrupted average of this run left; refuse any other run already there."""
    if not run.path.exists() or not (run.exists() or run.holds_run()):
        return
    try:
        info = run.info()
    except (OSError, ValueError):
        info = {}
    if info.get("method") == METHOD and info.get("status") != "complete":
        for item in run.path.iterdir():
            if item.name != LOCK_FILE:  # held by this process
                shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
        return
    raise RunStateError(f"{run.path} already holds a run; choose another run_name or delete the directory")


def _fill_model_dir(out_dir: Path, model_dirs: list[Path], weights: list[float], info: dict) -> None:
    """The averaged weights, the tokenizer and configs of the first ingredient that is a finished model (else of
    the first), and the inference files training writes (qrewrite.json naming the root model, the prompt's chat
    template, end-of-turn stops): a checkpoint's own are the base model's."""
    files_from = next((d for d in model_dirs if _is_final_model(d)), model_dirs[0])
    for item in files_from.iterdir():
        if item.is_file() and item.suffix != ".safetensors" and item.name not in NOT_COPIED \
                and not item.name.startswith("qrewrite_"):
            shutil.copy2(item, out_dir / item.name)
    prompt = PromptSpec(info["prompt_format"], info["system_prompt"])
    save_inference_files(out_dir, load_tokenizer(str(out_dir)), prompt, max_new_tokens=info["max_new_tokens"],
                         base_model=info["base_model"])
    average_tensors(model_dirs, weights, out_dir)
    for path in (out_dir, *out_dir.iterdir()):  # mkdtemp makes a private directory; give it the usual permissions
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask())


def _ingredient_name(part: dict, model_dir: Path) -> str:
    """The run's name, with the checkpoint for a ``checkpoint-N`` directory; the source for a plain model dir."""
    if not part["run"]:
        return part["source"]
    return f"{part['run']}/{model_dir.name}" if model_dir.name.startswith("checkpoint-") else part["run"]


def _initial_info(cfg: AverageConfig, ingredients: list[tuple[Path, Run | None]],
                  start: tuple[str, Path] | None = None) -> dict:
    parts = []
    for (model_dir, run), source, weight in zip(ingredients, cfg.models, cfg.weights()):
        ran = run.info() if run is not None and run.exists() else {}
        parts.append({"source": repo_relative(source), "model_dir": repo_relative(model_dir),
                      "weight": round(weight, 6), "run": ran.get("run_name"), "git_commit": ran.get("git_commit"),
                      "data_fingerprint": ran.get("data_fingerprint"), "steps": ingredient_steps(model_dir, ran)})
    fingerprints = {p["data_fingerprint"] for p in parts}
    names = [_ingredient_name(part, model_dir) for part, (model_dir, _) in zip(parts, ingredients)]
    if start:
        parts.append({"source": start[0], "model_dir": repo_relative(start[1]),
                      "weight": round(cfg.start_model_weight, 6), "run": None, "git_commit": None,
                      "data_fingerprint": None, "steps": 0, "start_model": True})
        names.append(f"{start[0]} (the start, {cfg.start_model_weight:g})")
    settings = _prompt(ingredients[0][0])
    return {"status": "running", "run_name": cfg.run_name, "method": METHOD,
            "model": "average of " + " + ".join(names), "model_source": repo_relative(ingredients[0][0]),
            "base_model": ingredient_base_model(*ingredients[0]), "prompt_format": settings["prompt"].format,
            "system_prompt": settings["prompt"].system_prompt,
            "max_new_tokens": settings["max_new_tokens"] or TrainConfig().max_new_tokens, "average": parts,
            "git_commit": git_commit(), "command": command_line(),
            "data_fingerprint": fingerprints.pop() if len(fingerprints) == 1 else None, "steps": None,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


