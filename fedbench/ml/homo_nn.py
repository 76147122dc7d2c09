"""A small neural network for horizontal learning: PyTorch trains it on a client, numpy scores it anywhere.

The network is declared, not imported: fully connected layers of the given widths with one activation, a
sigmoid output for two classes and a softmax for more. Its weights travel and are stored as one flat vector
(PyTorch's parameter order: each layer's weight matrix, then its bias), so the secure rounds see a vector like
any other model's, and a party scores with numpy alone (`predict_proba`), without PyTorch. PyTorch is an
optional extra (`pip install 'fedbench[torch]'`); training without it fails with that fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fedbench.errors import FedbenchError

if TYPE_CHECKING:
    import torch

__all__ = [
    "Activation",
    "NoTorch",
    "TorchTrainer",
    "initial_weights",
    "layer_sizes",
    "predict_proba",
    "weight_count",
]

Activation = Literal["relu", "tanh"]


class NoTorch(FedbenchError):
    """PyTorch is not installed on this node, and training a neural network needs it."""

    code = "no_torch"


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise NoTorch(
            "training homo_nn needs PyTorch on every party's node: pip install 'fedbench[torch]' "
            "(the CPU build, torch==2.13.0)"
        ) from None
    torch.set_num_threads(1)
    return torch


def layer_sizes(features: int, hidden: list[int], classes: int) -> list[int]:
    """The width of each layer: the features, the hidden layers, one output (binary) or one per class."""
    return [features, *hidden, 1 if classes == 2 else classes]


def weight_count(sizes: list[int]) -> int:
    """How many numbers the network has: each layer's weights and biases."""
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def _network(sizes: list[int], activation: Activation) -> torch.nn.Sequential:
    torch = _torch()
    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b, dtype=torch.float64))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU() if activation == "relu" else torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def initial_weights(sizes: list[int], activation: Activation, seed: int) -> np.ndarray:
    """PyTorch's default initialisation of the network, drawn from `seed`: the flat start every party gets."""
    torch = _torch()
    torch.manual_seed(seed)
    network = _network(sizes, activation)
    return torch.nn.utils.parameters_to_vector(network.parameters()).detach().numpy().copy()


def predict_proba(flat: np.ndarray, sizes: list[int], activation: Activation, x: np.ndarray) -> np.ndarray:
    """Each row's probability per output (sigmoid for one output, softmax for several), in numpy."""
    h = np.asarray(x, dtype=np.float64)
    at = 0
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = flat[at : at + a * b].reshape(b, a)
        bias = flat[at + a * b : at + a * b + b]
        at += a * b + b
        h = h @ w.T + bias
        if i < len(sizes) - 2:
            h = np.maximum(h, 0.0) if activation == "relu" else np.tanh(h)
    if sizes[-1] == 1:
        return 1.0 / (1.0 + np.exp(-np.clip(h, -500, 500)))
    h = h - h.max(axis=1, keepdims=True)
    e = np.exp(h)
    return e / e.sum(axis=1, keepdims=True)


class TorchTrainer:
    """The network on one client's standardised rows: mean cross-entropy, SGD epochs in our batch order."""

    def __init__(
        self,
        x: np.ndarray,
        codes: np.ndarray,
        sizes: list[int],
        activation: Activation,
        *,
        epochs: int,
        batch_size: int,
        learning_rate: float,
        weight_decay: float,
        mu: float,
    ) -> None:
        self.torch = _torch()
        self.sizes, self.activation = sizes, activation
        self.network = _network(sizes, activation)
        self.x = self.torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
        self.codes = np.asarray(codes, dtype=np.int64)
        self.epochs, self.batch_size = epochs, batch_size
        self.learning_rate, self.weight_decay, self.mu = learning_rate, weight_decay, mu

    def _load(self, flat: np.ndarray) -> None:
        vector = self.torch.from_numpy(np.asarray(flat, dtype=np.float64).copy())
        self.torch.nn.utils.vector_to_parameters(vector, self.network.parameters())

    def _loss(self, x: Any, codes: np.ndarray) -> Any:
        torch = self.torch
        out = self.network(x)
        if self.sizes[-1] == 1:
            target = torch.from_numpy(codes.astype(np.float64)).reshape(-1, 1)
            return torch.nn.functional.binary_cross_entropy_with_logits(out, target)
        return torch.nn.functional.cross_entropy(out, torch.from_numpy(codes))

    def loss(self, weights: np.ndarray) -> float:
        self._load(weights)
        with self.torch.no_grad():
            return float(self._loss(self.x, self.codes))

    def train(self, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        torch = self.torch
        self._load(weights)
        start = [p.detach().clone() for p in self.network.parameters()]
        optimizer = torch.optim.SGD(
            self.network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        rows = len(self.codes)
        for _ in range(self.epochs):
            order = rng.permutation(rows)
            for begin in range(0, rows, self.batch_size):
                batch = order[begin : begin + self.batch_size]
                optimizer.zero_grad()
                loss = self._loss(self.x[torch.from_numpy(batch)], self.codes[batch])
                if self.mu > 0:
                    loss = loss + self.mu / 2 * sum(
                        ((p - s) ** 2).sum() for p, s in zip(self.network.parameters(), start, strict=True)
                    )
                loss.backward()
                optimizer.step()
        return torch.nn.utils.parameters_to_vector(self.network.parameters()).detach().numpy().copy()
