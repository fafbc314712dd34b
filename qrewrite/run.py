"""The run directory: the one place that knows its layout.

``weights/<run>/`` holds:
  config.yaml          the resolved config (every field, after file + command-line overrides)
  run.json             status (running / interrupted / failed / complete), git commit, data fingerprint, command, steps,
                       train time, peak memory, truncated-example count, and every resume that changed the config
  checkpoint-N/        Trainer checkpoints (optimizer, scheduler, RNG state) for --resume
  model/               final weights for inference: the full model, or for LoRA/QLoRA the merged model
  adapter/             LoRA/QLoRA only: the adapter alone (load with peft, base model from its config)
  trainer_log.json     loss / eval history; runs/ holds the TensorBoard logs
  run.lock             held (flock) by the process training into the directory, and names its pid: one run per
                       directory; the kernel drops the lock when the process dies, so a killed run's is taken over
  damaged-checkpoint-N/  a checkpoint --resume found damaged and set aside (kept, never read again)

``model/`` and ``adapter/`` also get ``qrewrite.json``: the prompt the model was trained with (format and system
prompt) and its generation budget, so a model directory copied anywhere rewrites exactly as it did in place.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from qrewrite.config import load_average_config, load_config, save_config
from qrewrite.errors import OutputError, RunStateError
from qrewrite.files import atomic_write_json, file_problem, read_json, safe_join
from qrewrite.prompt import PromptSpec

INFERENCE_FILE = "qrewrite.json"
LOCK_FILE = "run.lock"
DAMAGED_PREFIX = "damaged-"


class Run:
    """A run directory, existing or about to be created. Reads and writes go through here."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # ---- where things are ------------------------------------------------------------------------------
    name = property(lambda self: self.path.name)
    config_file = property(lambda self: self.path / "config.yaml")
    info_file = property(lambda self: self.path / "run.json")
    model_dir = property(lambda self: self.path / "model")
    adapter_dir = property(lambda self: self.path / "adapter")
    log_file = property(lambda self: self.path / "trainer_log.json")

    # ---- finding a run ---------------------------------------------------------------------------------
    @classmethod
    def for_config(cls, cfg) -> "Run":
        return cls(safe_join(cfg.output_root, cfg.resolved_run_name()))

    @classmethod
    def owning(cls, model_arg: str | Path) -> "Run | None":
        """The run that ``model_arg`` is, or whose ``model/`` / ``adapter/`` it is; None otherwise."""
        path = Path(model_arg).expanduser()
        for candidate in (path, path.parent):
            if (candidate / "run.json").is_file():
                return cls(candidate)
        return None

    # ---- state -----------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.info_file.is_file()

    def info(self) -> dict:
        return read_json(self.info_file)

    @property
    def status(self) -> str | None:
        """running / interrupted / complete, or None when there is no readable run.json."""
        try:
            return self.info().get("status")
        except (OSError, ValueError, AttributeError):
            return None

    def is_complete(self) -> bool:
        return self.status == "complete"

    def is_average(self) -> bool:
        """Made by ``qrewrite average`` (no training; config.yaml is the average recipe)."""
        return self.status is not None and self.info().get("method") == "average"

    def config(self):
        """The saved config: a TrainConfig, or an AverageConfig for a run built by ``qrewrite average``."""
        if self.is_average():
            return load_average_config(self.config_file)
        return load_config(self.config_file)

    def last_checkpoint(self) -> str | None:
        if not self.path.is_dir():
            return None
        from transformers.trainer_utils import get_last_checkpoint
        return get_last_checkpoint(str(self.path))

    def checkpoints(self) -> list[Path]:
        """The ``checkpoint-N`` directories, newest (highest N) first."""
        if not self.path.is_dir():
            return []
        found = [p for p in self.path.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()]
        return sorted(found, key=lambda p: int(p.name[11:]), reverse=True)

    def intact_checkpoint(self) -> str | None:
        """The newest checkpoint whose files are whole, for --resume. Damaged newer ones are moved aside to
        ``damaged-checkpoint-N`` (so the Trainer neither resumes from nor rotates them; nothing is deleted) with
        one warning; when there are checkpoints but none is whole, a :class:`RunStateError` naming each one's
        damage, and nothing is moved."""
        damaged = []
        for checkpoint in self.checkpoints():
            problem = checkpoint_problem(checkpoint)
            if problem is None:
                for bad, why in damaged:
                    bad.rename(bad.with_name(DAMAGED_PREFIX + bad.name))
                if damaged:
                    print(f"warning: --resume: {'; '.join(f'{b.name} is damaged ({why})' for b, why in damaged)}: "
                          f"moved aside to {', '.join(DAMAGED_PREFIX + b.name for b, _ in damaged)}; resuming "
                          f"from {checkpoint.name}", file=sys.stderr)
                return str(checkpoint)
            damaged.append((checkpoint, problem))
        if damaged:
            raise RunStateError(f"--resume: no intact checkpoint in {self.path}: "
                                f"{'; '.join(f'{b.name} is damaged ({why})' for b, why in damaged)}. Start again "
                                "under a new --run-name")
        return None

    def holds_run(self) -> bool:
        return self.last_checkpoint() is not None or self.model_dir.exists()

    @classmethod
    def model_dir_of(cls, model_arg: str | Path) -> Path:
        """The model directory ``model_arg`` stands for: a run directory's final ``model/`` (or ``adapter/``),
        anything else as given."""
        path = Path(model_arg).expanduser()
        run = cls.owning(path)
        return run.final_model() if run is not None and path == run.path else path

    def final_model(self) -> Path:
        """``model/`` (or ``adapter/`` when no merged model was saved) of a complete run."""
        if not self.is_complete():
            raise RunStateError(f"run {self.path} is not complete (status: {self.status}); continue it with "
                                "--resume, or point --model at one of its checkpoint-N directories")
        return self.model_dir if self.model_dir.is_dir() else self.adapter_dir

    def trainer_log(self) -> list[dict]:
        return read_json(self.log_file)

    # ---- writing (training only) -----------------------------------------------------------------------
    def write_config(self, cfg) -> Path:
        return save_config(cfg, self.config_file)

    def write_info(self, info: dict) -> Path:
        return atomic_write_json(self.info_file, info)

    def write_trainer_log(self, log: list[dict]) -> Path:
        return atomic_write_json(self.log_file, log)

    @contextmanager
    def lock(self):
        """Hold the run directory for this process (created when missing, removed again when this left nothing
        in it): a second process is refused with the pid of the first. The lock is the kernel's (``flock``), so
        a killed process's lock is free again; the pid it left in ``run.lock`` only says so."""
        try:
            import fcntl
        except ImportError:  # Windows: no flock; one run per directory is up to the user
            yield
            return
        created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            f = open(self.path / LOCK_FILE, "a+", encoding="utf-8")
        except OSError as e:
            raise OutputError(f"cannot write to output directory {self.path}: {e.strerror or e}") from None
        try:
            with f:
                _take(f, fcntl, self.path)
                try:
                    yield
                finally:
                    f.seek(0)
                    f.truncate()  # released cleanly: no pid left behind
                    f.flush()
        finally:
            if created and [p.name for p in self.path.iterdir()] == [LOCK_FILE]:
                (self.path / LOCK_FILE).unlink()
                self.path.rmdir()  # a run that failed before writing anything leaves no directory behind


