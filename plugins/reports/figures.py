"""Pictures of a run, as PNG: the confusion matrix (class names on both axes) and the training curves (loss
and accuracy, training and validation, per epoch).

matplotlib draws them off-screen (a ``Figure`` on an Agg canvas: no window, no global state). A picture
that cannot be drawn is a warning, not a failed run: the model and the other reports are still published.
"""

from __future__ import annotations

import math
import os
import warnings
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from tlcore.hookspecs import hookimpl
from tlcore.outputs import check_owned
from tlcore.training import watched_images

from tlplugins.metrics.confusion import confusion_matrix
from tlplugins.reports import CONFUSION_PNG, CURVES_PNG, MAX_DRAWN_CLASSES

if TYPE_CHECKING:
    from pathlib import Path

    from tlcore.config import RunConfig
    from tlcore.evaluation import Predictions
    from tlcore.report import Reporter

DPI = 100
MIN_WIDTH, MIN_HEIGHT = 6.4, 4.8
"""Inches at DPI: every picture is at least 640 x 480 pixels."""
MAX_LABEL = 28
"""Class names longer than this are shortened in pictures (the tables keep them whole)."""
ANNOTATE_UP_TO = 30
"""Cells of the confusion matrix show their count up to this many classes."""
FALLBACK_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK KR", "Source Han Sans JP", "IPAexGothic",
                  "IPAGothic", "TakaoGothic", "WenQuanYi Zen Hei", "Yu Gothic", "Meiryo", "MS Gothic",
                  "Microsoft YaHei", "Malgun Gothic", "Hiragino Sans", "Arial Unicode MS")
"""Fonts asked, when installed, for the characters matplotlib's own font lacks (Japanese class names...)."""
WRITES = (CONFUSION_PNG, CURVES_PNG)


@hookimpl
def tl_on_run_start(config: RunConfig) -> None:
    check_owned(config.evaluate_result_dir, WRITES)  # a file of the user's there is refused before training


@hookimpl(trylast=True)
def tl_write_reports(predictions: Predictions, metrics: Mapping[str, Any], history: Sequence[Mapping[str, float]],
                     path: Path, config: RunConfig, reporter: Reporter) -> list[str] | None:
    written = []
    drawings = ((CONFUSION_PNG, lambda: confusion_figure(predictions)),
                (CURVES_PNG, lambda: curves_figure(history, metrics, watched_images(config))))
    for name, draw in drawings:
        try:
            with fonts():
                save(draw(), path / name)
        except ImportError as exc:
            reporter.warning(f"{name} not drawn: {exc}; install matplotlib (pip install matplotlib)")
        except Exception as exc:  # noqa: BLE001 - a picture must not cost the trained model
            reporter.warning(f"{name} not drawn: {type(exc).__name__}: {exc}")
        else:
            written.append(name)
    return written


def drawn_classes(confusion: Any, limit: int = MAX_DRAWN_CLASSES) -> Any:
    """Indices (into ``confusion.label_ids``) of the classes the picture shows: all of them up to ``limit``,
    else the ``limit`` classes with the most errors (as true or as predicted class), in id order."""
    import numpy as np

    count = len(confusion.label_ids)
    if count <= limit:
        return list(range(count))
    wrong = confusion.counts - np.diag(np.diag(confusion.counts))
    errors = wrong.sum(axis=0) + wrong.sum(axis=1)
    return sorted(int(i) for i in np.argsort(-errors, kind="stable")[:limit])


def short(name: str) -> Any:
    return name if len(name) <= MAX_LABEL else name[:MAX_LABEL - 1] + "…"


@contextmanager
def fonts() -> Iterator[Any]:
    """matplotlib's settings for the pictures: its own font, then any installed one of FALLBACK_FONTS."""
    import matplotlib
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    fallback = [name for name in FALLBACK_FONTS if name in installed]
    with matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans", *fallback]}):
        yield


def new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(width, MIN_WIDTH), max(height, MIN_HEIGHT)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Any, file: Path) -> None:
    """Write ``figure`` as PNG to ``file`` through a temporary file: a picture that fails half-way leaves nothing."""
    partial = file.with_name(f".{file.name}.tl-partial")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Glyph missing from font" for names in scripts the font lacks
            figure.savefig(partial, dpi=DPI, format="png")
        os.replace(partial, file)
    finally:
        partial.unlink(missing_ok=True)


