"""The host's side of SecureBoost: encrypted histograms of its own features, and the answers at its own splits.

Per round the host receives the guest's packed, encrypted (g, h, 1) of the round's rows (`start`; multiclass:
every class's g and h in one plaintext, or in a few groups of classes), then serves the guest's commands for
the round's trees (one, or one per class, the commands naming the class) on one channel until `end`: `hist`
(for each node, the cumulative bin sums of every allowed feature, products of the rows' ciphertexts, packed
several to a ciphertext and rerandomized with our own randomness), `split` (the guest chose our feature f and
bin k with a default direction for a node: we record it, keep its threshold to ourselves and return which of
the node's rows go left) and `walk` (which rows go left at one of our recorded splits, for the guest's scoring
of the training or validation rows). Every request is checked against our own records: rows in range,
features we offered, classes the round has, splits we made (by class and node).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gmpy2 import mpz

from fedbench.crypto.paillier import EncryptedVector, PublicKey, parallel
from fedbench.federation import Context
from fedbench.ml.he_ops import received_vector
from fedbench.ml.secureboost.errors import SecureBoostError
from fedbench.ml.secureboost.layout import Layout
from fedbench.ml.trees import Binner
from fedbench.ml.trees.split import goes_left

__all__ = ["HostSplit", "HostTrainer", "bin_sums", "pack_sums"]


def bin_sums(
    ciphertexts: Sequence[mpz],
    codes: np.ndarray,
    features: Sequence[int],
    bin_counts: np.ndarray,
    public: PublicKey,
) -> list[mpz]:
    """For each of `features` (columns of `codes`, the bins of the node's rows in `ciphertexts`' order): the
    encrypted cumulative sums of bins 0..k for every bin k of present values, then the sum of the missing
    slot. The per-bin products come from the engine (`parallel.bucket_products`: on every core, columns
    taken together where that saves multiplications); the running products through the bins follow here."""
    nsq = public.nsq
    chosen = np.ascontiguousarray(codes[:, list(features)])
    # Every present bin of every feature, and the missing slot, whichever of them the node's rows fill.
    slots = [int(bin_counts[f]) + 1 for f in features]
    buckets = max([*slots, int(chosen.max()) + 1 if chosen.size else 1])
    products = parallel.bucket_products(ciphertexts, chosen, buckets, nsq)
    out: list[mpz] = []
    for f, column in zip(features, products, strict=True):
        present = int(bin_counts[f])
        acc = mpz(1)
        for product in column[:present]:
            acc = acc * product % nsq
            out.append(acc)
        missing = mpz(1)
        for product in column[present:]:
            missing = missing * product % nsq
        out.append(missing)
    return out


def pack_sums(values: Sequence[mpz], public: PublicKey, width: int) -> list[mpz]:
    """The encrypted values packed `(n_bits - 3) // width` to a ciphertext, lowest first (Horner: the
    ciphertext of v_0 + 2^w v_1 + ... is c_0 (c_1 (...)^(2^w))^(2^w)), on every core. Not rerandomized."""
    per = max(1, (public.n_bits - 3) // width)
    return parallel.pack_products(values, width, per, public.nsq)


@dataclass(frozen=True)
class HostSplit:
    """One of our splits: the guest's round, class (0 but for multiclass) and node, our feature, bin and
    default direction."""

    tree: int
    klass: int
    node: int
    feature: int
    bin: int
    default_left: bool


def _positions(obj: Any, rows: int, what: str) -> np.ndarray:
    """Row positions from the guest, checked: an integer array of positions in [0, rows)."""
    if not isinstance(obj, np.ndarray) or obj.ndim != 1 or obj.dtype.kind not in "iu":
        raise SecureBoostError(f"the guest's {what} must be an array of row positions")
    if len(obj) and (int(obj.min()) < 0 or int(obj.max()) >= rows):
        raise SecureBoostError(f"the guest's {what} name rows outside our {rows} rows")
    return obj.astype(np.int64)


@dataclass
class _Group:
    """The rows' ciphertexts of one group of classes (all the classes unless they did not fit one plaintext)."""

    layout: Layout
    ciphertexts: list[mpz | None]


