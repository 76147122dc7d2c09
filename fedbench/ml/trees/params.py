"""The params of a boosted-tree model (`TreeParams`), checked so that a bad value names its fix.

One pydantic model feeds the plaintext booster here and, later, the federated SecureBoost component and its
form. `tree_params` turns pydantic's validation error into our `TreeParamsError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from fedbench.ml.trees.errors import TreeParamsError

__all__ = ["GossParams", "TreeParams", "tree_params"]

Objective = Literal["binary", "multiclass", "regression"]


class GossParams(BaseModel):
    """Gradient-based one-side sampling: keep the `top_rate` share of rows with the largest gradients and a
    random `other_rate` share of the others, whose gradients are scaled up by (1 - top_rate) / other_rate."""

    model_config = {"extra": "forbid", "frozen": True}

    top_rate: float = Field(default=0.2, gt=0.0, lt=1.0, description="share of rows kept by largest gradient")
    other_rate: float = Field(default=0.1, gt=0.0, lt=1.0, description="share of rows drawn from the rest")

    @model_validator(mode="after")
    def _rates_fit(self) -> GossParams:
        if self.top_rate + self.other_rate > 1.0:
            raise ValueError(
                f"goss keeps top_rate + other_rate of the rows, here {self.top_rate + self.other_rate:g}; "
                "lower them to a sum of at most 1"
            )
        return self


class TreeParams(BaseModel):
    """Parameters of gradient-boosted trees (XGBoost's names where it has one; `trees` counts rounds)."""

    model_config = {"extra": "forbid", "frozen": True}

    trees: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description="boosting rounds, 1 to 10000 (multiclass: one tree per class each)",
    )
    max_depth: int = Field(default=3, ge=1, le=16, description="depth of each tree, 1 to 16")
    learning_rate: float = Field(
        default=0.3, gt=0.0, le=1.0, description="shrinkage of each tree's leaf values, above 0 and at most 1"
    )
    bins: int = Field(
        default=32,
        ge=2,
        le=1024,
        description="quantile bins per feature, 2 to 1024; missing values get a slot of their own",
    )
    min_child_weight: float = Field(
        default=1.0, ge=0.0, le=1e6, description="least sum of hessians in each child of a split, 0 or more"
    )
    min_rows_per_leaf: int = Field(
        default=1, ge=1, le=10_000_000, description="least training rows in each child of a split, 1 or more"
    )
    reg_lambda: float = Field(default=1.0, ge=0.0, le=1e6, description="L2 penalty on leaf values, 0 or more")
    gamma: float = Field(
        default=0.0, ge=0.0, le=1e6, description="least gain a split must bring (XGBoost's min_split_loss)"
    )
    subsample: float = Field(
        default=1.0, gt=0.0, le=1.0, description="share of rows drawn for each round, above 0 and at most 1"
    )
    goss: GossParams | None = Field(
        default=None, description="gradient-based one-side sampling instead of subsample; none: off"
    )
    colsample: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="share of features drawn for each round, above 0 and at most 1",
    )
    early_stopping_rounds: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="stop once the validation metric has not improved for this many rounds; 0: off",
    )
    objective: Objective = Field(
        default="binary", description="binary (logistic), multiclass (softmax) or regression (squared error)"
    )
    num_class: int | None = Field(
        default=None, ge=2, le=1000, description="classes of a multiclass objective; unset for the others"
    )
    complete_secure: bool = Field(
        default=False, description="the first tree splits on the guest's features only"
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="seed of row and feature sampling")

    @model_validator(mode="after")
    def _consistent(self) -> TreeParams:
        if self.objective == "multiclass" and self.num_class is None:
            raise ValueError("objective 'multiclass' needs the number of classes: set num_class")
        if self.objective != "multiclass" and self.num_class is not None:
            raise ValueError(
                f"num_class is for objective 'multiclass'; leave num_class unset for {self.objective!r}"
            )
        if self.goss is not None and self.subsample < 1.0:
            raise ValueError(
                "goss and subsample both draw rows; use either goss or subsample below 1, not both"
            )
        return self

    @property
    def outputs(self) -> int:
        """Trees per round (and margins per row): the classes of a multiclass objective, else 1."""
        return int(self.num_class) if self.objective == "multiclass" and self.num_class else 1


def tree_params(values: TreeParams | Mapping[str, Any]) -> TreeParams:
    """`values` checked as `TreeParams`, or `TreeParamsError` naming each bad param, its problem and its range."""
    if isinstance(values, TreeParams):
        return values
    try:
        return TreeParams.model_validate(dict(values))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [str(p) for p in error["loc"]]
            where = ".".join(loc)
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                model = GossParams if loc[0] == "goss" and len(loc) > 1 else TreeParams
                message = (
                    f"{where} is not a param here; drop it (the params are {sorted(model.model_fields)})"
                )
            elif error["type"] != "value_error" and loc:
                field = TreeParams.model_fields.get(loc[0])
                if len(loc) > 1 and loc[0] == "goss":
                    field = GossParams.model_fields.get(loc[-1])
                hint = f" ({field.description})" if field is not None and field.description else ""
                message = f"{where}: {message}; change {where}{hint}"
            problems.append(message)
        raise TreeParamsError("bad boosted-tree params: " + "; ".join(problems)) from None
