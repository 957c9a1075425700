"""One page that says what a run did: ``summary.html``, beside results.json.

It gives the results at a glance, shows the training curves and the confusion matrix with a few words on
how to read them, tabulates precision, recall and F1 per class and the misclassified images (with their
pictures), shows what the data check found (duplicates, likely wrong labels, thin classes; with pictures of
the images) when the run checked the data, and links every report file of the run with relative links, so the folder can be moved or
shared whole. It is asked after the other report plugins (``trylast``, and registered after them) and links
whatever they wrote, a third-party plugin's files included. Every name and path is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence
from urllib.parse import quote

from tlcore import __version__
from tlcore.health import HEALTH_CSV, HEALTH_JSON, KINDS
from tlcore.hookspecs import hookimpl
from tlcore.outputs import check_owned
from tlcore.training import watched_images

from tlplugins.metrics.confusion import confusion_matrix
from tlplugins.reports import (
    CONFUSION_JSON, CONFUSION_PNG, CURVES_PNG, HISTORY_CSV, MAX_DRAWN_CLASSES, MISCLASSIFIED_CSV, SUMMARY_HTML,
    TENSORBOARD_DIR,
)
from tlplugins.reports.tables import misclassified

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.dataset import DatasetIndex
    from tlcore.evaluation import Predictions
    from tlcore.health import HealthReport

MAX_LISTED_MISTAKES = 100
"""The page shows this many misclassified images; misclassified.csv has them all."""
MAX_LISTED_FINDINGS = 20
"""The page shows this many findings of each kind of the data check; data_health.csv has them all."""
THUMBNAIL = 64
WRITES = (SUMMARY_HTML,)

FILES = (
    ("results.json", ("the metrics: top-1 accuracy (top-5 with more than 5 classes), per-class precision, recall "
                      "and F1")),
    (CONFUSION_JSON, "the confusion matrix: class names and counts, rows = true class, columns = predicted class"),
    (CONFUSION_PNG, "the confusion matrix as a picture"),
    (MISCLASSIFIED_CSV, "every misclassified validation image: path, true and predicted label, their scores"),
    (HISTORY_CSV, "the epoch history: loss and accuracy on the training and validation images"),
    (CURVES_PNG, "the training curves as a picture"),
    (TENSORBOARD_DIR, "TensorBoard logs of the epochs"),
    (HEALTH_CSV, ("every finding of the data check: duplicates, likely wrong labels, classes with few images, "
                  "imbalance; with paths, splits, labels and a score")),
    (HEALTH_JSON, "the same findings, and what the data check examined"),
)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.8em 0; max-width: 100%; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; overflow-wrap: anywhere; }
th { background: #f4f4f4; text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.weak td { background: #fff3f0; } img.figure { max-width: 100%; height: auto; border: 1px solid #eee; }
img.thumb { width: 64px; height: 64px; object-fit: cover; } .note { color: #555; } code { background: #f4f4f4; }
.lead { font-size: 1.05em; } pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
"""


@hookimpl
def tl_on_run_start(config: RunConfig) -> None:
    check_owned(config.evaluate_result_dir, WRITES)  # a file of the user's there is refused before training


@hookimpl(trylast=True)
def tl_write_reports(predictions: Predictions, metrics: Mapping[str, Any], history: Sequence[Mapping[str, float]],
                     dataset: DatasetIndex, path: Path, config: RunConfig, health: HealthReport | None) -> list[str] | None:
    page = Page(predictions, metrics, history, dataset, path, config, health)
    (path / SUMMARY_HTML).write_text(page.render(), encoding="utf-8")
    return list(WRITES)


def esc(value: Any) -> Any:
    return html.escape(str(value), quote=True)


def percent(value: Any) -> str:
    return f"{value:.1%}"


