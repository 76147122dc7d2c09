"""Safe codec for each payload that crosses a party boundary: values to bytes and back, exactly; no pickle.

A partner must never be able to make us execute anything, so only plain data is accepted (None, bool, int of
any size, float, str, bytes, list/tuple, dict with str keys, numpy arrays and scalars of an allowlist of
dtypes) and `decode` treats its input as hostile: every field is checked and any defect, on any input, is a
`CodecError`. Arrays and big integers travel as raw buffers, so a 1 GB array is never turned into text.

Wire format (version 1), all integers little-endian::

    b"FBC1" | u32 header length H | H bytes of JSON header (ASCII, space-padded) | body

* The header is ``{"v": 1, "bufs": [[offset, length], ...], "root": node}``; offsets are relative to the
  body; buffers are laid out in order, each at the next multiple of 8 bytes (zero padding), the body ends
  with the last buffer, and the header is padded so the body starts at a multiple of 8 too.
* A node is inline JSON (null, true/false, an int within int64, a finite float, a str, a list of nodes, an
  object for a dict whose keys starting with ``$`` get one more ``$``) or a tagged object:
  ``{"$f": "nan"|"inf"|"-inf"}`` a non-finite float; ``{"$int": "-1f..."}`` an int outside int64 (hex);
  ``{"$b": i}`` bytes in buffer i; ``{"$nd": i, "dtype": "<f8", "shape": [...]}`` a C-order array;
  ``{"$ints": i, "n": n, "w": w}`` a list of n ints, each w bytes of two's complement;
  ``{"$floats": i, "n": n}`` a list of n floats as float64.
* Every buffer is referenced exactly once. Tuples decode as lists, bytes-likes as bytes, mpz and numpy
  scalars as the Python scalar; decoded arrays are views over the input (writable if it was a bytearray).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import gmpy2
import numpy as np

from fedbench.errors import CodecError

__all__ = [
    "DEFAULT_LIMITS",
    "MAGIC",
    "CodecLimits",
    "decode",
    "encode",
    "encode_parts",
    "encoded_size",
]

MAGIC = b"FBC1"
_VERSION = 1
_PREFIX = 8
_ALIGN = 8
_PACK_MIN = 16
_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1
_MAX_NDIM = 64
_HEX = re.compile(r"-?[0-9a-f]+")
_MPZ = type(gmpy2.mpz(0))
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_DTYPES: dict[str, np.dtype[Any]] = {
    d.str: d
    for d in (
        np.dtype(f"{order}{code}")
        for order in "<>"
        for code in ("b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8")
    )
}
_ALLOWED_DTYPES = "bool, int8/16/32/64, uint8/16/32/64, float32, float64"
_SUPPORTED = (
    "supported: None, bool, int, float, str, bytes, list, tuple, dict with str keys, "
    "numpy arrays and scalars of dtype " + _ALLOWED_DTYPES
)
_HINTS = {
    "set": "use a list",
    "frozenset": "use a list",
    "complex": "send the real and imaginary parts as two floats",
}


@dataclass(frozen=True)
class CodecLimits:
    """Bounds that `decode` enforces on bytes received from a peer."""

    max_depth: int = 64
    max_items: int = 50_000_000
    max_bytes: int = 4 * 2**30
    max_header_bytes: int = 64 * 2**20

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_items", "max_bytes", "max_header_bytes"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"CodecLimits.{name} must be a positive int, got {value!r}")


DEFAULT_LIMITS = CodecLimits()

_Path = tuple[Any, ...] | None


def _format_path(path: _Path) -> str:
    keys: list[Any] = []
    while path is not None:
        path, key = path
        keys.append(key)
    return "payload" + "".join(f"[{key!r}]" for key in reversed(keys))


def _escape_key(key: str) -> str:
    return "$" + key if key.startswith("$") else key


class _Encoder:
    """One encoding: walks the value, builds the JSON header tree and collects the buffers."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.buffers: list[bytes | memoryview] = []

    def add(self, buffer: bytes | memoryview) -> int:
        self.buffers.append(buffer)
        return len(self.buffers) - 1

    def fail(self, path: _Path, message: str) -> CodecError:
        return CodecError(f"{_format_path(path)}: {message}")

    def node(self, obj: Any, path: _Path, depth: int) -> Any:
        if obj is None or isinstance(obj, bool):
            return obj
        if isinstance(obj, int):
            return self.integer(int(obj))
        if isinstance(obj, float):
            return self.real(float(obj))
        if isinstance(obj, str):
            return str.__str__(obj)
        if isinstance(obj, (list, tuple)):
            return self.sequence(obj, path, depth + 1)
        if isinstance(obj, dict):
            return self.mapping(obj, path, depth + 1)
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return {"$b": self.add(_byte_view(obj))}
        if type(obj) is np.ndarray:
            return self.array(obj, path)
        if isinstance(obj, np.generic):
            if obj.dtype.str not in _DTYPES:
                raise self.fail(path, f"numpy scalar of dtype {obj.dtype} is not supported; {_SUPPORTED}")
            return self.node(obj.item(), path, depth)
        if isinstance(obj, _MPZ):
            return self.integer(int(obj))
        name = type(obj).__name__
        hint = _HINTS.get(name, _SUPPORTED)
        raise self.fail(path, f"type {name!r} is not supported; {hint}")

    @staticmethod
    def integer(value: int) -> Any:
        if _I64_MIN <= value <= _I64_MAX:
            return value
        return {"$int": format(value, "x")}

    @staticmethod
    def real(value: float) -> Any:
        if math.isfinite(value):
            return value
        return {"$f": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}

    def enter(self, path: _Path, depth: int) -> None:
        if depth > self.max_depth:
            raise self.fail(
                path, f"nesting deeper than {self.max_depth} levels (is the value self-referencing?)"
            )

    def sequence(self, seq: list[Any] | tuple[Any, ...], path: _Path, depth: int) -> Any:
        self.enter(path, depth)
        if seq:
            first = type(seq[0])
            if first is int or first is _MPZ:
                packed = self.packed_ints(seq)
                if packed is not None:
                    return packed
            elif first is float and len(seq) >= _PACK_MIN and all(type(x) is float for x in seq):
                array = np.array(seq, dtype="<f8")
                return {"$floats": self.add(_array_view(array)), "n": len(seq)}
        out: list[Any] = []
        append = out.append
        for index, item in enumerate(seq):
            kind = type(item)
            if kind is str or kind is bool or item is None:
                append(item)
            elif kind is int:
                append(item if _I64_MIN <= item <= _I64_MAX else {"$int": format(item, "x")})
            elif kind is float:
                append(item if math.isfinite(item) else self.real(item))
            else:
                append(self.node(item, (path, index), depth))
        return out

    def packed_ints(self, seq: list[Any] | tuple[Any, ...]) -> Any:
        """A list of only ints/mpz: packed when long or when one is outside int64, else None (inline)."""
        if not all(type(x) is int or type(x) is _MPZ for x in seq):
            return None
        n = len(seq)
        bits = max(x.bit_length() for x in seq)
        if bits <= 63:
            if n < _PACK_MIN:
                return [int(x) for x in seq]
            array = np.array([int(x) for x in seq] if _MPZ in map(type, seq) else seq, dtype="<i8")
            return {"$ints": self.add(_array_view(array)), "n": n, "w": 8}
        width = bits // 8 + 1
        block = b"".join([int(x).to_bytes(width, "little", signed=True) for x in seq])
        return {"$ints": self.add(block), "n": n, "w": width}

    def mapping(self, mapping: dict[Any, Any], path: _Path, depth: int) -> Any:
        self.enter(path, depth)
        out: dict[str, Any] = {}
        for key, value in mapping.items():
            if not isinstance(key, str):
                raise self.fail(
                    (path, key),
                    f"dict key {key!r} has type {type(key).__name__!r}; only str keys are supported, "
                    "convert the keys to str",
                )
            key = str.__str__(key)
            kind = type(value)
            if kind is str or kind is bool or value is None:
                out[_escape_key(key)] = value
            else:
                out[_escape_key(key)] = self.node(value, (path, key), depth)
        return out

    def array(self, array: np.ndarray[Any, Any], path: _Path) -> Any:
        dtype = array.dtype
        if dtype.str not in _DTYPES:
            raise self.fail(
                path, f"numpy dtype {dtype} ({dtype.str!r}) is not supported; allowed: {_ALLOWED_DTYPES}"
            )
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        return {"$nd": self.add(_array_view(array)), "dtype": dtype.str, "shape": list(array.shape)}


