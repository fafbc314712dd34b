"""Progress in log files: plain lines, never a redrawn bar."""

import io

from qrewrite.progress import LogProgress, progress_bar


def test_log_progress_prints_a_line_per_tenth_and_ends_at_the_total():
    out = io.StringIO()
    with LogProgress(25, "rewriting", "q", file=out) as bar:
        for _ in range(5):
            bar.update(5)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[-1] == "rewriting: 25/25 q (100 %)"
    # a line per update that reaches a new tenth: once, even when it crosses two of them
    assert [line.split()[1] for line in lines] == ["5/25", "10/25", "15/25", "20/25", "25/25"]
    out = io.StringIO()
    with LogProgress(100, "rewriting", "q", file=out) as bar:
        for _ in range(20):
            bar.update(5)
    assert [line.split()[1] for line in out.getvalue().splitlines()] == [f"{10 * k}/100" for k in range(1, 11)]


def test_log_progress_with_nothing_to_do_prints_nothing():
    out = io.StringIO()
    LogProgress(0, "rewriting", "q", file=out).update(0)
    assert out.getvalue() == ""


def test_progress_bar_outside_a_terminal_logs_lines(capsys):
    import IPython  # noqa: F401  imported (as the notebook tests do) is not running in a kernel
    bar = progress_bar(4)  # pytest captures stderr: not a terminal
    for _ in range(4):
        bar.update()
    err = capsys.readouterr().err
    assert "\r" not in err and err.splitlines()[-1] == "rewriting: 4/4 q (100 %)"


def test_a_running_kernel_is_interactive(monkeypatch):
    import IPython

    from qrewrite.progress import interactive
    assert not interactive()
    monkeypatch.setattr(IPython, "get_ipython", lambda: type("Shell", (), {"kernel": object()})())
    assert interactive()


def test_training_outside_a_terminal_logs_without_a_progress_bar(tmp_path):
    import torch

    from qrewrite.config import TrainConfig
    from qrewrite.train.trainer import training_arguments

    args = training_arguments(TrainConfig(model="tiny", max_steps=2), tmp_path, torch.float32)
    assert args.disable_tqdm
