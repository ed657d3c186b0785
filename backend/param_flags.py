"""Command-line flags derived from the job params spec (videoscene_protocol.params).

`add_param_flags(parser, spec)` adds one flag per param (`--memory-mode`, `--leap-timestep`,
`--refine/--no-refine`, ...) with the spec's choices and help; `params_from_flags` gives back
only the params the user set, so the backend applies the spec's defaults and checks. Nothing is
validated here beyond argparse's parsing: the backend validates every job's params itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from videoscene_protocol.params import JobSpec, Param


def flag_name(param: Param) -> str:
    return "--" + param.name.replace("_", "-")


def _help(param: Param) -> str:
    text = f"{param.doc}: {param.describe().removesuffix(' or null')}"
    if param.nullable:
        text += f" (default: {param.null_doc})"
    elif param.kind != "bool":
        text += f" (default {param.default})"
    return text.replace("%", "%%")


def add_param_flags(
    parser: argparse.ArgumentParser, spec: JobSpec, skip: Iterable[str] = ()
) -> None:
    """One flag per param of `spec` that is not in `skip`; every flag defaults to "not given"."""
    group = parser.add_argument_group(f"{spec.kind} params (docs/protocol.md)")
    skipped = set(skip)
    for param in spec.params:
        if param.name in skipped:
            continue
        flag, options = flag_name(param), {"dest": param.name, "default": None}
        if param.kind == "bool":
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, help=param.doc, **options
            )
        elif param.kind == "choice":
            group.add_argument(flag, choices=param.values, help=_help(param), **options)
        elif param.kind == "color":
            group.add_argument(
                flag, type=float, nargs=3, metavar=("R", "G", "B"), help=_help(param), **options
            )
        else:
            kind = {"int": int, "float": float, "id": str}[param.kind]
            group.add_argument(flag, type=kind, help=_help(param), **options)


def params_from_flags(args: argparse.Namespace, spec: JobSpec) -> dict:
    """The params the user gave on the command line (absent ones take the spec's defaults)."""
    given = {}
    for param in spec.params:
        value = getattr(args, param.name, None)
        if value is not None:
            given[param.name] = list(value) if param.kind == "color" else value
    return given