def _array_view(array: np.ndarray[Any, Any]) -> memoryview:
    """A flat byte view of a C-contiguous array, without copying."""
    return array.reshape(-1).view(np.uint8).data


def _byte_view(obj: bytes | bytearray | memoryview) -> memoryview | bytes:
    view = memoryview(obj)
    if view.format == "B" and view.ndim == 1 and view.c_contiguous:
        return view
    if view.c_contiguous:
        return view.cast("B")
    return view.tobytes()


def _pad(length: int) -> int:
    return -length % _ALIGN


def encode_parts(obj: Any, *, limits: CodecLimits = DEFAULT_LIMITS) -> list[bytes | memoryview]:
    """Encode `obj` as a list of byte chunks whose concatenation is `encode(obj)`; array buffers are views.

    Raises CodecError naming the type and its path for an unsupported value.
    """
    encoder = _Encoder(limits.max_depth)
    root = encoder.node(obj, None, 0)
    table: list[list[int]] = []
    chunks: list[bytes | memoryview] = []
    end = 0
    for buffer in encoder.buffers:
        length = memoryview(buffer).nbytes
        pad = _pad(end)
        if pad:
            chunks.append(bytes(pad))
        table.append([end + pad, length])
        chunks.append(buffer)
        end += pad + length
    text = json.dumps(
        {"v": _VERSION, "bufs": table, "root": root},
        ensure_ascii=True,
        allow_nan=False,
        check_circular=False,
        separators=(",", ":"),
    ).encode("ascii")
    text += b" " * _pad(_PREFIX + len(text))
    if len(text) > 0xFFFFFFFF:
        raise CodecError(f"payload header of {len(text)} bytes is over the 4 GiB format limit")
    return [MAGIC + len(text).to_bytes(4, "little") + text, *chunks]


