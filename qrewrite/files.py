"""Atomic file writes, JSON/JSONL helpers and run provenance (git commit, fingerprints).

Every metrics, predictions and results file goes through ``atomic_write_*``: the content is written to a
temporary file in the same directory and renamed into place, so an interrupted run never leaves a file
that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

from qrewrite.errors import ConfigError, OutputError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def exclusive(lock_path: str | os.PathLike):
    """Hold an exclusive lock on ``lock_path`` (created), waiting while another process holds it: what it guards
    runs one process at a time (the kernel's ``flock``: released when the holder exits, however it exits).
    Without flock (Windows) nothing is held."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` whole or not at all. A symlink is written through (its target gets the bytes,
    the link stays a link); a directory, FIFO or device at ``path`` is refused (see :func:`output_target`)."""
    path = output_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~umask())  # mkstemp creates 0600; give the file ordinary permissions
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8-sig") as f:
        return json.load(f)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8-sig") as f:
        return [json.loads(line) for line in f if line.strip()]


def file_sha256(*paths: str | os.PathLike) -> str:
    """sha256 over the bytes of the given files (in order), as hex."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def file_fingerprint(*paths: str | os.PathLike) -> str:
    """The first 16 hex digits of :func:`file_sha256`: the data and model fingerprints of runs and outputs."""
    return file_sha256(*paths)[:16]


def git_commit(root: str | os.PathLike = PROJECT_ROOT) -> str:
    """The current commit, with '+dirty' when the code has uncommitted changes; 'unknown' outside git.

    Changes under ``outputs/`` do not count: they are what runs write (a reproduce script re-logs ``prepare``
    before it trains), not the code that ran."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)outputs"], cwd=root, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def command_line() -> str:
    """The command as the user typed it (``python -m qrewrite ...`` rather than the path of __main__.py)."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(os.path.join("qrewrite", "__main__.py")):
        argv[0:1] = ["-m", "qrewrite"]
    elif argv and Path(argv[0]).is_absolute() and Path(argv[0]).is_relative_to(PROJECT_ROOT):
        argv[0] = str(Path(argv[0]).relative_to(PROJECT_ROOT))
    return " ".join(["python", *(shlex.quote(a) for a in argv)])


def project_path(path: str | os.PathLike) -> Path:
    """``path`` as given when it exists, else relative to the project root when it exists there (so a relative
    path in a config means the same from any working directory), else as given."""
    path = Path(path)
    if not path.exists() and (PROJECT_ROOT / path).exists():
        return PROJECT_ROOT / path
    return path


def repo_relative(path: str | os.PathLike) -> str:
    """``path`` relative to the repository when it lies inside it (provenance that does not name the machine),
    else as given (a hub id, or a path elsewhere)."""
    text = str(path)
    candidate = Path(text).expanduser()
    if candidate.is_absolute() and candidate.resolve().is_relative_to(PROJECT_ROOT):
        return str(candidate.resolve().relative_to(PROJECT_ROOT))
    return text


def safe_join(base: str | os.PathLike, name: str, what: str = "run name") -> Path:
    """``base/name``, refusing names that would escape ``base`` (``..``, absolute paths, empty)."""
    if not name or name.strip() != name or Path(name).is_absolute():
        raise ConfigError(f"invalid {what} {name!r}: use a plain relative name such as 'smollm2-full'")
    # judged on the name's own components, not by resolving it: a run directory may be a symlink to another disk
    normal = os.path.normpath(name)
    if normal == "." or normal == ".." or normal.startswith(".." + os.sep):
        raise ConfigError(f"invalid {what} {name!r}: it would write outside {base}")
    return Path(base) / name


