"""The errors a user can fix. The CLI prints any :class:`QrewriteError` as one ``error: ...`` line and exits
with status 2; everything else is a bug and keeps its traceback.

Each message names the file, record, field, option or directory at fault and says what to do instead.
"""


class QrewriteError(Exception):
    """Base of every error caused by what the user gave (a file, an option, a model path, a run directory)."""


class DataError(QrewriteError, ValueError):
    """A data file or a data option that cannot be used (names the file, record and field, or the option)."""


class ConfigError(QrewriteError, ValueError):
    """A config file or override that cannot be used; the message says which key and why."""


class ModelLoadError(QrewriteError, RuntimeError):
    """A model source that cannot be loaded; the message says what to use instead."""


class TemplateError(QrewriteError, ValueError):
    """A tokenizer whose chat template cannot render the prompt format asked for."""


class RunStateError(QrewriteError, RuntimeError):
    """A run directory (or a partial output) in the wrong state for the command: incomplete, already holding a
    run, nothing to resume, or left over from another input."""


class OutputError(QrewriteError, OSError):
    """An output directory that cannot be written, or lacks the disk space a checkpoint needs."""


class TrainingError(QrewriteError, RuntimeError):
    """A training that went wrong on its own (a loss that became NaN or infinite): the run is marked failed."""


class Interrupted(KeyboardInterrupt):
    """Stopped by Ctrl-C (exit status 130) or SIGTERM (143) after keeping what could be kept; the message says
    what was kept and how to continue. The CLI prints it as one line."""

    def __init__(self, message: str = "", signal_name: str = "SIGINT"):
        super().__init__(message)
        self.signal_name = signal_name
        self.exit_code = 143 if signal_name == "SIGTERM" else 130

    @classmethod
    def like(cls, e: BaseException, message: str) -> "Interrupted":
        """An Interrupted with ``message``, for the same signal as ``e``."""
        return cls(message, getattr(e, "signal_name", "SIGINT"))