def confusion_figure(predictions: Predictions) -> Any:
    """The confusion matrix: one row per true class, one column per predicted class, coloured by the share of
    the true class's images (so that small classes show as clearly as large ones) and labelled with counts."""
    import numpy as np

    confusion = confusion_matrix(predictions)
    shown = drawn_classes(confusion)
    counts = confusion.counts[np.ix_(shown, shown)]
    totals = confusion.images()[shown].astype(np.float64)
    shares = np.divide(counts, totals[:, None], out=np.zeros(counts.shape), where=totals[:, None] > 0)
    names = [short(confusion.names[i]) for i in shown]
    n = len(shown)
    font = 10 if n <= 20 else 8
    label_inches = max(len(name) for name in names) * font * 0.62 / 72
    side = 1.5 + 0.3 * n
    figure = new_figure(side + label_inches + 1.8, side + label_inches + 1.0)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ticks = np.arange(n)
    rotate = n > 6 or max(len(name) for name in names) > 8
    axes.set_xticks(ticks, names, fontsize=font, rotation=90 if rotate else 0, parse_math=False)
    axes.set_yticks(ticks, names, fontsize=font, parse_math=False)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    accuracy = confusion.correct / confusion.total if confusion.total else 0.0
    title = f"Confusion matrix: {confusion.total} validation images, top-1 accuracy {accuracy:.1%}"
    if n < len(confusion.label_ids):
        title += f"\nthe {n} classes with the most errors, of {len(confusion.label_ids)} (all in confusion_matrix.json)"
    figure.suptitle(title, fontsize=11, parse_math=False)
    if n <= ANNOTATE_UP_TO:
        for (row, column), count in np.ndenumerate(counts):
            if count:
                axes.text(column, row, str(count), ha="center", va="center", fontsize=font,
                          color="white" if shares[row, column] > 0.5 else "black")
    bar = figure.colorbar(image, ax=axes, shrink=0.8)
    bar.set_label("share of the true class's images")
    return figure


def curves_figure(history: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any], watched: str = 'validation') -> Any:
    """Loss and accuracy per epoch, training and ``watched`` (``"validation"``, or the ``"hold-out"`` early
    stopping watches), side by side; the epoch whose weights early stopping kept is marked. Without epochs (a
    trainer that reported none), a picture that says so."""
    if not history:
        figure = new_figure(MIN_WIDTH, MIN_HEIGHT)
        figure.text(0.5, 0.5, "No training curves: the trainer reported no epochs.", ha="center", va="center",
                    fontsize=13)
        return figure
    from matplotlib.ticker import MaxNLocator

    epochs = [epoch.get("epoch", index + 1) for index, epoch in enumerate(history)]
    kept = (metrics.get("early_stopping") or {}).get("best_epoch")
    figure = new_figure(12, 4.8)
    other = "hold-out (training images early stopping watches)" if watched == "hold-out" else watched
    panels = (("loss", "Loss", (("loss", "training"), ("val_loss", other))),
              ("accuracy", "Accuracy", (("acc", "training"), ("val_acc", other))))
    for index, (unit, title, series) in enumerate(panels):
        axes = figure.add_subplot(1, 2, index + 1)
        drawn, top = 0, 0.0
        for key, label in series:
            values = [finite(epoch.get(key)) for epoch in history]
            if all(value is None for value in values):
                continue
            axes.plot(epochs, [float("nan") if value is None else value for value in values], label=label,
                      marker="o" if len(epochs) <= 30 else None, markersize=4)
            drawn += 1
            top = max([top, *(value for value in values if value is not None)])
        if kept is not None:
            axes.axvline(kept, color="grey", linestyle="--", linewidth=1, label=f"weights kept (epoch {kept})")
        if unit == "accuracy" and top <= 1:
            axes.set_ylim(-0.02, 1.02)
        axes.set_title(title if drawn else f"{title}: not reported by the trainer")
        axes.set_xlabel("epoch")
        axes.set_ylabel(unit)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(True, alpha=0.3)
        if drawn or kept is not None:
            axes.legend()
    return figure


def finite(value: Any) -> Any:
    """``value`` as a float, or None when it is missing, not a number or infinite (a gap in the curve)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
