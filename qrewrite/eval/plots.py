"""The plots ``qrewrite results`` writes beside ``results.md``.

``metrics.png``: (left) every run evaluated on both dev and the held-out topics as one point, exact match on the
held-out topics against exact match on dev, with the diagonal: a run far below it does better on topics it was
trained on than on unseen ones; (right) the best runs on the held-out topics with their 95 % bootstrap intervals,
ROUGE-L and exact match, on zoomed axes. ``loss_curves.png``: the training and validation loss of the recommended
recipe's runs (the recommended soup's ingredients), a second cycle drawn after the run it continued.
"""

from __future__ import annotations

import ast
import io
import json
import warnings
from pathlib import Path

from qrewrite.eval.collect import _is_number, soup_ingredients
from qrewrite.files import atomic_write_bytes

DEV, TOPIC = "disfl-qa dev", "topic-disjoint valid"  # data labels when no ablations.yaml names the splits
BASELINES = ("copy", "rules", "zero-shot", "few-shot")
TOP = 10


def _new_figure(width: float, height: float):
    # An explicit Agg canvas: no pyplot state, no change to the global backend of a notebook.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return atomic_write_bytes(path, buf.getvalue())


def _placeholder(ax, text: str) -> None:
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12)


def _splits(spec: dict | None) -> tuple[str, str]:
    splits = (spec or {}).get("splits", {})
    return splits.get("clean", DEV), splits.get("topic", TOPIC)


def _by_data(runs, label: str) -> dict[str, dict]:
    return {r["run"]["name"]: r for r in runs if r["run"]["data"] == label}


def _label_points(ax, points: dict[str, tuple[float, float]], x_text: float, gap: float) -> None:
    """Names in a column at ``x_text``, at least ``gap`` apart in y, each joined to its point by a thin line."""
    y_last = None
    for name, (x, y) in sorted(points.items(), key=lambda item: item[1][1]):
        y_text = y if y_last is None else max(y, y_last + gap)
        ax.annotate(name, (x, y), xytext=(x_text, y_text), fontsize=8, va="center",
                    arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.6})
        y_last = y_text


def _recommended(spec: dict | None) -> tuple[str | None, str | None]:
    """The recommended model's evaluation as recommended (``recommended_decoding`` in ablations.yaml, e.g. with a
    copy bonus) and its greedy one (``recommended``)."""
    model = (spec or {}).get("recommended")
    return (spec or {}).get("recommended_decoding", model), model


def _recommended_label(name: str, spec: dict | None) -> str:
    decoded, model = _recommended(spec)
    if name == decoded:
        return " (recommended)"
    return " (recommended model, greedy)" if name == model else ""


