"""``tl predict``, ``tl init`` and ``tl config schema``: the commands around a run."""

import csv
import json
import sys

import click

from cli.plugins import builtin_plugins, plugin_option


@click.command()
@click.argument("model_dir", metavar="MODEL_DIR")
@click.argument("images", metavar="IMAGE_OR_FOLDER...", nargs=-1, required=True)
@click.option("--top-k", "top_k", default=5, show_default=True, type=click.IntRange(min=1),
              help="How many labels to show per image.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: a list of {path, predictions: [{label, score}]}.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: path, rank, label, score.")
@click.option("--quantized", is_flag=True, help="With an output_dir, use its quantized model (imx500/).")
@click.option("--block", "blocked", multiple=True, metavar="PLUGIN", help="Do not load this plugin (repeatable).")
@plugin_option
@click.option("--debug", is_flag=True, help="Show full tracebacks and the framework's own log messages.")
def predict(model_dir, images, top_k, as_json, as_csv, quantized, blocked, extra, debug):
    """Print the top labels of images with a model tl saved.

    MODEL_DIR is output_dir/saved_model (or output_dir itself, or output_dir/imx500
    for the quantized model). Folders are searched for images recursively.
    """
    from cli.main import guarded
    from tlcore.predict import predict as predict_images
    from tlcore.prepare import load_plugins
    from tlcore.report import Reporter

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    with guarded(debug, "the predictions"):
        manager, notes = load_plugins(builtin_plugins(), blocked, (), extra)
        reporter = Reporter(stream=sys.stderr, debug=debug)
        for note in notes:
            reporter.warning(note)
        results = predict_images(model_dir, images, top_k, quantized=quantized, manager=manager, reporter=reporter)
        if as_json:
            click.echo(json.dumps([result.to_dict() for result in results], indent=2, ensure_ascii=False))
        elif as_csv:
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(["path", "rank", "label", "score"])
            for result in results:
                for rank, (label, score) in enumerate(result.predictions, start=1):
                    writer.writerow([result.path, rank, label, f"{score:.6f}"])
        else:
            _table(results)


def _table(results):
    width = max(len(result.path) for result in results)
    for result in results:
        labels = "   ".join(f"{label} {score:.3f}" for label, score in result.predictions)
        click.echo(f"{result.path:<{width}}  {labels}")


@click.command()
@click.argument("dataset", metavar="DATASET_DIR")
@click.option("--split", type=float, metavar="SHARE",
              help="Set this share of each class aside for validation (e.g. 0.2), for one folder per class.")
@click.option("--seed", default=0, show_default=True, help="Seed of the split (the same seed, the same split).")
@click.option("--force", is_flag=True, help="Replace configuration.json (and a split tl init made).")
def init(dataset, split, seed, force):
    """Write a starting configuration.json here for the images in DATASET_DIR.

    DATASET_DIR holds training/ and validation/ (one folder per class in each; a
    missing labels.json is written), or one folder per class: then --split writes a
    validation split beside the configuration, with hard links, moving nothing.
    """
    from cli.main import guarded
    from tlcore.init import init as init_folder
    from tlcore.report import Reporter

    with guarded(False, "configuration.json"):
        init_folder(dataset, Reporter(), split=split, seed=seed, force=force)


@click.group()
def config():
    """Help with configuration.json."""


@config.command("schema")
@plugin_option
def schema(extra):
    """Print a JSON Schema of every configuration key (plugins' keys included), for editors."""
    from tlcore.pluginmanager import make_plugin_manager
    from tlcore.schema import json_schema

    click.echo(json.dumps(json_schema(make_plugin_manager(builtin_plugins(), extra=extra)), indent=2))
