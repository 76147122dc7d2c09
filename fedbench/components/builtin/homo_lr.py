"""`homo_lr`: horizontal logistic regression, each client holding the same columns for different customers.

The rounds are the shared horizontal ones (`horizontal.py`: column agreement, standardisation and FedAvg or
FedProx rounds through secure aggregation); this module adds the model: binary labels use the sigmoid, more
classes the softmax, trained locally by mini-batch gradient descent with an optional L2 penalty. Every party
ends with the same global model. See docs/protocols/homo_lr.md.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from fedbench.components.builtin.horizontal import (
    PORTS_IN,
    PORTS_OUT,
    HorizontalError,
    HorizontalParams,
    client_role,
    finish,
    model_record,
    quality_of,
    server_role,
)
from fedbench.components.spec import Component, register
from fedbench.federation import Context
from fedbench.ml.homo_lr import LocalData, local_update, log_loss, predict_proba, weight_shape

__all__ = ["HomoLRError", "HomoLRParams", "homo_lr"]

HomoLRError = HorizontalError
"""What `homo_lr` raises: the horizontal models' error."""


class HomoLRParams(HorizontalParams):
    """Parameters of `homo_lr`."""

    l2: float = Field(
        default=0.0, ge=0.0, le=100.0, description="L2 penalty on the weights (not the intercept)"
    )


homo_lr = register(
    Component(
        name="homo_lr",
        version="1",
        params=HomoLRParams,
        roles=("client", "server"),
        use="train",
        inputs=PORTS_IN,
        outputs=PORTS_OUT,
        description="Train a logistic regression across parties holding the same columns, with secure aggregation.",
    )
)


def _size(features: int, classes: int) -> int:
    rows, columns = weight_shape(features, classes)
    return rows * columns


class _Trainer:
    """Logistic regression on one client's standardised rows (weights flat on the wire, shaped here)."""

    def __init__(self, x: np.ndarray, codes: np.ndarray, classes: int, params: HomoLRParams) -> None:
        self.shape = weight_shape(x.shape[1], classes)
        self.data = LocalData.build(x, codes, np.zeros(x.shape[1]), np.ones(x.shape[1]), self.shape[1])
        self.params = params

    def loss(self, weights: np.ndarray) -> float:
        return log_loss(weights.reshape(self.shape), self.data, self.params.l2)

    def train(self, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        params = self.params
        local = local_update(
            weights.reshape(self.shape),
            self.data,
            epochs=params.local_epochs,
            batch_size=params.batch_size,
            learning_rate=params.learning_rate,
            l2=params.l2,
            mu=params.proximal,
            rng=rng,
        )
        return local.ravel()

    def quality(self, weights: np.ndarray, x: np.ndarray, codes: np.ndarray) -> dict[str, float]:
        rows = np.hstack([x, np.ones((len(x), 1))])
        return quality_of(predict_proba(weights.reshape(self.shape), rows), codes)


def _weights(flat: np.ndarray, features: int, classes: int) -> list[list[float]]:
    return [[float(v) for v in row] for row in flat.reshape(weight_shape(features, classes))]


@homo_lr.role("client")
def client(ctx: Context, params: HomoLRParams) -> None:
    """Agree on columns and scaling, then train locally each round we are chosen; keep the global model."""
    result = client_role(ctx, params, _size, lambda x, codes, classes: _Trainer(x, codes, classes, params))
    weights = _weights(result.weights, len(result.features), len(result.classes))
    finish(ctx, model_record(ctx, "homo_lr", params, result, weights=weights), result.metrics)


@homo_lr.role("server")
def server(ctx: Context, params: HomoLRParams) -> None:
    """Check the clients agree, run the statistics rounds, then the training rounds; keep the global model."""
    result = server_role(ctx, params, lambda features, classes: np.zeros(_size(features, classes)))
    weights = _weights(result.weights, len(result.features), len(result.classes))
    finish(ctx, model_record(ctx, "homo_lr", params, result, weights=weights), result.metrics)
