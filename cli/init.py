"""``tl init``: a starting configuration.json for a dataset, and a validation split when there is none."""

from __future__ import annotations

import click


@click.command()
@click.argument("dataset", metavar="DATASET_DIR_OR_LISTING")
@click.option("--split", type=float, metavar="SHARE",
              help="With one folder per class: set this share of each class aside for validation (e.g. 0.2), "
                   "in dataset/ here, with hard links to your images (copies where links cannot be made).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Seed of the split: the same seed makes the same split.")
@click.option("--force", is_flag=True,
              help="Replace configuration.json, and a split an earlier tl init made (nothing else).")
def init(dataset: str, split: float | None, seed: int, force: bool) -> None:
    """Write a starting configuration.json here for the images in DATASET_DIR (or listed in a .csv or .jsonl
    file with the columns path and label, and split if it says which images validate).

    DATASET_DIR holds training/ and validation/ (one folder per class in each, as the
    AITRIOS SDK has them; a missing labels.json is written beside them), or one folder
    per class: then --split writes the SDK's layout beside the configuration,
    dataset/{training,validation}/<class>/ and dataset/labels.json, a seeded,
    stratified split of hard links. Nothing in DATASET_DIR is moved, changed or
    deleted, and an existing configuration.json is kept unless --force.

    \b
    Examples:
      tl init flowers --split 0.2      # flowers/<class>/*.jpg
      tl init sdk/dataset              # sdk/dataset/{training,validation}/<class>/*.jpg
      tl init labels.csv               # path,label,split rows (--split 0.2 without a split column)
    """
    from tlcore.init import init as init_folder
    from tlcore.report import Reporter

    from tlcli.guard import guarded

    with guarded(False, "configuration.json"):
        init_folder(dataset, Reporter(), split=split, seed=seed, force=force)