def encode(obj: Any, *, limits: CodecLimits = DEFAULT_LIMITS) -> bytes:
    """Encode `obj` to bytes; raises CodecError naming the type and its path for an unsupported value."""
    return b"".join(encode_parts(obj, limits=limits))


def encoded_size(obj: Any) -> int:
    """The length in bytes of `encode(obj)`, without joining the parts."""
    return sum(memoryview(part).nbytes for part in encode_parts(obj))


class _Decoder:
    """One decoding: walks the JSON header tree against the validated buffer table."""

    def __init__(self, body: memoryview, spans: list[tuple[int, int]], limits: CodecLimits) -> None:
        self.body = body
        self.spans = spans
        self.used = bytearray(len(spans))
        self.limits = limits
        self.items = 0

    def count(self, n: int) -> None:
        self.items += n
        if self.items > self.limits.max_items:
            raise CodecError(f"payload has more than {self.limits.max_items} items (max_items)")

    def buffer(self, index: Any, tag: str) -> memoryview:
        if type(index) is not int or not 0 <= index < len(self.spans):
            raise CodecError(f"{tag} node refers to buffer {index!r}, but the table has {len(self.spans)}")
        if self.used[index]:
            raise CodecError(f"buffer {index} is referenced more than once")
        self.used[index] = 1
        offset, length = self.spans[index]
        return self.body[offset : offset + length]

    def node(self, node: Any, depth: int) -> Any:
        kind = type(node)
        if kind is list:
            self.enter(depth + 1)
            self.count(len(node))
            for index, item in enumerate(node):
                if type(item) is list or type(item) is dict:
                    node[index] = self.node(item, depth + 1)
            return node
        if kind is dict:
            for key in node:
                if key.startswith("$") and not key.startswith("$$"):
                    return self.tagged(key, node)
            self.enter(depth + 1)
            self.count(len(node))
            return {
                (key[1:] if key.startswith("$") else key): (
                    self.node(value, depth + 1) if type(value) is list or type(value) is dict else value
                )
                for key, value in node.items()
            }
        return node

    def enter(self, depth: int) -> None:
        if depth > self.limits.max_depth:
            raise CodecError(f"payload nesting is deeper than {self.limits.max_depth} levels (max_depth)")

    def tagged(self, tag: str, node: dict[str, Any]) -> Any:
        if tag == "$f":
            _expect_keys(node, tag, ())
            value = _NONFINITE.get(node[tag]) if type(node[tag]) is str else None
            if value is None:
                raise CodecError(f"$f node has invalid value {node[tag]!r}")
            return value
        if tag == "$int":
            _expect_keys(node, tag, ())
            text = node[tag]
            if type(text) is not str or not _HEX.fullmatch(text):
                raise CodecError("$int node does not hold a hexadecimal integer")
            return int(text, 16)
        if tag == "$b":
            _expect_keys(node, tag, ())
            return bytes(self.buffer(node[tag], tag))
        if tag == "$nd":
            _expect_keys(node, tag, ("dtype", "shape"))
            return self.array(node)
        if tag == "$ints":
            _expect_keys(node, tag, ("n", "w"))
            return self.ints(node)
        if tag == "$floats":
            _expect_keys(node, tag, ("n",))
            n = _non_negative(node["n"], "$floats n")
            data = self.buffer(node[tag], tag)
            if n * 8 != len(data):
                raise CodecError(f"$floats node: {n} floats do not fill a buffer of {len(data)} bytes")
            self.count(n)
            return np.frombuffer(data, dtype="<f8").tolist()
        raise CodecError(f"unknown tag {tag!r} in payload header")

    def ints(self, node: dict[str, Any]) -> list[int]:
        n = _non_negative(node["n"], "$ints n")
        width = _non_negative(node["w"], "$ints w")
        data = self.buffer(node["$ints"], "$ints")
        if width < 1 or n * width != len(data):
            raise CodecError(
                f"$ints node: {n} ints of {width} bytes do not fill a buffer of {len(data)} bytes"
            )
        self.count(n)
        if width == 8:
            values: list[int] = np.frombuffer(data, dtype="<i8").tolist()
            return values
        block = bytes(data)
        from_bytes = int.from_bytes
        return [from_bytes(block[i : i + width], "little", signed=True) for i in range(0, n * width, width)]

    def array(self, node: dict[str, Any]) -> np.ndarray[Any, Any]:
        dtype = _DTYPES.get(node["dtype"]) if type(node["dtype"]) is str else None
        if dtype is None:
            raise CodecError(f"array dtype {node['dtype']!r} is not allowed; allowed: {_ALLOWED_DTYPES}")
        shape = node["shape"]
        if type(shape) is not list or len(shape) > _MAX_NDIM:
            raise CodecError(f"array shape must be a list of at most {_MAX_NDIM} dimensions")
        dims = tuple(_non_negative(dim, "array dimension") for dim in shape)
        data = self.buffer(node["$nd"], "$nd")
        if math.prod(dims) * dtype.itemsize != len(data):
            raise CodecError(
                f"array of shape {dims} and dtype {dtype.str} does not fill its buffer of {len(data)} bytes"
            )
        if dtype.kind == "b" and len(data) and np.frombuffer(data, dtype=np.uint8).max() > 1:
            raise CodecError("bool array holds bytes other than 0 and 1")
        try:
            return np.frombuffer(data, dtype=dtype).reshape(dims)
        except (ValueError, OverflowError) as exc:
            raise CodecError(f"array of shape {dims} cannot be built: {exc}") from None


