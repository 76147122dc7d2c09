"""The guest's side of SecureBoost: the plaintext booster's rounds with the host's features behind the protocol.

The guest holds the labels, so it computes every row's g and h, draws the round's rows and features exactly as
`ml.trees.Booster` does, and grows each tree with `grow_tree_on` over a `FederatedData`: its own features'
histograms in plaintext, the host's from decrypted encrypted sums, and the partition at a host split from the
host's answer. Multiclass grows one tree per class each round from one encryption per row of every class's
(g, h) (`layout`): the host's sums of any rows carry every class's, and the commands of a class's tree name
the class. Leaf values and the guest's own splits never leave the guest. After each tree the training (and
validation) rows walk the tree, the host answering at its own splits, so the margins are those of the plaintext
booster on the joined rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedbench.crypto.paillier import ObfuscatorPool, PrivateKey, generate_keypair
from fedbench.federation import Channel, Context
from fedbench.ml.he_ops import received_vector
from fedbench.ml.secureboost.errors import SecureBoostError
from fedbench.ml.secureboost.layout import GhEncoding, fit_groups, unpack_values
from fedbench.ml.trees import Binner, Tree, TreeParams
from fedbench.ml.trees.histogram import Histogram, build_histograms
from fedbench.ml.trees.objectives import objective_for
from fedbench.ml.trees.sampling import feature_sample, round_rng, round_rows
from fedbench.ml.trees.split import Split, goes_left
from fedbench.ml.trees.tree import grow_tree_on

__all__ = ["FederatedData", "GuestResult", "GuestTrainer"]


class _Round:
    """One round's exchange with the host (its tree, or its K trees one after the other): the command channel
    and the reply channels."""

    def __init__(self, rctx: Context) -> None:
        host = rctx.peer("host")
        self.commands: Channel = host.channel("sb.tree")
        self.replies = {tag: host.channel(tag) for tag in ("sb.hist", "sb.split", "sb.walk")}

    def ask(self, command: dict[str, Any], reply: str, count: int) -> list[Any]:
        """Send a command and receive its reply: a list of `count` items."""
        self.commands.send(command)
        answer = self.replies[reply].recv(list, what=f"its {reply!r} reply")
        if len(answer) != count:
            raise SecureBoostError(f"the host answered {len(answer)} items to a {command['op']} of {count}")
        return answer


def _sides(answer: Any, rows: int) -> np.ndarray:
    if not isinstance(answer, np.ndarray) or answer.dtype != bool or answer.shape != (rows,):
        raise SecureBoostError(f"the host's answer of which rows go left must be {rows} true/false values")
    return answer


def _with_class(command: dict[str, Any], klass: int | None) -> dict[str, Any]:
    """The command naming the class's tree (multiclass only: binary and regression commands name none)."""
    return command if klass is None else {**command, "class": klass}


def _differences(values: list[int], counts: Sequence[int]) -> list[int]:
    """Per-bin sums from the host's cumulative ones: for each feature of `counts[f]` present bins, the bins'
    differences of consecutive cumulative sums, then the missing slot's sum as it is."""
    out: list[int] = []
    at = 0
    for present in counts:
        previous = 0
        for value in values[at : at + present]:
            out.append(value - previous)
            previous = value
        out.append(values[at + present])
        at += present + 1
    return out


