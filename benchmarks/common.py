"""Shared helpers for the benchmark scripts: device, timing, peak memory, machine info, results files.

Results are written as ``<name>.json`` (everything measured, plus provenance) and ``<name>.md`` (a table a
person reads), both atomically, so a killed benchmark never leaves a file that looks complete.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The hub is not reachable from the machines these run on; never wait for it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # no weight-loading bars in the logs

import torch  # noqa: E402

from qrewrite.files import atomic_write_json, atomic_write_text, command_line, git_commit, repo_relative  # noqa: E402,F401
from qrewrite.memory import peak_memory_mb, reset_peak_memory  # noqa: E402,F401 - one way to measure memory

RESULTS_DIR = ROOT / "benchmarks" / "results"


# ---- device, timing --------------------------------------------------------------------------------------

def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_tag() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def sync() -> None:
    """Wait for queued GPU work, so a wall-clock reading covers it (no-op on CPU)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def now() -> float:
    sync()
    return time.perf_counter()


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


# ---- machine & provenance --------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    import importlib.metadata

    info = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": importlib.metadata.version("transformers"),
        "device": device_tag(),
    }
    try:
        import psutil
        info["ram_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_memory_gb=round(p.total_memory / 2**30, 1),
                    gpu_capability=f"{p.major}.{p.minor}", cuda=torch.version.cuda,
                    bf16=torch.cuda.is_bf16_supported())
    return info


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def provenance() -> dict:
    return {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "git_commit": git_commit(),
            "command": command_line()}


def out_dir(arg: str | None, smoke: bool) -> Path:
    """--out, else benchmarks/results for real runs and a fresh temporary directory for smoke runs."""
    if arg:
        return Path(arg)
    if smoke:
        return Path(tempfile.mkdtemp(prefix="qrewrite-bench-smoke-"))
    return RESULTS_DIR


# ---- results files ---------------------------------------------------------------------------------------

def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{max(digits - 1, 1)}f}"
    return str(value)


def fmt_ratio(value) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in row) + " |")
    return "\n".join(lines)


def machine_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"- device: {m['device']}" + (f" ({m['gpu']}, {m['gpu_memory_gb']} GB, CUDA {m['cuda']})"
                                           if m.get("gpu") else ""),
             f"- CPU: {m['cpu']}, {m['cpu_cores_usable']} usable cores, torch threads {m['torch_threads']}"
             + (f", RAM {m['ram_gb']} GB" if "ram_gb" in m else ""),
             f"- software: Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}",
             f"- load average (1/5/15 min) at start {result.get('load_average_start')}, "
             f"at end {result.get('load_average_end')}"]
    if result.get("note"):
        lines.append(f"- note: {result['note']}")
    return "\n".join(lines)


def provenance_markdown(result: dict) -> str:
    p = result["provenance"]
    return "\n".join([f"- command: `{p['command']}`", f"- git commit: `{p['git_commit']}`",
                      f"- date (UTC): {p['date']}"])


def add_output_options(p, name_help: str) -> None:
    """--out / --name / --note, the same for every benchmark."""
    p.add_argument("--out", help="results directory (default benchmarks/results; --smoke: a temp dir)")
    p.add_argument("--name", help=f"results file stem (default {name_help})")
    p.add_argument("--note", default="", help="free text stored with the results (e.g. machine shared)")


def write_results(directory: str | Path, name: str, result: dict, markdown: str) -> tuple[Path, Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    j = atomic_write_json(directory / f"{name}.json", result)
    m = atomic_write_text(directory / f"{name}.md", markdown.rstrip() + "\n")
    return j, m


def default_data(args, split: str) -> Path:
    """--data, else the sample split in --smoke mode, else the prepared Disfl-QA split (``train`` / ``valid``)."""
    if args.data:
        return Path(args.data)
    if args.smoke:
        return ROOT / "dataset" / "sample" / f"{split}.json"
    path = ROOT / "dataset" / f"{split}.json"
    if not path.exists():
        raise SystemExit(f"{path} not found: prepare the data (python -m qrewrite prepare ...) or pass "
                         f"--data dataset/sample/{split}.json")
    return path
