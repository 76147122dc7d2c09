"""`homo_nn`: a small neural network trained horizontally, each client holding the same columns.

The rounds are the shared horizontal ones (`horizontal.py`: column agreement, standardisation and FedAvg or
FedProx rounds through secure aggregation, each round's change a flat vector of the network's weights). The
network is declared by its hidden layers' widths and an activation (never code named by a peer); PyTorch
trains it on each client (`fedbench[torch]`), and every party ends with the same global network, which
`homo_score` applies with numpy. See docs/protocols/homo_lr.md (the same protocol, another local model).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import Field

from fedbench.components.builtin.horizontal import (
    PORTS_IN,
    PORTS_OUT,
    HorizontalParams,
    Trained,
    client_role,
    finish,
    model_record,
    quality_of,
    server_role,
)
from fedbench.components.spec import Component, register
from fedbench.federation import Context
from fedbench.ml.homo_nn import (
    Activation,
    TorchTrainer,
    initial_weights,
    layer_sizes,
    predict_proba,
    weight_count,
)

__all__ = ["HomoNNParams", "homo_nn"]


class HomoNNParams(HorizontalParams):
    """Parameters of `homo_nn`."""

    hidden_layers: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default=[16], min_length=1, max_length=8, description="the hidden layers' widths, e.g. [32, 16]"
    )
    activation: Activation = Field(default="relu", description="the hidden layers' activation")
    learning_rate: float = Field(default=0.1, gt=0.0, le=10.0, description="local SGD step size")
    batch_size: int = Field(default=32, ge=1, le=1_000_000, description="rows per local gradient step")
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0, description="L2 penalty of the local SGD")


homo_nn = register(
    Component(
        name="homo_nn",
        version="1",
        params=HomoNNParams,
        roles=("client", "server"),
        use="train",
        inputs=PORTS_IN,
        outputs=PORTS_OUT,
        description="Train a small neural network across parties holding the same columns, with secure aggregation.",
    )
)


def _sizes(params: HomoNNParams, features: int, classes: int) -> list[int]:
    return layer_sizes(features, list(params.hidden_layers), classes)


class _Trainer:
    """The network on one client's rows: PyTorch's SGD to train, numpy to measure."""

    def __init__(self, x: np.ndarray, codes: np.ndarray, classes: int, params: HomoNNParams) -> None:
        self.sizes = _sizes(params, x.shape[1], classes)
        self.activation: Activation = params.activation
        self.torch = TorchTrainer(
            x,
            codes,
            self.sizes,
            params.activation,
            epochs=params.local_epochs,
            batch_size=params.batch_size,
            learning_rate=params.learning_rate,
            weight_decay=params.weight_decay,
            mu=params.proximal,
        )

    def loss(self, weights: np.ndarray) -> float:
        return self.torch.loss(weights)

    def train(self, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.torch.train(weights, rng)

    def quality(self, weights: np.ndarray, x: np.ndarray, codes: np.ndarray) -> dict[str, float]:
        return quality_of(predict_proba(weights, self.sizes, self.activation, x), codes)


def _record(ctx: Context, params: HomoNNParams, result: Trained) -> dict[str, Any]:
    sizes = _sizes(params, len(result.features), len(result.classes))
    return model_record(
        ctx,
        "homo_nn",
        params,
        result,
        layers=sizes,
        activation=params.activation,
        weights=[float(v) for v in result.weights],
    )


@homo_nn.role("client")
def client(ctx: Context, params: HomoNNParams) -> None:
    """Agree on columns and scaling, then train the network locally each round we are chosen."""
    result = client_role(
        ctx,
        params,
        lambda features, classes: weight_count(_sizes(params, features, classes)),
        lambda x, codes, classes: _Trainer(x, codes, classes, params),
    )
    finish(ctx, _record(ctx, params, result), result.metrics)


@homo_nn.role("server")
def server(ctx: Context, params: HomoNNParams) -> None:
    """Start every party from the same network, then aggregate the rounds; keep the global network."""
    result = server_role(
        ctx,
        params,
        lambda features, classes: initial_weights(
            _sizes(params, features, classes), params.activation, params.seed
        ),
    )
    finish(ctx, _record(ctx, params, result), result.metrics)