@dataclass
class _HostSums:
    """The host's features in one round, shared by the round's K trees: the classes' encodings (one group, or
    several when the classes do not fit one plaintext) and the decrypted root histograms of every class, asked
    for once per group since the K roots hold the same rows."""

    round: _Round
    private: PrivateKey
    missing_bin: int
    host_bin_counts: np.ndarray
    host_features: np.ndarray
    rows: np.ndarray
    classes: int
    groups: list[GhEncoding] = field(default_factory=list)
    roots: dict[int, list[Histogram]] = field(default_factory=dict)

    def klass(self, klass: int) -> int | None:
        """The class as commands name it: none with one class (the binary and regression wire format)."""
        return None if self.classes == 1 else klass

    def _group(self, klass: int) -> tuple[int, int]:
        """The group holding class `klass`, and the class's position in it."""
        for index, encoding in enumerate(self.groups):
            if klass < encoding.layout.classes:
                return index, klass
            klass -= encoding.layout.classes
        raise AssertionError("every class is in a group")

    def histograms(self, klass: int, node_rows: Sequence[np.ndarray]) -> list[Histogram]:
        """The host's histograms of class `klass` at each node (zero where no host feature is offered)."""
        shape = (len(self.host_bin_counts), self.missing_bin + 1)
        if not len(self.host_features) or not node_rows:
            return [
                Histogram(np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=np.int64))
                for _ in node_rows
            ]
        group, position = self._group(klass)
        root = [np.array_equal(rows, self.rows) for rows in node_rows]
        asked = [
            rows
            for rows, is_root in zip(node_rows, root, strict=True)
            if not (is_root and group in self.roots)
        ]
        found: list[list[Histogram]] = []
        if asked:
            command = _with_class({"op": "hist", "nodes": list(asked)}, self.klass(klass))
            answer = self.round.ask(command, "sb.hist", len(asked))
            found = [self._decrypt(group, obj, len(rows)) for obj, rows in zip(answer, asked, strict=True)]
        out = []
        for is_root in root:
            if is_root and group in self.roots:
                out.append(self.roots[group][position])
                continue
            hists = found.pop(0)
            if is_root:
                self.roots[group] = hists
            out.append(hists[position])
        return out

    def _decrypt(self, group: int, obj: Any, rows: int) -> list[Histogram]:
        """The host's histogram of one node for every class of `group`: decrypted, unpacked, checked against
        the node's row count."""
        public, encoding = self.private.public, self.groups[group]
        layout = encoding.layout
        counts = self.host_bin_counts[self.host_features].tolist()
        values = int(sum(counts) + len(counts))
        per = layout.per_ciphertext(public.n_bits)
        vector = received_vector(public, obj, -(-values // per), "histogram", SecureBoostError)
        flat = unpack_values(self.private.decrypt_encoded(vector), layout.width, per, values)
        count_sums, per_class = encoding.decode(flat)
        cells = _differences(count_sums, counts)
        if min(cells, default=0) < 0:
            raise SecureBoostError("the host's cumulative counts decrease: its histogram is malformed")
        places: list[tuple[int, int]] = []
        at = 0
        for f, present in zip(self.host_features.tolist(), counts, strict=True):
            places.extend((f, slot) for slot in [*range(present), self.missing_bin])
            total = sum(cells[at : at + present + 1])
            if total != rows:
                raise SecureBoostError(
                    f"the host's histogram of feature host:{f} counts {total} rows in a node of {rows}: its "
                    "reply is malformed"
                )
            at += present + 1
        shape = (len(self.host_bin_counts), self.missing_bin + 1)
        count = np.zeros(shape, dtype=np.int64)
        for (f, slot), c in zip(places, cells, strict=True):
            count[f, slot] = c
        out = []
        for position, (grad_sums, hess_sums) in enumerate(per_class):
            grad, hess = np.zeros(shape), np.zeros(shape)
            for (f, slot), dg, dh, c in zip(
                places, _differences(grad_sums, counts), _differences(hess_sums, counts), cells, strict=True
            ):
                grad[f, slot], hess[f, slot] = encoding.real(position, dg, dh, c)
            out.append(Histogram(grad, hess, count))
        return out


@dataclass
class FederatedData:
    """`TreeData` of one tree (class `klass` of a round): the guest's bins here, the host's features through
    the protocol."""

    host: _HostSums
    klass: int
    codes: np.ndarray
    missing_bin: int
    grad: np.ndarray
    hess: np.ndarray

    @property
    def guest_features(self) -> int:
        return self.codes.shape[1]

    def histograms(self, node_rows: Sequence[np.ndarray]) -> list[Histogram]:
        """Our features' histograms in plaintext, beside the host's decrypted ones (zero where not offered)."""
        ours = build_histograms(self.codes, self.missing_bin, self.grad, self.hess, node_rows)
        theirs = self.host.histograms(self.klass, node_rows)
        return [
            Histogram(np.vstack([a.grad, b.grad]), np.vstack([a.hess, b.hess]), np.vstack([a.count, b.count]))
            for a, b in zip(ours, theirs, strict=True)
        ]

    def partition(self, splits: Sequence[tuple[int, np.ndarray, Split]]) -> list[np.ndarray]:
        """Our splits from our bins; the host's by one request naming its feature id, bin and direction."""
        out: list[np.ndarray | None] = []
        requests, asked = [], []
        for i, (node, rows, split) in enumerate(splits):
            if split.feature < self.guest_features:
                out.append(
                    goes_left(
                        self.codes[rows, split.feature], split.bin, split.default_left, self.missing_bin
                    )
                )
                continue
            out.append(None)
            asked.append(i)
            requests.append(
                {
                    "node": int(node),
                    "feature": int(split.feature - self.guest_features),
                    "bin": int(split.bin),
                    "default_left": bool(split.default_left),
                    "rows": np.asarray(rows, dtype=np.int64),
                }
            )
        if requests:
            command = _with_class({"op": "split", "splits": requests}, self.host.klass(self.klass))
            answer = self.host.round.ask(command, "sb.split", len(requests))
            for i, sides in zip(asked, answer, strict=True):
                out[i] = _sides(sides, len(splits[i][1]))
        return [o for o in out if o is not None]


def walk(
    tree: Tree, round: _Round, which: str, codes: np.ndarray, missing_bin: int, klass: int | None = None
) -> np.ndarray:
    """The leaf of every row of `codes` (the training or validation rows), one level at a time: our splits
    from our bins, the host's by one `walk` request per level naming only its node ids and the rows there
    (and, multiclass, the class whose tree it is)."""
    guest_features = codes.shape[1]
    node = np.zeros(len(codes), dtype=np.int64)
    while True:
        inner = np.nonzero(tree.feature[node] >= 0)[0]
        if not len(inner):
            return node
        at = node[inner]
        feature = tree.feature[at]
        left = np.zeros(len(inner), dtype=bool)
        mine = feature < guest_features
        left[mine] = goes_left(
            codes[inner[mine], feature[mine]], tree.bin[at[mine]], tree.default_left[at[mine]], missing_bin
        )
        theirs = np.flatnonzero(~mine)
        if len(theirs):
            nodes = np.unique(at[theirs]).tolist()
            groups = [theirs[at[theirs] == n] for n in nodes]
            command = {"op": "walk", "set": which, "nodes": nodes, "rows": [inner[g] for g in groups]}
            answer = round.ask(_with_class(command, klass), "sb.walk", len(nodes))
            for group, sides in zip(groups, answer, strict=True):
                left[group] = _sides(sides, len(group))
        node[inner] = np.where(left, tree.left[at], tree.right[at])


@dataclass
class GuestResult:
    """What training produced on the guest: the trees (one list per round), margins, history, timing."""

    binner: Binner
    base_margin: np.ndarray
    trees: list[list[Tree]]
    margin: np.ndarray
    validation_margin: np.ndarray | None
    train_loss: list[float] = field(default_factory=list)
    history: list[float] = field(default_factory=list)
    best_round: int | None = None
    seconds: list[float] = field(default_factory=list)


class GuestTrainer:
    """The guest's training: key, setup with the host, then `Booster.fit`'s rounds over the protocol."""

    def __init__(self, params: TreeParams, key_bits: int, *, row_seed: int | None = None) -> None:
        self.params = params
        self.key_bits = key_bits
        self.row_seed = params.seed if row_seed is None else row_seed
        """The seed of the rounds' row draws: the component passes one only our node can derive."""
        self.objective = objective_for(params)
        self.host_features = 0
        """How many features the host has (known after `setup`); the guest sees them as host:0, host:1, ..."""

    def setup(self, ctx: Context) -> tuple[PrivateKey, np.ndarray]:
        """Make our key, send its public part; the host's bins per feature (its feature count is their length)."""
        public, private = generate_keypair(bits=self.key_bits)
        host = ctx.peer("host")
        host.send("sb.key", public.to_dict())
        setup = host.recv("sb.setup", dict)
        counts = setup.get("bin_counts")
        if (
            not isinstance(counts, np.ndarray)
            or counts.dtype.kind not in "iu"
            or counts.ndim != 1
            or len(counts) != setup.get("features")
            or not len(counts)
            or int(counts.min()) < 1
            or int(counts.max()) > self.params.bins
        ):
            raise SecureBoostError(
                f"the host's setup must give the bins of each of its features, 1 to {self.params.bins} each"
            )
        self.host_features = len(counts)
        return private, counts.astype(np.int64)

    def fit(
        self,
        ctx: Context,
        x: np.ndarray,
        labels: np.ndarray,
        validation: tuple[np.ndarray, np.ndarray] | None,
    ) -> GuestResult:
        """Train with the host on our rows `x` (NaN: missing) and `labels`; `validation` is scored each round."""
        params, objective = self.params, self.objective
        private, host_counts = self.setup(ctx)
        guest_features = x.shape[1]
        features = guest_features + len(host_counts)
        binner = Binner.fit(x, params.bins)
        codes = binner.transform(x)
        bin_counts = np.concatenate([binner.bin_counts, host_counts])
        base = objective.base_margin(labels)
        result = GuestResult(binner, base, [], np.tile(base, (len(x), 1)), None)
        vcodes = None
        if validation is not None:
            vcodes = binner.transform(validation[0])
            result.validation_margin = np.tile(base, (len(vcodes), 1))
        every = np.arange(features)
        first = np.arange(guest_features) if params.complete_secure else every
        classes = objective.outputs
        unit = "tree" if classes == 1 else "round"
        contributions: list[tuple[np.ndarray, np.ndarray | None]] = []
        # Obfuscators for the next round's encryption are made while we wait for the host; none past the last.
        with ObfuscatorPool(private, size=max(len(x), 1), total=len(x) * params.trees) as pool:
            for index in range(params.trees):
                started = time.perf_counter()
                rctx = ctx.iter(index)
                grad, hess = objective.gradients(labels, result.margin)
                rows, weights = round_rows(params, index, grad, self.row_seed)
                allowed = np.zeros(features, dtype=bool)
                candidates = first if index == 0 else every
                allowed[feature_sample(candidates, params.colsample, round_rng(params.seed, index, 1))] = True
                g, h = np.zeros((len(x), classes)), np.zeros((len(x), classes))
                g[rows], h[rows] = grad[rows] * weights[:, None], hess[rows] * weights[:, None]
                round = _Round(rctx)
                host = self._start(
                    round, private, pool, binner, g, h, rows, host_counts, allowed[guest_features:]
                )
                trees = []
                step, vstep = np.zeros((len(x), classes)), None
                if vcodes is not None:
                    vstep = np.zeros((len(vcodes), classes))
                for k in range(classes):
                    data = FederatedData(host, k, codes, binner.missing_bin, g[:, k], h[:, k])
                    tree = grow_tree_on(data, bin_counts, g[:, k], h[:, k], rows, allowed, params)
                    klass = host.klass(k)
                    step[:, k] = tree.value[walk(tree, round, "train", codes, binner.missing_bin, klass)]
                    if vcodes is not None and vstep is not None:
                        leaves = walk(tree, round, "validation", vcodes, binner.missing_bin, klass)
                        vstep[:, k] = tree.value[leaves]
                    trees.append(tree)
                round.commands.send({"op": "end"})
                result.trees.append(trees)
                contributions.append((step, vstep))
                result.margin += step
                result.train_loss.append(objective.metric(labels, result.margin))
                ctx.metrics.log("train_loss", result.train_loss[-1], step=index)
                result.seconds.append(time.perf_counter() - started)
                ctx.progress(
                    0.05 + 0.85 * (index + 1) / params.trees, f"{unit} {index + 1} of {params.trees}"
                )
                if validation is not None and vstep is not None and result.validation_margin is not None:
                    result.validation_margin += vstep
                    if self._stop(ctx, index, result, validation[1]):
                        break
        if params.early_stopping_rounds and result.best_round is not None:
            kept = result.best_round + 1
            del result.trees[kept:]
            result.margin = np.tile(base, (len(x), 1))
            for step, _ in contributions[:kept]:
                result.margin += step
            if result.validation_margin is not None:
                result.validation_margin = np.tile(base, (len(result.validation_margin), 1))
                for _, vstep in contributions[:kept]:
                    assert vstep is not None
                    result.validation_margin += vstep
        ctx.iter(len(contributions)).peer("host").channel("sb.tree").send(
            {"op": "stop", "trees": len(result.trees)}
        )
        return result

    def _start(
        self,
        round: _Round,
        private: PrivateKey,
        pool: ObfuscatorPool,
        binner: Binner,
        g: np.ndarray,
        h: np.ndarray,
        rows: np.ndarray,
        host_counts: np.ndarray,
        host_allowed: np.ndarray,
    ) -> _HostSums:
        """Begin a round: encrypt the rows' packed (count, g and h of every class) once and send them, unless no
        host feature is offered. One ciphertext per row, or one per row and group when the classes do not fit
        one plaintext of our key."""
        offered = np.flatnonzero(host_allowed).astype(np.int64)
        host = _HostSums(round, private, binner.missing_bin, host_counts, offered, rows, g.shape[1])
        command: dict[str, Any] = {"op": "start", "rows": rows.astype(np.int64), "gh": None, "layout": None}
        if len(offered):
            fitted = fit_groups(g[rows], h[rows], private.public.n_bits)
            host.groups = [encoding for encoding, _ in fitted]
            sent = [private.encrypt_encoded(packed, 0, pool=pool).to_dict() for _, packed in fitted]
            layouts = [encoding.layout.to_dict() for encoding in host.groups]
            if len(fitted) == 1:
                command.update(gh=sent[0], layout=layouts[0])
            else:
                command.update(gh=sent, layout=layouts)
        else:
            command["rows"] = np.zeros(0, dtype=np.int64)
        command["features"] = offered
        round.commands.send(command)
        return host

    def _stop(self, ctx: Context, index: int, result: GuestResult, labels: np.ndarray) -> bool:
        """Record the validation metric after tree `index`; whether early stopping ends training (as the booster)."""
        assert result.validation_margin is not None
        value = self.objective.metric(labels, result.validation_margin)
        result.history.append(value)
        ctx.metrics.log(f"validation_{self.objective.metric_name}", value, step=index)
        if result.best_round is None or value < result.history[result.best_round]:
            result.best_round = index
        patience = self.params.early_stopping_rounds
        return bool(patience) and index - result.best_round >= patience