def _expect_keys(node: dict[str, Any], tag: str, fields: Iterable[str]) -> None:
    expected = {tag, *fields}
    if node.keys() != expected:
        raise CodecError(f"{tag} node has keys {sorted(node)}, expected {sorted(expected)}")


def _non_negative(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise CodecError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _reject_constant(name: str) -> Any:
    raise CodecError(f"payload header holds the non-standard JSON constant {name}")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise CodecError("payload header has an object with a duplicate key")
    return result


def _read_spans(table: Any, body_length: int) -> list[tuple[int, int]]:
    if type(table) is not list:
        raise CodecError("payload header 'bufs' is not a list")
    spans: list[tuple[int, int]] = []
    end = 0
    for index, entry in enumerate(table):
        if type(entry) is not list or len(entry) != 2:
            raise CodecError(f"buffer {index}: table entry is not an [offset, length] pair")
        offset = _non_negative(entry[0], f"buffer {index} offset")
        length = _non_negative(entry[1], f"buffer {index} length")
        if offset + length > body_length:
            raise CodecError(
                f"buffer {index}: offset {offset} + length {length} is beyond the end of the body "
                f"({body_length} bytes); the data is truncated or corrupt"
            )
        if offset != end + _pad(end):
            raise CodecError(
                f"buffer {index}: offset {offset} is not where the layout puts it ({end + _pad(end)})"
            )
        spans.append((offset, length))
        end = offset + length
    if body_length != end:
        raise CodecError(f"{body_length - end} bytes of trailing garbage after the last buffer")
    return spans


def _decode(data: Any, limits: CodecLimits) -> Any:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"decode expects bytes, bytearray or memoryview, got {type(data).__name__!r}")
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    total = len(view)
    if total > limits.max_bytes:
        raise CodecError(
            f"payload of {total} bytes is over the limit of {limits.max_bytes} bytes (max_bytes)"
        )
    if total < len(MAGIC) or view[: len(MAGIC)] != MAGIC:
        if total < len(MAGIC) and view == MAGIC[:total]:
            raise CodecError(f"payload truncated: {total} bytes")
        raise CodecError(
            f"not a fedbench payload: bad magic {bytes(view[: len(MAGIC)])!r}, expected {MAGIC!r}"
        )
    if total < _PREFIX:
        raise CodecError(f"payload truncated: {total} bytes, the fixed prefix alone is {_PREFIX}")
    header_length = int.from_bytes(view[len(MAGIC) : _PREFIX], "little")
    if header_length > limits.max_header_bytes:
        raise CodecError(
            f"payload header of {header_length} bytes is over the limit of {limits.max_header_bytes} bytes "
            "(max_header_bytes)"
        )
    if _PREFIX + header_length > total:
        raise CodecError(f"header length {header_length} is beyond the end of the data ({total} bytes)")
    try:
        text = str(view[_PREFIX : _PREFIX + header_length], "utf-8")
        header = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_pairs)
    except RecursionError:
        raise CodecError("payload header nesting is too deep to parse") from None
    except ValueError as exc:
        raise CodecError(f"payload header is not valid UTF-8 JSON: {exc}") from None
    if type(header) is not dict or header.keys() != {"v", "bufs", "root"}:
        raise CodecError("payload header is not an object with exactly the keys 'v', 'bufs' and 'root'")
    if type(header["v"]) is not int or header["v"] != _VERSION:
        raise CodecError(f"unsupported codec version {header['v']!r}; this node reads version {_VERSION}")
    body = view[_PREFIX + header_length :]
    decoder = _Decoder(body, _read_spans(header["bufs"], len(body)), limits)
    value = decoder.node(header["root"], 0)
    if not all(decoder.used):
        raise CodecError(f"buffer {decoder.used.index(0)} is not referenced by the payload")
    return value


def decode(data: bytes | bytearray | memoryview, limits: CodecLimits = DEFAULT_LIMITS) -> Any:
    """Decode bytes from a peer; malformed input or a broken limit raises CodecError and nothing else."""
    try:
        return _decode(data, limits)
    except CodecError:
        raise
    except RecursionError:
        raise CodecError("payload nesting is too deep to decode") from None
    except Exception as exc:
        raise CodecError(f"malformed payload ({type(exc).__name__}: {exc})") from None
