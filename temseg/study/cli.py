"""``temseg study`` on the command line: the sweep's own flags plus the folder's."""

from __future__ import annotations

import argparse

DOC = """\
From a folder of micrographs with masks to a recommended network and particle sizes.

Pairs every image in FOLDER with its mask (<stem>_mask.* or <stem>_label.*, as temseg ingest
--folder), checks them all, ingests them into OUT/<folder>.zarr, runs the receptive-field grid
on it (the profile sized for this machine: the laptop grid 'demo' on CPUs, the paper's grid
with GPUs or a Ray cluster; --profile overrides), writes the report (OUT/report/), registers
the recommended network (models:/temseg-<folder>@recommended in OUT/mlruns.db unless
--tracking-uri), segments every image (and those of --segment-folder) with it and writes
OUT/index.html: the network with its test dice and interval, and the particle sizes.

examples:
  temseg study my_images/ --out my_study/ --dry-run    # the plan and its estimated time
  temseg study my_images/ --out my_study/              # run it (again: continues)
  temseg study my_images/ --out my_study/ --profile smoke --flat-field
  temseg study my_images/ --out s/ --address HEAD:6379 --tracking-uri http://mlflow:5000 \\
      --storage-path /shared/ray_results --gpus-per-trial 0.25

A bad folder (no pairs, a mask without an image, an unreadable file, mixed pixel sizes without
--resample) is refused with one line naming the file, exit 2, before anything is written.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="images and their masks (<stem>_mask.* / <stem>_label.*)")
    p.add_argument("--out", required=True, help="study folder (created; the same again continues)")
    g = p.add_argument_group("the folder")
    g.add_argument("--mask-folder", help="masks named <stem>.* in this folder instead")
    g.add_argument(
        "--segment-folder",
        metavar="DIR",
        help="more images, without masks, to segment with the recommended network",
    )
    g.add_argument(
        "--pixel-size-nm",
        type=float,
        help="pixel size of every image (overrides the files'; needed for PNG / plain TIFF)",
    )
    g.add_argument(
        "--resample",
        action="store_true",
        help="resample images of other (or non-square) pixel sizes onto the finest one "
        "instead of refusing them; segment images off the network's pixel size resampled",
    )
    g.add_argument(
        "--xray-threshold",
        type=float,
        help="x-ray outliers: counts above median + T (default 1500 HR, 400 LR by pixel size)",
    )
    g.add_argument(
        "--patch-size",
        type=int,
        help="patch side in px for the store (default: the profile's, e.g. 192 for demo)",
    )
    from temseg.data.cli_args import add_flat_field_arg

    add_flat_field_arg(g)
    g = p.add_argument_group("grid (defaults: the profile's)")
    g.add_argument("--seeds", nargs="+", type=int, help="training seeds")
    g.add_argument("--epochs", type=int, help="epochs per trial (>= 1)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``study`` to the ``temseg`` command line (arguments only; nothing heavy imported)."""
    from temseg.sweep.cli import common_parser

    title, epilog = DOC.split("\n\n", 1)
    p = sub.add_parser(
        "study",
        help="folder of micrographs + masks -> recommended network and particle sizes",
        description=title,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_parser()],
    )
    add_arguments(p)
    # no default profile: the study chooses one for the machine (temseg.study.plan)
    p.set_defaults(profile=None, func=_cmd_study)


def _cmd_study(args: argparse.Namespace) -> int:
    from temseg.study.run import run_study

    return run_study(args)
