"""Test components that only nodes load (`component_modules`), never the kernel: a step that fails with a chosen
error class on a chosen party (to see the error's class reach the notebook), and a step with one parameter of
each kind a form shows (to build its form from the node's schema alone)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from fedbench.components import Component, Context, Port, register
from fedbench.components.spec import ParamsError
from fedbench.errors import FedbenchError, Refused
from fedbench.psi.errors import PsiRefused


class PluginOnlyError(FedbenchError):
    """An error class the kernel does not know (its module is loaded by the nodes only)."""

    code = "plugin_only"


_ERRORS: dict[str, type[FedbenchError]] = {
    "psi_refused": PsiRefused,
    "params": ParamsError,
    "refused": Refused,
    "plugin_only": PluginOnlyError,
}


class FailAsParams(BaseModel):
    """Which party fails, and with which error class."""

    party: str = "host"
    error: Literal["psi_refused", "params", "refused", "plugin_only"] = "psi_refused"


fail_as = register(
    Component(
        name="fail_as",
        version="1",
        params=FailAsParams,
        roles=("guest", "host"),
        use="train",
        inputs=(Port("data", "table"),),
        outputs=(Port("metrics", "metrics"),),
        description="Fail on one party with the chosen error class; the other party succeeds.",
    )
)


def _fail_or_count(ctx: Context, params: FailAsParams) -> None:
    if ctx.party == params.party:
        raise _ERRORS[params.error](f"{params.error} raised on purpose by {ctx.party}")
    ctx.output("metrics", {"rows": len(ctx.input("data"))})


fail_as.role("guest")(_fail_or_count)
fail_as.role("host")(_fail_or_count)


class TallyParams(BaseModel):
    """One parameter of each kind a form shows."""

    model_config = {"extra": "forbid"}

    times: int = Field(default=2, ge=1, le=5, description="how many times each row counts")
    scale: float | None = Field(default=None, gt=0, description="an optional factor applied to the total")
    mode: Literal["plain", "doubled"] = Field(default="plain", description="how to count")
    label: str = Field(default="tally", min_length=1, description="the name of the result")
    verbose: bool = False


tally = register(
    Component(
        name="tally",
        version="1",
        params=TallyParams,
        roles=("guest", "host"),
        use="train",
        inputs=(Port("data", "table", "each party's rows"),),
        outputs=(Port("metrics", "metrics", "the tally per party"),),
        description="Count each party's rows a few times over (a component only the nodes know).",
    )
)


def _tally(ctx: Context, params: TallyParams) -> None:
    total = len(ctx.input("data")) * params.times * (2 if params.mode == "doubled" else 1)
    ctx.output("metrics", {params.label: total * (params.scale or 1.0), "party": ctx.party})


tally.role("guest")(_tally)
tally.role("host")(_tally)