def _take(f, fcntl, path: Path) -> None:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        raise RunStateError(f"run directory {path} is in use by another training (pid {holder}); wait for it to "
                            "finish or stop it, or choose another --run-name") from None
    f.seek(0)
    left = f.read().strip()
    if left and left != str(os.getpid()):
        print(f"note: {path} was left locked by process {left}, which is no longer running; taking it over",
              file=sys.stderr)
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()


def checkpoint_problem(checkpoint: str | Path) -> str | None:
    """Why a Trainer checkpoint cannot be resumed from (a file missing, truncated or unreadable), else None."""
    checkpoint = Path(checkpoint)
    weights = [p for p in checkpoint.iterdir() if p.name in ("model.safetensors", "adapter_model.safetensors",
                                                             "pytorch_model.bin", "adapter_model.bin")]
    weights += list(checkpoint.glob("model-*-of-*.safetensors"))
    if not weights:
        return "no weights (model.safetensors)"
    files = [checkpoint / "trainer_state.json", *weights, *checkpoint.glob("*.json"), *checkpoint.glob("*.pt"),
             *checkpoint.glob("*.pth")]
    if not any(checkpoint.glob("optimizer*")):
        return "optimizer.pt is missing"
    for path in files:
        problem = file_problem(path)
        if problem:
            return problem
    return None


# ---- what inference needs, saved beside the weights --------------------------------------------------------

def write_inference_config(model_dir: str | Path, prompt: PromptSpec, *, max_new_tokens: int,
                           base_model: str | None = None) -> Path:
    return atomic_write_json(Path(model_dir) / INFERENCE_FILE, {
        "prompt_format": prompt.format, "system_prompt": prompt.system_prompt,
        "max_new_tokens": max_new_tokens, "base_model": base_model})


def inference_settings(model_arg: str | Path) -> dict:
    """``{"prompt": PromptSpec, "max_new_tokens": int | None}`` for rewriting with ``model_arg``.

    Read from the model directory's own ``qrewrite.json`` (so a copied directory behaves as in place), else,
    for runs saved before it existed, from the owning run's config; else the defaults (an untuned model)."""
    model_dir = Run.model_dir_of(model_arg)
    run = Run.owning(model_dir)
    saved = model_dir / INFERENCE_FILE
    if saved.is_file():
        doc = read_json(saved)
        return {"prompt": PromptSpec(doc.get("prompt_format", "chat"), doc.get("system_prompt")),
                "max_new_tokens": doc.get("max_new_tokens")}
    if run is not None and run.config_file.is_file() and not run.is_average():
        cfg = run.config()
        return {"prompt": PromptSpec.of_config(cfg), "max_new_tokens": cfg.max_new_tokens}
    return {"prompt": PromptSpec(), "max_new_tokens": None}