class Page:
    """summary.html of one run. Links are relative to ``evaluate_result_dir``, where the page is published."""

    def __init__(self, predictions: Predictions, metrics: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
                 dataset: DatasetIndex, path: Path, config: RunConfig, health: HealthReport | None = None) -> None:
        self.predictions, self.metrics, self.history = predictions, metrics, list(history)
        self.dataset, self.path, self.config, self.health = dataset, path, config, health

        self.watched = watched_images(config)  # what the epochs' val_* measure: "validation", or "hold-out"
        self.home = Path(config.evaluate_result_dir)
        self.confusion = confusion_matrix(predictions)

    def has(self, name: str) -> Any:
        return (self.path / name).exists()

    def link(self, target: Path, text: str | None = None) -> str:
        """``<a>`` to ``target`` (a file or folder) relative to the page; the plain text where none can be made."""
        relative = relative_url(target, self.home)
        shown = esc(text if text is not None else target)
        return f'<a href="{relative}">{shown}</a>' if relative else shown

    def render(self) -> Any:
        top1 = self.metrics.get("top_1_accuracy", self.confusion.correct / max(self.confusion.total, 1))
        sections = [self.overview(top1), self.curves(), self.head_search(), self.matrix(), self.per_class(),
                    self.mistakes(), self.data_health(), self.files(), self.all_metrics()]
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>tl run: top-1 accuracy {percent(top1)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(section for section in sections if section)
            + f'\n<p class="note">Written by tl {esc(__version__)} on '
            + f'{esc(datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))}.</p>\n</body>\n</html>\n'
        )

    def overview(self, top1: Any) -> str:
        confusion, config = self.confusion, self.config
        classes = sum(name is not None for name in self.predictions.class_names)
        epochs = len(self.history)
        lead = (f"A classifier of {classes} class{'es' if classes != 1 else ''}, trained with "
                f"<b>{esc(config.framework)}</b> for {epochs} epoch{'s' if epochs != 1 else ''} on "
                f"{len(self.dataset.training)} training images, and evaluated on {confusion.total} validation images. "
                f"Configuration: {self.link(config.config_file)}; model: {self.link(config.saved_model_dir)}.")
        rows = [("Top-1 accuracy", (f"<b>{percent(top1)}</b> ({confusion.correct} of {confusion.total} validation "
                                    "images: their best-scoring class is their class)"))]
        if "top_5_accuracy" in self.metrics:
            rows.append(("Top-5 accuracy", (f"{percent(self.metrics['top_5_accuracy'])} (their class is among the 5 "
                                            "best-scoring ones)")))
        wrong = confusion.total - confusion.correct
        rows.append(("Misclassified", f'<a href="#misclassified">{wrong} image{"s" if wrong != 1 else ""}</a>'))
        if self.health is not None:
            found = len(self.health.findings)
            rows.append(("Data health", f'<a href="#data-health">{found} finding{"s" if found != 1 else ""}</a>'
                         if found else "no problems found"))
        if self.history:
            last = self.history[-1]
            values = ", ".join(f"{name} {last[name]:.4f}" for name in ("loss", "acc", "val_loss", "val_acc")
                               if isinstance(last.get(name), (int, float)))
            measured = ("; val_loss and val_acc are measured on the hold-out of training images early stopping "
                        "watches, not on the validation images" if self.watched == "hold-out" and values else "")
            rows.append(("Last epoch", esc(f"epoch {last.get('epoch', epochs)}: {values}{measured}" if values
                                           else f"epoch {last.get('epoch', epochs)}")))
        stopping = self.metrics.get("early_stopping")
        if isinstance(stopping, dict) and "best_epoch" in stopping:
            rows.append(("Early stopping", esc(f"kept the weights of epoch {stopping['best_epoch']} "
                                               f"(trained {stopping.get('stopped_after_epoch', epochs)} epochs)")))
        skipped = len(self.dataset.training.skipped) + len(self.dataset.validation.skipped)
        undecoded = len(self.dataset.validation) - len(self.predictions)
        if skipped or undecoded:
            rows.append(("Unusable images", f"{skipped + undecoded} left out (listed in tl_run.json beside the model)"))
        table = "".join(f"<tr><th>{esc(name)}</th><td>{value}</td></tr>" for name, value in rows)
        return f'<h1>Training report</h1>\n<p class="lead">{lead}</p>\n<table>{table}</table>'

    def curves(self) -> Any:
        parts = ["<h2>Training curves</h2>"]
        if not self.history:
            parts.append('<p class="note">The trainer reported no epochs, so there are no training curves.</p>')
            return "\n".join(parts)
        if self.has(CURVES_PNG):
            parts.append(f'<p>{self.figure(CURVES_PNG, f"Loss and accuracy per epoch, training and {self.watched}")}</p>')
        if self.watched == "hold-out":
            parts.append("<p>The hold-out curves are measured on the training images early stopping watches (kept "
                         "out of training), not on the validation images, which only the Top-1 above measures.</p>")
        parts.append(
            "<p>Loss measures how wrong the scores are (lower is better); accuracy is the share of images "
            f"classified right. Training loss should fall from epoch to epoch. When {self.watched} loss rises while "
            f"training loss still falls, or {self.watched} accuracy stays well below training accuracy, the head is "
            "learning the training images by heart (overfitting): fewer epochs, early stopping, augmentation or "
            "more images help. Curves still falling at the end suggest more epochs.</p>")
        if self.has(HISTORY_CSV):
            parts.append(f"<p>The numbers: {self.link(self.home / HISTORY_CSV, HISTORY_CSV)}.</p>")
        return "\n".join(parts)

    def head_search(self) -> str:
        """What the head search tried and chose (``metrics["head_search"]``), best first."""
        search = self.metrics.get("head_search")
        if not isinstance(search, dict) or not search.get("tried"):
            return ""
        keys = ("learning_rate", "weight_decay", "label_smoothing", "epochs")
        fixed = set(search.get("fixed", ()))
        chosen = ", ".join(f"{key} <b>{esc(search['chosen'][key])}</b>" for key in keys if key not in fixed)
        kept = (f" The configuration sets {', '.join(esc(key) for key in keys if key in fixed)}, which the search left "
                "as they are." if fixed else "")
        rows = sorted(search["tried"], key=lambda row: (-row["cv_accuracy"], row["cv_loss"]))
        header = "".join(f"<th>{esc(name)}</th>" for name in (*keys, "cross-validated accuracy", "loss"))
        body = "".join(
            "<tr>" + "".join(f'<td class="n">{esc(row[key])}</td>' for key in keys)
            + f'<td class="n">{percent(row["cv_accuracy"])}</td><td class="n">{row["cv_loss"]:.4f}</td></tr>'
            for row in rows)
        return (f'<h2 id="head-search">Head search</h2>\n<p>The head\'s training settings were chosen by '
                f"{esc(search['folds'])}-fold cross-validation on {esc(search['images'])} training images' features "
                f"(never on the validation images): {len(rows)} heads, each scored after every epoch on the images "
                f"it did not train on, in {search['seconds']:.1f} s. Chosen: {chosen}.{kept}</p>\n"
                f"<table><tr>{header}</tr>{body}</table>")

    def matrix(self) -> Any:
        confusion = self.confusion
        parts = ["<h2>Confusion matrix</h2>"]
        if self.has(CONFUSION_PNG):
            parts.append(f"<p>{self.figure(CONFUSION_PNG, 'Confusion matrix')}</p>")
            if len(confusion.label_ids) > MAX_DRAWN_CLASSES:
                parts.append(f'<p class="note">With {len(confusion.label_ids)} classes, the picture shows the '
                             f"{MAX_DRAWN_CLASSES} classes with the most errors; the whole matrix is in "
                             f"{self.link(self.home / CONFUSION_JSON, CONFUSION_JSON)}.</p>")
        parts.append(
            "<p>Each row is a true class and each column the class the model predicted, so the diagonal holds "
            "the images classified right. The colour is the share of the row's images, the number the count. "
            "A dark cell off the diagonal is a pair of classes the model mixes up: look at those images, and "
            "consider more (or more varied) training images of both classes.</p>")
        import numpy as np

        wrong = confusion.counts - np.diag(np.diag(confusion.counts))
        pairs = sorted((-int(wrong[t, p]), int(t), int(p)) for t, p in zip(*np.nonzero(wrong), strict=True))
        pairs = [(-count, t, p) for count, t, p in pairs]
        if pairs:
            items = "".join(f"<li>{esc(confusion.names[t])} taken for {esc(confusion.names[p])}: {count} "
                            f"image{'s' if count != 1 else ''}</li>" for count, t, p in pairs[:5])
            parts.append(f"<p>The most frequent confusions:</p>\n<ul>{items}</ul>")
        if self.has(CONFUSION_JSON):
            parts.append(f"<p>The counts: {self.link(self.home / CONFUSION_JSON, CONFUSION_JSON)}.</p>")
        return "\n".join(parts)

    def per_class(self) -> str:
        confusion = self.confusion
        precision, recall, f1 = confusion.scores()
        images, predicted = confusion.images(), confusion.predicted()
        rows = []
        for index, (label, name) in enumerate(zip(confusion.label_ids, confusion.names, strict=True)):
            weak = images[index] and f1[index] < 0.5
            cells = [f"<td>{esc(name)}</td>", f'<td class="n">{label}</td>', f'<td class="n">{images[index]}</td>',
                     f'<td class="n">{predicted[index]}</td>']
            if images[index]:
                cells += [f'<td class="n">{value[index]:.3f}</td>' for value in (precision, recall, f1)]
            else:
                cells.append('<td colspan="3" class="note">no validation images</td>')
            opening = '<tr class="weak">' if weak else "<tr>"
            rows.append(f"{opening}{''.join(cells)}</tr>")
        header = ("<tr><th>class</th><th>id</th><th>images</th><th>predicted as it</th><th>precision</th>"
                  "<th>recall</th><th>F1</th></tr>")
        measured = [i for i in range(len(confusion.label_ids)) if images[i]]
        weakest = sorted((i for i in measured if f1[i] < 1), key=lambda i: (f1[i], confusion.label_ids[i]))[:5]
        weakest_text = ""
        if len(measured) > 5 and weakest:
            weakest_text = ("<p>Weakest classes by F1: "
                            + ", ".join(f"{esc(confusion.names[i])} ({f1[i]:.3f})" for i in weakest) + ".</p>")
        return (
            "<h2>Per class</h2>\n<p><b>Precision</b>: of the images predicted as the class, the share that are of "
            "it. <b>Recall</b>: of the class's images, the share predicted as it (its top-1 accuracy). <b>F1</b>: "
            "the harmonic mean of the two, high only when both are. Low precision means other classes are taken "
            "for this one; low recall means this class is taken for others. Rows with F1 below 0.5 are "
            f"highlighted.</p>\n{weakest_text}\n<table>{header}{''.join(rows)}</table>"
        )

    def mistakes(self) -> Any:
        found = misclassified(self.predictions)
        total = len(self.predictions)
        parts = ['<h2 id="misclassified">Misclassified images</h2>']
        if not found:
            parts.append(f"<p>None: all {total} validation images are classified right.</p>")
            return "\n".join(parts)
        every = (f"; all of them are in {self.link(self.home / MISCLASSIFIED_CSV, MISCLASSIFIED_CSV)}"
                 if self.has(MISCLASSIFIED_CSV) else "")
        shown = f"the {MAX_LISTED_MISTAKES} most confident are shown" if len(found) > MAX_LISTED_MISTAKES else \
            "most confident mistake first"
        verb = "is" if len(found) == 1 else "are"
        parts.append(f"<p>{len(found)} of {total} validation images {verb} misclassified ({shown}{every}). A confident "
                     "mistake is often an image with the wrong label, or one that shows both classes: check it "
                     "before training more.</p>")
        rows = []
        for image, true, predicted, score, true_score in found[:MAX_LISTED_MISTAKES]:
            rows.append(f"<tr><td>{self.thumbnail(image)}</td><td>{esc(self.shown_path(image, 'validation'))}</td>"
                        f"<td>{esc(true)}</td><td>{esc(predicted)}</td>"
                        f'<td class="n">{score:.3f}</td><td class="n">{true_score:.3f}</td></tr>')
        parts.append("<table><tr><th>image</th><th>path (in the validation folder)</th><th>true class</th>"
                     "<th>predicted class</th><th>its score</th><th>true class's score</th></tr>"
                     + "".join(rows) + "</table>")
        return "\n".join(parts)

    def data_health(self) -> Any:
        """What the data check found, each kind in a table of its most important findings with pictures of the
        images (both of a duplicate pair); absent when the run did not check the data."""
        if self.health is None:
            return ""

        parts = ['<h2 id="data-health">Data health</h2>']
        checked = self.health.checked.get("images", {})
        examined = " and ".join(f"{count} {split}" for split, count in checked.items())
        parts.append("<p>Before training, tl looked for flaws in the data that cost accuracy or make it look better "
                     f"than it is{f' ({examined} images)' if examined else ''}: the same photo in training and "
                     "validation (identical files, or re-encoded, resized or slightly cropped copies, found by the "
                     "similarity of their features), the same photo under two classes, images the model confidently "
                     "puts in another class than their label when it has not seen them, and classes with few "
                     "images.</p>")
        every = (f" All of them are in {self.link(self.home / HEALTH_CSV, HEALTH_CSV)}." if self.has(HEALTH_CSV)
                 else "")
        if not self.health.findings:
            parts.append("<p>No problems found.</p>")
            return "\n".join(parts)
        items = "".join(f"<li>{esc(line.removeprefix('data check: '))}</li>" for line in self.health.warning_lines())
        parts.append(f"<ul>{items}</ul>")
        if any(len(self.health.of_kind(kind)) > MAX_LISTED_FINDINGS for kind in KINDS):
            parts.append(f'<p class="note">The page shows the first {MAX_LISTED_FINDINGS} findings of each kind, '
                         f"the most likely first.{every}</p>")
        elif every:
            parts.append(f'<p class="note">{every.strip()}</p>')
        rows = []
        for kind in KINDS:
            for finding in self.health.of_kind(kind)[:MAX_LISTED_FINDINGS]:
                pictures = "".join(self.thumbnail(image) for image in finding.paths)
                shown = "<br>".join(esc(f"{split}: {self.shown_path(image, split)}")
                                    for image, split in zip(finding.paths, finding.splits, strict=False))
                rows.append(f"<tr><td>{esc(kind.replace('_', ' '))}</td><td>{pictures}</td><td>{shown}</td>"
                            f"<td>{esc(', '.join(finding.labels))}</td><td class=\"n\">{finding.score:.3f}</td>"
                            f"<td>{esc(finding.detail)}</td></tr>")
        parts.append("<table><tr><th>finding</th><th>images</th><th>paths (in their split's folder)</th>"
                     "<th>classes</th><th>score</th><th>detail</th></tr>" + "".join(rows) + "</table>")
        parts.append('<p class="note">Score: the similarity of a duplicate pair\'s features (1 for identical files), '
                     "how much more likely the other class is than the label for a likely wrong label, the number of "
                     "training images of a small class, the largest to smallest ratio of an imbalance. Remove one "
                     "image of each duplicate pair (keep validation images out of training), fix the labels that are "
                     "wrong, and add images to small classes.</p>")
        return "\n".join(parts)

    def thumbnail(self, image: Any) -> Any:
        """A small picture of ``image`` linking to it; empty where no relative link can be made."""
        url = relative_url(image, self.home)
        return (f'<a href="{url}"><img class="thumb" src="{url}" alt="" loading="lazy" width="{THUMBNAIL}" '
                f'height="{THUMBNAIL}"></a>') if url else ""

    def shown_path(self, image: Any, split: Any) -> Any:
        """``image`` relative to the folder of its ``split`` ("training" or "validation"), or as it is."""
        try:
            return Path(image).relative_to(Path(getattr(self.dataset, split).root)).as_posix()
        except (ValueError, AttributeError):
            return str(image)

    def files(self) -> Any:
        known = {name for name, _ in FILES}
        rows = []
        for name, what in FILES:
            if name == "results.json" or self.has(name):
                link = self.link(self.home / name, name + ("/" if name == TENSORBOARD_DIR else ""))
                if name == HISTORY_CSV and self.watched == "hold-out":
                    what = what.replace("validation images", "hold-out early stopping watches (val_*)")
                if name == TENSORBOARD_DIR:
                    what += f": <code>tensorboard --logdir {esc(self.home / TENSORBOARD_DIR)}</code>"
                rows.append(f"<tr><td>{link}</td><td>{what}</td></tr>")
        for entry in sorted(self.path.iterdir()):
            if entry.name not in known and entry.name != SUMMARY_HTML:
                suffix = "/" if entry.is_dir() else ""
                rows.append(f"<tr><td>{self.link(self.home / entry.name, entry.name + suffix)}</td>"
                            "<td>written by another report plugin</td></tr>")
        return ("<h2>Files</h2>\n<p>Beside this page, in " + esc(self.home) + ":</p>\n<table>"
                + "".join(rows) + "</table>")

    def all_metrics(self) -> str:
        text = json.dumps(self.metrics, indent=2, ensure_ascii=False, default=str)
        return f"<details><summary>All metrics (results.json)</summary><pre>{esc(text)}</pre></details>"

    def figure(self, name: str, alt: str) -> str:
        return f'<a href="{quote(name)}"><img class="figure" src="{quote(name)}" alt="{esc(alt)}"></a>'


def relative_url(target: Path, base: Path) -> Any:
    """``target`` relative to the folder ``base``, as an escaped URL path; None when there is no relative path
    (another drive on Windows)."""
    try:
        relative = os.path.relpath(target, base)
    except ValueError:
        return None
    return esc(quote(Path(relative).as_posix()))
