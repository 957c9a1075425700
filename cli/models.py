"""``tl models``: the named base models each framework builds, and what tl measured of them on the IMX500."""

from __future__ import annotations

import json
from typing import Any, Sequence

import click

from tlcli.guard import guarded
from tlcli.plugins import load_plugins, plugin_option


def _print_table(records: list[dict[str, Any]]) -> None:
    from tlcore.base_models import imx500_shown, parameters_shown

    for framework in sorted({record["framework"] for record in records}):
        rows = [("NAME", "PARAMETERS", "FEATURES", "INPUT (DEFAULT, ALLOWED)", "IMAGENET WEIGHTS", "IMX500")]
        notes = []
        for record in (record for record in records if record["framework"] == framework):
            weights = record["imagenet_weights"]
            weights_shown = "none" if not weights["available"] else "cached" if weights["cached"] else "to download"
            status = record["imx500"]
            rows.append((record["name"] + (" (default)" if record["default"] else ""),
                         parameters_shown(record["parameters"]), str(record["feature_size"]),
                         f'{record["default_size"]} ({record["min_size"]}-{record["max_size"]})', weights_shown,
                         imx500_shown(status)))
            if status is not None and status["reason"]:
                notes.append(f'  {record["name"]}: {status["reason"]}')
        converters = sorted({record["imx500"]["converter"] for record in records
                             if record["framework"] == framework and record["imx500"] and record["imx500"]["converter"]})
        click.echo(f'{framework}: "base_model" with "framework": "{framework}"'
                   + (f' (IMX500 as measured by bench/models.py with {", ".join(converters)})' if converters else ""))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            click.echo("  " + "  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths)) + "  " + row[-1])
        for note in notes:
            click.echo(note)
        click.echo("")
    click.echo('"weights": "imagenet" uses the library\'s ImageNet weights ("to download": fetched once, needs network '
               "access); null, random weights; a file, that network's weights without its head.")


@click.command()
@click.option("--framework", metavar="NAME", help="Only this framework's base models.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of objects) instead of a table.")
@plugin_option
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
def models(framework: str | None, as_json: bool, extra: Sequence[str], debug: bool) -> None:
    """List the base models each framework builds by name ("base_model"): parameters, feature size, input
    sizes, ImageNet weights, and whether each runs on the IMX500 as tl measured it."""
    from tlcore.base_models import list_bases
    from tlcore.errors import ConfigError

    with guarded(debug, "the list"):
        manager = load_plugins(extra=extra)
        records = list_bases(manager, framework)
        if framework is not None and not records:
            known = sorted({record["framework"] for record in list_bases(manager)})
            raise ConfigError(f'framework "{framework}" has no named base models; frameworks with some: '
                              f'{", ".join(known) or "none"}')
        if as_json:
            click.echo(json.dumps(records, indent=2))
        else:
            _print_table(records)
