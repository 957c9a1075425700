"""``tl predict``: the top labels, with scores, of images, with a model tl saved."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from typing import TYPE_CHECKING, Sequence

import click

from tlcore.text import for_terminal, neutralise

from tlcli.plugins import builtin_plugins, plugin_option

if TYPE_CHECKING:
    from tlcore.prediction import Prediction


@click.command()
@click.argument("model_dir", metavar="MODEL_DIR")
@click.argument("images", metavar="IMAGE_OR_FOLDER...", nargs=-1, required=True)
@click.option("--top-k", "top_k", default=5, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="How many labels to show per image (all of them when there are fewer classes).")
@click.option("--json", "as_json", is_flag=True,
              help='Print JSON: [{"path": ..., "predictions": [{"label": ..., "score": ...}, ...]}], best first.')
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: a header, then one row per label: path,rank,label,score.")
@click.option("--quantized", is_flag=True, help="With an output_dir, use its quantized model (output_dir/imx500).")
@click.option("--block", "blocked", multiple=True, metavar="PLUGIN", help="Do not load this plugin (repeatable).")
@plugin_option
@click.option("--debug", is_flag=True, help="Show full tracebacks and the framework's own log messages.")
def predict(model_dir: str, images: Sequence[str], top_k: int, as_json: bool, as_csv: bool, quantized: bool,
            blocked: Sequence[str], extra: Sequence[str], debug: bool) -> None:
    """Print the top labels, with scores, of images, with a model tl saved.

    MODEL_DIR is output_dir/saved_model (the folder `tl run` wrote), its output_dir,
    or output_dir/imx500 for the quantized model (or an output_dir with --quantized).
    IMAGE_OR_FOLDER are image files and folders, searched recursively for .jpg, .jpeg,
    .png, .bmp, .gif and .webp files. Images are decoded as in training; one that
    cannot be decoded is named in a warning and left out.

    The results go to stdout, in the order given (each folder sorted); progress,
    the model used and warnings go to stderr, so `--json` and `--csv` can be piped.

    \b
    Examples:
      tl predict output photo.jpg other.jpg
      tl predict output/saved_model photos/ --top-k 3 --json > predictions.json
      tl predict output photos/ --quantized --csv
    """
    from tlcore.prediction import predict as predict_images
    from tlcore.prepare import load_plugins
    from tlcore.report import Reporter

    from tlcli.guard import guarded

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    with guarded(debug, "the predictions"):
        manager, notes = load_plugins(builtin_plugins(), blocked, (), extra)
        reporter = Reporter(stream=sys.stderr, debug=debug)
        for note in notes:
            reporter.warning(note)
        results = predict_images(model_dir, images, top_k, quantized=quantized, manager=manager, reporter=reporter,
                                 debug=debug)
        if as_json:
            text = json.dumps([result.to_dict() for result in results], indent=2, ensure_ascii=False) + "\n"
        elif as_csv:
            text = csv_text(results)
        else:
            text = "".join(line + "\n" for line in table_lines(results))
        _write(text)


def table_lines(results: Sequence[Prediction]) -> list[str]:
    """One line per image: its path, then a column per rank of ``label (score)``, aligned."""
    rows = [[for_terminal(result.path), *(f"{for_terminal(label)} ({score:.3f})" for label, score in result.predictions)]
            for result in results]
    columns = max(len(row) for row in rows)
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(columns)]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def csv_text(results: Sequence[Prediction]) -> str:
    """``path,rank,label,score``: a header, then one row per image and rank (1 = best); cells a spreadsheet would
    take for a formula are neutralised (a leading ``'``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "rank", "label", "score"])
    for result in results:
        for rank, (label, score) in enumerate(result.predictions, start=1):
            writer.writerow([neutralise(result.path), rank, neutralise(label), repr(score)])
    return buffer.getvalue()


def _write(text: str) -> None:
    """Print the results; a reader that stops early (``| head``) is not an error."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # not a real file (a test runner's buffer)
            pass