@dataclass
class _Tree:
    """What we hold about the round being grown (its K trees, one per class): the rows' ciphertexts by group
    of classes, the offered features, our splits by (class, node)."""

    index: int
    classes: int = 1
    groups: list[_Group] = field(default_factory=list)
    features: frozenset[int] = frozenset()
    splits: dict[tuple[int, int], HostSplit] = field(default_factory=dict)

    def klass(self, command: dict[str, Any]) -> int:
        """The class whose tree a command is for: named (0 to K - 1) in a multiclass round, never otherwise."""
        if self.classes == 1:
            if "class" in command:
                raise SecureBoostError("the guest named a class in a round of one tree")
            return 0
        klass = command.get("class")
        if type(klass) is not int or not 0 <= klass < self.classes:
            raise SecureBoostError(
                f"the guest named class {klass!r}, not one of the round's {self.classes} classes"
            )
        return klass

    def group(self, klass: int) -> _Group:
        """The group of classes holding class `klass`."""
        for group in self.groups:
            if klass < group.layout.classes:
                return group
            klass -= group.layout.classes
        raise SecureBoostError("the guest asked for a histogram of a class it sent no gradients of")


class HostTrainer:
    """The host's whole training: bins of its features, the guest's key, one served round of trees at a time."""

    def __init__(self, x: np.ndarray, validation: np.ndarray | None, bins: int) -> None:
        self.binner = Binner.fit(x, bins)
        self.codes = {"train": self.binner.transform(x)}
        if validation is not None:
            self.codes["validation"] = self.binner.transform(validation)
        self.splits: list[HostSplit] = []
        self.public: PublicKey | None = None
        self.classes: int | None = None
        """Trees per round (the guest's classes), as its first layout gives it; every later round must agree."""

    def setup(self, ctx: Context) -> None:
        """Receive the guest's key; tell it how many features we have and the bins of each (no thresholds)."""
        guest = ctx.peer("guest")
        try:
            self.public = PublicKey.from_dict(guest.recv("sb.key"))
        except (ValueError, TypeError) as exc:
            raise SecureBoostError(f"the guest's public key is malformed: {exc}") from None
        guest.send(
            "sb.setup",
            {"features": self.binner.features, "bin_counts": self.binner.bin_counts.astype(np.int64)},
        )

    def serve(self, ctx: Context) -> int:
        """Serve every round until the guest says training is over; the number of rounds it kept."""
        for index in itertools.count():
            rctx = ctx.iter(index)
            command = rctx.peer("guest").channel("sb.tree").recv(dict, what="its tree command")
            if command.get("op") == "stop":
                kept = command.get("trees")
                if not isinstance(kept, int) or not 0 <= kept <= index:
                    raise SecureBoostError(f"the guest kept {kept!r} trees of the {index} grown")
                self.splits = [s for s in self.splits if s.tree < kept]
                return kept
            ctx.check_cancelled()
            self._tree(rctx, index, command)
        raise AssertionError("unreachable")

    def _tree(self, rctx: Context, index: int, start: dict[str, Any]) -> None:
        guest = rctx.peer("guest")
        commands = guest.channel("sb.tree")
        replies = {tag: guest.channel(tag) for tag in ("sb.hist", "sb.split", "sb.walk")}
        tree = self._start(index, start)
        while True:
            command = commands.recv(dict, what="its tree command")
            op = command.get("op")
            if op == "end":
                self.splits.extend(tree.splits.values())
                return
            if op == "hist":
                replies["sb.hist"].send(self._hist(tree, command))
            elif op == "split":
                replies["sb.split"].send(self._split(tree, command))
            elif op == "walk":
                replies["sb.walk"].send(self._walk(tree, command))
            else:
                raise SecureBoostError(f"the guest sent an unknown tree command {op!r}")

    def _start(self, index: int, command: dict[str, Any]) -> _Tree:
        if command.get("op") != "start" or set(command) != {"op", "rows", "gh", "layout", "features"}:
            raise SecureBoostError(
                "the guest's tree must begin with a start command of rows, gh, layout, features"
            )
        rows = len(self.codes["train"])
        features = _positions(command["features"], self.binner.features, "offered features")
        tree = _Tree(index, features=frozenset(features.tolist()))
        if not len(features):
            return tree
        assert self.public is not None
        public = self.public
        layouts, vectors = command["layout"], command["gh"]
        if isinstance(layouts, dict) and isinstance(vectors, dict):
            layouts, vectors = [layouts], [vectors]
        elif not (
            isinstance(layouts, list) and isinstance(vectors, list) and 2 <= len(layouts) == len(vectors)
        ):
            raise SecureBoostError(
                "the guest's start must give one layout and one encrypted vector, or a list of each per group "
                "of classes"
            )
        sampled = _positions(command["rows"], rows, "tree rows")
        for layout_obj, vector_obj in zip(layouts, vectors, strict=True):
            layout = Layout.from_dict(layout_obj, public.n_bits)
            gh = received_vector(public, vector_obj, len(sampled), "encrypted gradients", SecureBoostError)
            ciphertexts: list[mpz | None] = [None] * rows
            for position, c in zip(sampled.tolist(), gh._ct, strict=True):
                ciphertexts[position] = c
            tree.groups.append(_Group(layout, ciphertexts))
        tree.classes = sum(group.layout.classes for group in tree.groups)
        if self.classes is None:
            self.classes = tree.classes
        elif tree.classes != self.classes:
            raise SecureBoostError(
                f"the guest's round {index} packs {tree.classes} classes, its first {self.classes}: "
                "its start is malformed"
            )
        return tree

    def _hist(self, tree: _Tree, command: dict[str, Any]) -> list[dict[str, Any]]:
        if not tree.groups or not isinstance(command.get("nodes"), list):
            raise SecureBoostError("the guest asked for histograms of a tree without our features")
        assert self.public is not None
        group = tree.group(tree.klass(command))
        public, codes, layout = self.public, self.codes["train"], group.layout
        features = sorted(tree.features)
        out = []
        for obj in command["nodes"]:
            rows = _positions(obj, len(codes), "node rows")
            picked = [group.ciphertexts[i] for i in rows.tolist()]
            cts = [c for c in picked if c is not None]
            if len(cts) != len(picked):
                raise SecureBoostError("the guest asked for a histogram of rows outside the tree's rows")
            sums = bin_sums(cts, codes[rows], features, self.binner.bin_counts, public)
            packed = pack_sums(sums, public, layout.width)
            # Fresh obfuscators from our own base (never one of the guest's): the guest cannot relate the
            # reply to the ciphertexts it sent, so it learns the sums and nothing about which rows made them.
            obfuscators = public.obfuscators(len(packed))
            nsq = public.nsq
            fresh = [c * r % nsq for c, r in zip(packed, obfuscators, strict=True)]
            bound = min(public.max_int, (1 << (layout.per_ciphertext(public.n_bits) * layout.width)) - 1)
            out.append(EncryptedVector(public, fresh, 0, bound).to_dict())
        return out

    def _split(self, tree: _Tree, command: dict[str, Any]) -> list[np.ndarray]:
        requests = command.get("splits")
        if not isinstance(requests, list):
            raise SecureBoostError("the guest's split command must list its split requests")
        klass = tree.klass(command)
        codes, counts = self.codes["train"], self.binner.bin_counts
        out = []
        for request in requests:
            if not isinstance(request, dict) or set(request) != {
                "node",
                "feature",
                "bin",
                "default_left",
                "rows",
            }:
                raise SecureBoostError("a split request names node, feature, bin, default_left and rows")
            node, feature, bin, left = (request[k] for k in ("node", "feature", "bin", "default_left"))
            if not (isinstance(node, int) and node >= 0 and (klass, node) not in tree.splits):
                raise SecureBoostError(f"the guest asked to split node {node!r} twice or named no node")
            if (
                not isinstance(feature, int)
                or feature not in tree.features
                or not isinstance(bin, int)
                or not 0 <= bin < counts[feature]
            ):
                raise SecureBoostError(
                    f"the guest asked for a split on feature {feature!r} bin {bin!r}, which we did not offer"
                )
            rows = _positions(request["rows"], len(codes), "split rows")
            tree.splits[klass, node] = HostSplit(tree.index, klass, node, int(feature), bin, bool(left))
            out.append(goes_left(codes[rows, feature], bin, bool(left), self.binner.missing_bin))
        return out

    def _walk(self, tree: _Tree, command: dict[str, Any]) -> list[np.ndarray]:
        codes = self.codes.get(command.get("set"))  # type: ignore[arg-type]
        nodes, rows_list = command.get("nodes"), command.get("rows")
        if codes is None or not isinstance(nodes, list) or not isinstance(rows_list, list):
            raise SecureBoostError("the guest's walk names a row set we do not hold, or no nodes and rows")
        klass = tree.klass(command)
        out = []
        for node, obj in zip(nodes, rows_list, strict=True):
            split = tree.splits.get((klass, node)) if isinstance(node, int) else None
            if split is None:
                raise SecureBoostError(
                    f"the guest asked where rows go at node {node!r}, which is not our split"
                )
            rows = _positions(obj, len(codes), "walk rows")
            out.append(
                goes_left(codes[rows, split.feature], split.bin, split.default_left, self.binner.missing_bin)
            )
        return out

    def model_splits(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """Our kept splits as the host's model part holds them: (tree, node) and, multiclass, the class of the
        round's tree; our feature, threshold, side."""
        multiclass = (self.classes or 1) > 1
        return [
            {
                "tree": s.tree,
                **({"class": s.klass} if multiclass else {}),
                "node": s.node,
                "feature": names[s.feature],
                "threshold": self.binner.threshold(s.feature, s.bin),
                "default_left": s.default_left,
            }
            for s in self.splits
        ]