def _scatter(ax, runs, spec: dict | None) -> None:
    dev_label, topic_label = _splits(spec)
    dev, topic = _by_data(runs, dev_label), _by_data(runs, topic_label)
    names = [n for n in topic if n in dev]
    if not names:
        _placeholder(ax, f"no run evaluated on both\n{dev_label} and {topic_label}")
        return
    decoded, model = _recommended(spec)
    recommended = decoded if decoded in names else model  # the recommended decoding where it was also run on dev
    xs = {n: 100 * dev[n]["metrics"]["exact_match"] for n in names}
    ys = {n: 100 * topic[n]["metrics"]["exact_match"] for n in names}
    baseline = [n for n in names if topic[n]["run"]["method"] in BASELINES]
    trained = [n for n in names if n not in baseline]
    low = min(min(xs[n], ys[n]) for n in names if xs[n] > 20 or n in trained) - 2  # the copy baseline's 0 % aside
    high = max(max(xs.values()), max(ys.values())) + 2
    shown = [n for n in baseline if min(xs[n], ys[n]) >= low]
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="same EM on both")
    ax.scatter([xs[n] for n in trained], [ys[n] for n in trained], s=22, color="C0", alpha=0.7,
               label=f"trained runs ({len(trained)})")
    ax.scatter([xs[n] for n in shown], [ys[n] for n in shown], s=40, color="C7", marker="s", label="baselines")
    if recommended in names:
        ax.scatter([xs[recommended]], [ys[recommended]], s=160, color="C3", marker="*", zorder=3,
                   label="recommended" if recommended == decoded else "recommended model (greedy)")
    best = sorted(trained, key=lambda n: -ys[n])[:3]
    labelled = dict.fromkeys([*shown, *best, *([recommended] if recommended in names else [])])
    span = high - low
    _label_points(ax, {n: (xs[n], ys[n]) for n in labelled}, low + 0.03 * span, 0.045 * span)
    hidden = [n for n in baseline if n not in shown]
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel(f"exact match on {dev_label} (%)")
    ax.set_ylabel(f"exact match on {topic_label}: unseen topics (%)")
    ax.set_title("each run: unseen topics against dev" + (f"\n(off the axes: {', '.join(hidden)}, "
                 + ", ".join(f"{xs[n]:.0f} % / {ys[n]:.0f} %" for n in hidden) + ")" if hidden else ""), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def _interval_panel(ax, top: list[dict], key: str, title: str, scale: float, spec: dict | None) -> None:
    ys = list(range(len(top)))[::-1]
    for y, run in zip(ys, top):
        m = run["metrics"]
        value, ci = scale * m[key], m.get(f"{key}_ci")
        color = "C3" if _recommended_label(run["run"]["name"], spec) else "C0"
        if ci:
            ax.errorbar(value, y, xerr=[[value - scale * ci[0]], [scale * ci[1] - value]], fmt="o", color=color,
                        capsize=3, markersize=5)
        else:
            ax.plot(value, y, "o", color=color, markersize=5)
    ax.set_yticks(ys)
    ax.set_yticklabels([r["run"]["name"] + _recommended_label(r["run"]["name"], spec) for r in top], fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)


def _top_runs(runs, spec: dict | None) -> tuple[str, list[dict]]:
    _, topic_label = _splits(spec)
    pool = [r for r in runs if r["run"]["data"] == topic_label] or runs
    label = pool[0]["run"]["data"] if pool else topic_label
    pool = [r for r in pool if r["run"]["data"] == label]
    return label, sorted(pool, key=lambda r: -r["metrics"]["rougeL"])[:TOP]


def plot_metrics(runs, path, spec: dict | None = None) -> Path:
    """``metrics.png``: the dev / held-out topics scatter and the top runs with their intervals."""
    runs = list(runs)
    fig = _new_figure(18, 6.5)
    if not runs:
        _placeholder(fig.add_subplot(1, 1, 1), "no runs yet")
        return _save_png(fig, Path(path))
    grid = fig.add_gridspec(1, 3, width_ratios=[1.1, 1, 1])
    _scatter(fig.add_subplot(grid[0, 0]), runs, spec)
    label, top = _top_runs(runs, spec)
    rouge = fig.add_subplot(grid[0, 1])
    _interval_panel(rouge, top, "rougeL", f"top {len(top)} by ROUGE-L on {label}\n(95 % bootstrap intervals)",
                    1.0, spec)
    em = fig.add_subplot(grid[0, 2], sharey=rouge)
    _interval_panel(em, top, "exact_match", f"their exact match on {label} (%)\n(95 % bootstrap intervals)",
                    100.0, spec)
    em.tick_params(labelleft=False)
    return _save_png(fig, Path(path))


def _read_trainer_log(path: Path) -> list[dict] | None:
    try:
        with open(path, encoding="utf-8-sig") as f:
            log = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        warnings.warn(f"skipping unreadable trainer log {path}: {e}")
        return None
    if isinstance(log, dict) and isinstance(log.get("log_history"), list):  # a Trainer state file
        log = log["log_history"]
    if not isinstance(log, list):
        warnings.warn(f"skipping trainer log {path}: expected a JSON list of {{step, loss, eval_loss}}")
        return None
    return [e for e in log if isinstance(e, dict) and _is_number(e.get("step"))]


def _log_from_train_log(path: Path, steps) -> list[dict]:
    """The Trainer's printed log lines (``{'loss': '0.41', ..., 'epoch': '0.13'}``) of a ``train.log``, for a run
    whose ``trainer_log.json`` was not kept; the step of each is its epoch's share of the last line's, times the
    run's ``steps``."""
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(("{'loss'", "{'eval_loss'")):
            try:
                entries.append({k: float(v) for k, v in ast.literal_eval(line).items()})
            except (ValueError, SyntaxError, TypeError):
                continue
    last = max((e.get("epoch", 0) for e in entries), default=0)
    if not entries or not last or not _is_number(steps):
        return []
    return [{**e, "step": round(e["epoch"] / last * steps)} for e in entries if "epoch" in e]


def _log_of(root: Path, run: dict) -> list[dict] | None:
    """The run's ``trainer_log.json`` (kept once per run directory: this evaluation's or an enclosing one's), else
    the losses its ``train.log`` printed; None when neither is there."""
    directory = (root / run["path"]).parent
    dirs = [d for d in (directory, *directory.parents[:2]) if d != root and d.is_relative_to(root)]
    for d in dirs:
        if (d / "trainer_log.json").is_file():
            return _read_trainer_log(d / "trainer_log.json")
    for d in dirs:
        if (d / "train.log").is_file():
            return _log_from_train_log(d / "train.log", run["run"].get("steps"))
    return None


def loss_curves(runs, outputs_dir, only=None) -> list[tuple[str, list, list]]:
    """``(label, [(step, train loss)], [(step, eval loss)])`` per training run with a log (:func:`_log_of`), named
    after its directory under ``weights/``; a training run evaluated several times (each data set, each decoding)
    comes once. ``only``: the training-run names to draw (all when None). A run that started from another listed
    run's model (a second cycle) is drawn after it: its steps are shifted by the steps of the run it continued."""
    root = Path(outputs_dir)
    found = {}
    for run in runs:
        trained = run["run"].get("model_path")
        label = Path(trained).name if trained else run["run"]["name"]
        if label in found or (only is not None and label not in only):
            continue
        log = _log_of(root, run)
        train = [(e["step"], e["loss"]) for e in log or [] if _is_number(e.get("loss"))]
        evals = [(e["step"], e["eval_loss"]) for e in log or [] if _is_number(e.get("eval_loss"))]
        if train or evals:  # the run it continued: the directory of the model it started from (weights/<run>/model)
            found[label] = (label, Path(run["run"].get("model") or "").parent.name, sorted(train), sorted(evals))

    def shift(key, seen=()) -> int:
        parent = found[key][1]
        if parent not in found or parent in seen:
            return 0
        _, _, train, evals = found[parent]
        return shift(parent, (*seen, key)) + max(s for s, _ in train + evals)

    curves = []
    for key, (label, _, train, evals) in found.items():
        k = shift(key)
        curves.append((label, [(s + k, v) for s, v in train], [(s + k, v) for s, v in evals]))
    return curves


def recipe_runs(runs, spec: dict | None) -> tuple[str, list[str]] | None:
    """The recommended model's name and the training runs it is made of: a soup's ingredients, or itself."""
    name = (spec or {}).get("recommended")
    run = next((r for r in runs if r["run"]["name"] == name), None)
    if run is None:
        return None
    return name, soup_ingredients(run) or [Path(run["run"].get("model_path") or name).name]


def plot_loss_curves(runs, outputs_dir, path, spec: dict | None = None) -> Path:
    """Train loss (solid) and eval loss (dashed, dots) against step: the recommended recipe's runs when ``spec``
    names a recommended run (:func:`recipe_runs`), else every run with a log."""
    runs = list(runs)
    recipe = recipe_runs(runs, spec)
    curves = loss_curves(runs, outputs_dir, only=recipe[1] if recipe else None)
    fig = _new_figure(11, 5)
    ax = fig.add_subplot(1, 1, 1)
    if not curves:
        _placeholder(ax, "no training logs yet")
        return _save_png(fig, Path(path))
    for i, (label, train, evals) in enumerate(curves):
        color, style = f"C{i % 10}", ["-", "-.", ":"][(i // 10) % 3]  # colours repeat every ten runs
        if train:
            ax.plot([s for s, _ in train], [v for _, v in train], color=color, linestyle=style, linewidth=1,
                    alpha=0.8, label=f"{label}: training")
        if evals:
            ax.plot([s for s, _ in evals], [v for _, v in evals], color=color, linestyle="--", marker="o",
                    markersize=3, label=f"{label}: validation")
    ax.set_xlabel("step (a second cycle continues after the run it started from)")
    ax.set_ylabel("loss")
    title = f"the runs of the recommended model {recipe[0]}" if recipe else "every training run"
    ax.set_title(f"{title}: training loss (lines) and validation loss (dashed, dots)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return _save_png(fig, Path(path))