def check_writable(directory: str | os.PathLike, need_bytes: int = 0) -> None:
    """Fail early, before loading a model, if ``directory`` cannot be written or lacks ``need_bytes`` free."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".write-test-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(f"cannot write to output directory {directory}: {e.strerror or e}") from e
    if need_bytes:
        free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
        if free < need_bytes:
            raise OutputError(f"not enough disk space in {directory}: {free / 2**30:.2f} GiB free, "
                          f"about {need_bytes / 2**30:.2f} GiB needed for a checkpoint")


@contextlib.contextmanager
def signals_deferred():
    """Ctrl-C and SIGTERM wait until the block is done (a few file writes that belong together); they are acted
    on as it ends. Outside the main thread, or without ``pthread_sigmask``, nothing changes."""
    import signal
    import threading
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    blocked = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def partial_path(output: str | os.PathLike) -> Path:
    """Where a file written line by line (``rewrite --input``) grows until it is complete and renamed."""
    output = Path(output)
    return output.with_name(output.name + ".partial")


def _same_file(a: Path, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)  # hard links too
    except OSError:  # one of them does not exist (yet)
        return Path(os.path.realpath(a)) == Path(os.path.realpath(b))


def output_target(path: str | os.PathLike, *, inputs=(), what: str = "output") -> Path:
    """Where writing ``path`` lands, refused before any work when that would lose what the user has: an input
    file of the same command (``inputs``), or something that is not a regular file (a directory, a FIFO, a
    device, a socket). A symlink is written through: the path returned is its target, so the link stays a link
    and the file it points to gets the new content."""
    target = Path(os.path.realpath(Path(path).expanduser()))
    shown = f"{what} {path}" + (f" (a link to {target})" if Path(path).is_symlink() else "")
    if target.is_dir():
        raise OutputError(f"{shown} is a directory; name a file to write")
    if target.exists() and not target.is_file():
        raise OutputError(f"{shown} is not a regular file (a FIFO, device or socket): it cannot be replaced by "
                          "a finished file; name a regular file to write")
    for source in inputs:
        if source is not None and Path(source).exists() and _same_file(target, source):
            raise OutputError(f"{shown} is the input file {source}: writing it would destroy the input; "
                              "choose another output path")
    return target


def output_dir_targets(directory: str | os.PathLike, names, *, inputs=(), what: str = "--out",
                       replaces_whole: bool = False) -> dict[str, Path]:
    """:func:`output_target` for each file ``names`` a command writes into ``directory`` (``{name: target}``),
    refusing a ``directory`` that exists and is not one. With ``replaces_whole`` (the command replaces the whole
    directory) an input inside it, or the directory itself being an input or inside one, is refused too."""
    directory = Path(directory).expanduser()
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"{what} {directory} exists and is not a directory; name a directory to write")
    if replaces_whole:
        here = Path(os.path.realpath(directory))
        for source in inputs:
            there = Path(os.path.realpath(source))
            if here == there or here.is_relative_to(there) or there.is_relative_to(here):
                raise OutputError(f"{what} {directory} overlaps the input {source}: writing it would destroy the "
                                  "input; choose a directory outside it")
    return {name: output_target(directory / name, inputs=inputs, what=what)
            for name in names}


# ---- is a saved file whole? (cheap checks: sizes and headers, never the tensors) ------------------------------

def file_problem(path: str | os.PathLike) -> str | None:
    """Why the file at ``path`` is damaged (missing, truncated, unparseable), or None when it looks whole:
    ``*.safetensors`` against the sizes its header promises, torch's ``*.pt`` / ``*.pth`` / ``*.bin`` as the zip
    archives they are, ``*.json`` by parsing it."""
    path = Path(path)
    if not path.is_file():
        return f"{path.name} is missing"
    try:
        if path.suffix == ".safetensors":
            return _safetensors_problem(path)
        if path.suffix in (".pt", ".pth", ".bin"):
            import zipfile
            if not zipfile.is_zipfile(path):
                return f"{path.name} is truncated or not a torch file"
            with zipfile.ZipFile(path) as z:
                z.infolist()
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as e:
        return f"{path.name} is unreadable: {e}"
    except Exception as e:  # noqa: BLE001 - zipfile's BadZipFile and kin: the file is damaged either way
        return f"{path.name} is damaged: {type(e).__name__}: {e}"
    return None


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{path.name} is truncated: {size} bytes"
        n = int.from_bytes(head, "little")
        if n > size - 8:
            return f"{path.name} is truncated: its header alone needs {n} bytes, the file has {size}"
        header = json.loads(f.read(n))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if size < 8 + n + end:
        return f"{path.name} is truncated: {size} of {8 + n + end} bytes"
    return None
