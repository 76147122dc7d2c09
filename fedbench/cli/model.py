"""`fedbench model export|import`: one party's part of a project's model to a sealed JSON file, and back.

Both go through the running node, as its admin (like `fedbench users`), which checks the project, the party
and the seal; see `fedbench/node/models.py`.
"""

from __future__ import annotations

import argparse
from typing import Any

import fedbench

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Register `fedbench model ...`."""
    parser = sub.add_parser("model", help="export a project's model to a file, or import one")
    actions = parser.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="write our party's part of a model artifact to a JSON file")
    export.add_argument("artifact", help="the model artifact's id (see project.artifacts())")
    export.add_argument("path", help="the file to write")
    export.set_defaults(func=_export)
    load = actions.add_parser("import", help="store a model file of this project as a new model artifact")
    load.add_argument("path", help="a file written by `fedbench model export` or project.export_model")
    load.add_argument("--name", default=None, help="the artifact's name (default: the exported one's)")
    load.set_defaults(func=_import)
    for action in (export, load):
        action.add_argument("--project", required=True, help="the project's name")
        action.add_argument("--home", default=None, help="a node home or a sandbox home")
        action.add_argument("--party", default=None, help="the party, in a sandbox home (default: the first)")


def _project(args: argparse.Namespace) -> fedbench.Project:
    return fedbench.connect(args.party, args.home).project(args.project)


def _export(args: argparse.Namespace) -> int:
    path = _project(args).export_model(args.artifact, args.path)
    print(f"exported {args.artifact} to {path}")
    return 0


def _import(args: argparse.Namespace) -> int:
    output = _project(args).import_model(args.path, name=args.name)
    print(f"imported {args.path} as artifact {output.id}; use it as a step input: {output.as_ref()}")
    return 0
