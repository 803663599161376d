"""``posendf data ...``: the pose-data pipeline. Each subcommand lives in the module that
implements it and exposes ``register_cli(subparsers)``."""
from __future__ import annotations

import importlib

#: data subcommand modules, in help order: bvh/mocap, amass, prepare, default
SUBCOMMAND_MODULES = (
    "posendf_plugin.data.mocap_batch",
    "posendf_plugin.data.amass",
    "posendf_plugin.data.prepare",
    "posendf_plugin.data.default",
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data",
        help="build pose data: convert BVH / ASF-AMC mocap, sample AMASS, make training data",
        description=(
            "Pose-data pipeline. 'mocap' (alias 'bvh') converts mocap clips (BVH or CMU ASF/AMC, any "
            "humanoid rig) to AMASS-layout SMPL .npz files; 'amass' samples AMASS motions into train/val/test pose sets; 'prepare' "
            "draws noisy poses and labels them with their distance to a pose set; 'default' builds "
            "the embedded default pose sets from ../shared/data."
        ),
    )
    sub = parser.add_subparsers(dest="data_command", metavar="STEP")
    sub.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register_cli(sub)
