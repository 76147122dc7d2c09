"""Tests of the safe wire codec: exact round trips, zero-copy buffers, refusals, limits and hostile input.

The codec is what stands between a partner's bytes and our process, so besides round-trip exactness these
tests corrupt real encodings in every way the decoder promises to catch, and fuzz it to check that nothing
but a CodecError (or a valid value) ever comes out.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import random
import re
from typing import Any

import gmpy2
import numpy as np
import pytest

from fedbench.errors import CodecError
from fedbench.net import codec
from fedbench.net.codec import DEFAULT_LIMITS, CodecLimits, decode, encode, encode_parts, encoded_size

ALL_DTYPES = [
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
]


def expected_of(value: Any) -> Any:
    """What `decode(encode(value))` must give: tuples become lists, bytes-likes bytes, scalars Python ones."""
    if isinstance(value, (list, tuple)):
        return [expected_of(item) for item in value]
    if isinstance(value, dict):
        return {key: expected_of(item) for key, item in value.items()}
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, type(gmpy2.mpz(0))):
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def assert_same(got: Any, want: Any, where: str = "value") -> None:
    """Strict equality: same types all the way down, nan equal to nan, -0.0 distinct from 0.0."""
    if isinstance(want, np.ndarray):
        assert type(got) is np.ndarray, where
        assert got.dtype == want.dtype and got.shape == want.shape, where
        np.testing.assert_array_equal(got, want, err_msg=where)
        if want.dtype.kind == "f":
            assert np.array_equal(np.signbit(got), np.signbit(want)), where
        return
    assert type(got) is type(want), f"{where}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, list):
        assert len(got) == len(want), where
        for index, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{where}[{index}]")
    elif isinstance(want, dict):
        assert list(got) == list(want), where
        for key in want:
            assert_same(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, float):
        if math.isnan(want):
            assert math.isnan(got), where
        else:
            assert got == want and math.copysign(1, got) == math.copysign(1, want), where
    else:
        assert got == want, where


def roundtrip(value: Any) -> Any:
    data = encode(value)
    assert data == b"".join(encode_parts(value))
    assert encoded_size(value) == len(data)
    got = decode(data)
    assert_same(got, expected_of(value))
    return got


def split(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON header and the body of an encoding, to corrupt one of them."""
    length = int.from_bytes(data[4:8], "little")
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def join(header: Any, body: bytes) -> bytes:
    """An encoding from a (possibly corrupted) header and body."""
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % 8)
    return codec.MAGIC + len(text).to_bytes(4, "little") + text + body


def varied_payload() -> dict[str, Any]:
    return {
        "none": None,
        "flags": [True, False],
        "ints": [0, -1, 2**63 - 1, -(2**63), 2**63, -(2**200)],
        "cipher": [(1 << 4095) + 17, -(3**900), 5, gmpy2.mpz(-(7**300))],
        "small": list(range(-10, 30)),
        "floats": [0.1 * i for i in range(20)] + [math.nan, -0.0, math.inf],
        "text": "héllo \u2603 \ud800",
        "blob": b"\x00\x01\xff" * 5,
        "matrix": np.arange(12, dtype=np.float32).reshape(3, 4),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
        "scalar": np.float64(2.5),
        "nested": {"$tag": [(1, "a"), {"$": None, "$$x": b""}], "": np.zeros((0, 3), dtype=np.uint8)},
    }


# ---------------------------------------------------------------- round trips


def _value_id(value: Any) -> str:
    """A test id that is the same in every process (a memoryview's repr holds its address; pytest-xdist's
    workers must collect the same ids)."""
    if isinstance(value, memoryview):
        return f"memoryview({bytes(value)!r})"[:40]
    return repr(value)[:40]


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        2**63 - 1,
        -(2**63),
        2**63,
        -(2**63) - 1,
        -(2**5000) + 3,
        12345678901234567890123456789,
        0.0,
        -0.0,
        1.5,
        1e300,
        5e-324,
        math.nan,
        math.inf,
        -math.inf,
        "",
        "plain",
        "ünïcödé \u2603 \U0001f600",
        "lone surrogate \udc80",
        b"",
        b"\x00raw\xff",
        bytearray(b"mutable"),
        memoryview(b"view of bytes"),
        memoryview(np.arange(4, dtype=np.int32)),
        memoryview(b"abcdefgh")[::2],
        [],
        (),
        [1, "a", None, 2.5, [], {}],
        (1, (2, (3,))),
        {},
        {"a": {"b": {"c": [1, 2, {"d": None}]}}},
        {"$": 1, "$$": 2, "$nd": 3, "$b": [4], "$ints": {"$f": "nan"}, "dtype": "x", "": 0},
        gmpy2.mpz(7),
        gmpy2.mpz(-(2**700)),
        [gmpy2.mpz(1), gmpy2.mpz(2)],
        [gmpy2.mpz(2**80), 3, -(2**90)],
        [1, 2, 3],
        list(range(100)),
        [2**64, -(2**64), 0, -1, 1],
        [-(2**63)] * 20,
        [2**63 - 1, -(2**63) + 1] * 10,
        [(1 << 4095) - i for i in range(50)],
        [True, 1, 2**70],
        [0.5, 1, 2**70],
        [float(i) / 7 for i in range(40)] + [math.nan, -0.0, math.inf, -math.inf],
        [1.5, 2.5],
        np.float64(-0.0),
        np.float32(0.1),
        np.int8(-5),
        np.uint64(2**64 - 1),
        np.int64(-(2**63)),
        np.bool_(True),
        np.str_("numpy str"),
        np.bytes_(b"numpy bytes"),
    ],
    ids=lambda value: _value_id(value),
)
def test_roundtrip_values(value: Any) -> None:
    roundtrip(value)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (5,), (2, 3), (3, 0, 2), (2, 1, 2, 1)])
def test_roundtrip_arrays(dtype: str, shape: tuple[int, ...]) -> None:
    array = (np.arange(math.prod(shape)) % 3).astype(dtype).reshape(shape)
    got = roundtrip(array)
    assert got.flags.c_contiguous and got.flags.aligned


@pytest.mark.parametrize("dtype", [">f8", ">i4", ">u2", "<f4", "<u8"])
def test_byte_order_is_preserved(dtype: str) -> None:
    roundtrip(np.array([1, 2, 3], dtype=dtype))


def test_float_specials_in_arrays_and_lists() -> None:
    array = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, 5e-324, 1.7976931348623157e308])
    roundtrip(array)
    roundtrip(array[:-1].astype(np.float32))
    roundtrip(array.tolist())
    roundtrip({"x": array.tolist()[:3]})


def test_non_contiguous_arrays_are_made_c_contiguous() -> None:
    base = np.arange(60, dtype=np.float64).reshape(3, 4, 5)
    for view in (np.asfortranarray(base), base[:, ::2, 1:], base.T, base[::-1]):
        got = roundtrip(view)
        assert got.flags.c_contiguous


def test_nested_varied_payload() -> None:
    payload = varied_payload()
    roundtrip(payload)
    roundtrip([payload, (payload,), {"deep": payload}])


def test_dollar_keys_do_not_clash_with_tags() -> None:
    tricky = {"$nd": 0, "dtype": "<f8", "shape": [1]}
    assert decode(encode(tricky)) == tricky
    assert decode(encode({"$b": 0})) == {"$b": 0}
    assert decode(encode([{"$ints": 0, "n": 1, "w": 1}])) == [{"$ints": 0, "n": 1, "w": 1}]


def test_dict_subclasses_and_int_enums_decode_as_plain_values() -> None:
    import collections
    import enum

    class Colour(enum.IntEnum):
        RED = 1

    value = collections.OrderedDict(b=Colour.RED, a=collections.defaultdict(int, z=2))
    got = decode(encode(value))
    assert got == {"b": 1, "a": {"z": 2}}
    assert type(got) is dict and type(got["b"]) is int and type(got["a"]) is dict


# ---------------------------------------------------------------- buffers and performance


def test_array_buffers_are_zero_copy_memoryviews() -> None:
    array = np.arange(1000, dtype=np.float64)
    parts = encode_parts({"w": array, "b": b"x" * 10})
    views = [part for part in parts if isinstance(part, memoryview) and part.nbytes == array.nbytes]
    assert len(views) == 1
    assert np.shares_memory(np.frombuffer(views[0], dtype=np.float64), array)


def test_decoded_arrays_are_views_writable_only_over_a_bytearray() -> None:
    data = encode({"w": np.arange(10, dtype=np.int32)})
    from_bytes = decode(data)["w"]
    assert not from_bytes.flags.writeable
    mutable = bytearray(data)
    from_bytearray = decode(mutable)["w"]
    assert from_bytearray.flags.writeable
    from_bytearray[0] = 99
    assert decode(bytes(mutable))["w"][0] == 99
    assert decode(memoryview(mutable))["w"].flags.writeable


def test_arrays_travel_as_raw_buffers_not_json() -> None:
    array = np.full(1000, 123456.789)
    data = encode(array)
    header, body = split(data)
    assert header["root"] == {"$nd": 0, "dtype": "<f8", "shape": [1000]}
    assert len(body) == array.nbytes
    assert b"123456" not in data[: 8 + int.from_bytes(data[4:8], "little")]


def test_big_int_lists_are_packed_not_decimal() -> None:
    values = [(1 << 4095) + i for i in range(10)] + [-(1 << 4000)]
    header, body = split(encode(values))
    assert header["root"] == {"$ints": 0, "n": 11, "w": 513}
    assert len(body) == 11 * 513
    small_header, _ = split(encode([1, 2, 3]))
    assert small_header["root"] == [1, 2, 3]


def test_large_paillier_like_list_round_trips() -> None:
    """Its speed is measured in `benchmarks/timings.py`, not asserted here."""
    rng = random.Random(7)
    values = [rng.getrandbits(4096) - (1 << 4095) for _ in range(100_000)]
    assert decode(encode(values)) == values


def test_buffers_are_aligned_and_layout_is_tight() -> None:
    data = encode([b"a", np.arange(3, dtype=np.float64), b"", b"xyz", np.ones(2, dtype=np.int64)])
    header, body = split(data)
    assert (8 + int.from_bytes(data[4:8], "little")) % 8 == 0
    assert all(offset % 8 == 0 for offset, _ in header["bufs"])
    last_offset, last_length = header["bufs"][-1]
    assert len(body) == last_offset + last_length


# ---------------------------------------------------------------- refusals on encode


class Opaque:
    def __reduce_ex__(self, protocol: Any) -> Any:
        raise AssertionError("the codec must never try to pickle")


@pytest.mark.parametrize(
    ("payload", "path", "what"),
    [
        ({"weights": [0, 1, 2, {4, 5}]}, "payload['weights'][3]", "'set'"),
        ({"x": frozenset()}, "payload['x']", "'frozenset'"),
        ([np.array([object()], dtype=object)], "payload[0]", "object"),
        ({"a": [1, Opaque()]}, "payload['a'][1]", "'Opaque'"),
        ({"f": len}, "payload['f']", "'builtin_function_or_method'"),
        ({"f": lambda: 0}, "payload['f']", "'function'"),
        ({"c": 1j}, "payload['c']", "'complex'"),
        ({"s": np.array(["a"])}, "payload['s']", "<U1"),
        ({"t": np.array(["2020-01-01"], dtype="datetime64[D]")}, "payload['t']", "datetime64"),
        ({"c": np.zeros(2, dtype=np.complex128)}, "payload['c']", "complex128"),
        ({"h": np.zeros(2, dtype=np.float16)}, "payload['h']", "float16"),
        ({"r": np.zeros(2, dtype=[("a", "<i4")])}, "payload['r']", "dtype"),
        ({"m": np.ma.masked_array([1, 2], mask=[0, 1])}, "payload['m']", "'MaskedArray'"),
        ({"g": np.complex64(1)}, "payload['g']", "complex64"),
        ({"d": {1: "int key"}}, "payload['d'][1]", "only str keys"),
        ({"d": {("t",): 1}}, "payload['d'][('t',)]", "only str keys"),
        (Opaque(), "payload", "'Opaque'"),
        ({1, 2}, "payload", "use a list"),
    ],
)
def test_unsupported_values_name_type_and_path(payload: Any, path: str, what: str) -> None:
    with pytest.raises(CodecError) as info:
        encode(payload)
    message = str(info.value)
    assert message.startswith(path + ":"), message
    assert what in message


def test_encode_refuses_self_reference_and_excess_depth() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(CodecError, match="deeper than 64"):
        encode(loop)
    nested: Any = 0
    for _ in range(64):
        nested = [nested]
    assert decode(encode(nested)) == nested
    with pytest.raises(CodecError, match="deeper than 64"):
        encode([nested])


def test_nothing_is_pickled(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle used")

    for name in ("dumps", "loads", "dump", "load", "Pickler", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    payload = varied_payload()
    assert_same(decode(encode(payload)), expected_of(payload))
    with pytest.raises(CodecError):
        encode({"x": Opaque()})
    with pytest.raises(CodecError):
        encode(np.array([Opaque()], dtype=object))


# ---------------------------------------------------------------- malformed input


def sample() -> bytes:
    return encode({"w": np.arange(6, dtype=np.float64).reshape(2, 3), "b": b"bytes", "n": [2**70, 1]})


def with_root(root: Any, bufs: list[list[int]], body: bytes) -> bytes:
    return join({"v": 1, "bufs": bufs, "root": root}, body)


def edit_header(data: bytes, old: bytes, new: bytes) -> bytes:
    """An encoding whose header text has `old` replaced by `new`, with the header length fixed up."""
    length = int.from_bytes(data[4:8], "little")
    text = data[8 : 8 + length].replace(old, new)
    return codec.MAGIC + len(text).to_bytes(4, "little") + text + data[8 + length :]


def malformed_cases() -> list[tuple[str, bytes, str]]:
    data = sample()
    header_length = int.from_bytes(data[4:8], "little")
    arr = np.arange(4, dtype=np.int32).tobytes()
    cases = [
        ("empty", b"", "truncated"),
        ("magic prefix only", data[:3], "truncated"),
        ("prefix cut", data[:6], "truncated"),
        ("wrong magic", b"PKL1" + data[4:], "bad magic"),
        ("pickle bytes", pickle.dumps({"a": 1}), "bad magic"),
        ("header cut", data[: 8 + header_length // 2], "beyond the end"),
        ("body cut", data[:-3], "beyond the end of the body"),
        ("header length lies", data[:4] + (len(data) - 7).to_bytes(4, "little") + data[8:], "beyond the end"),
        ("trailing garbage", data + b"\x00junk", "trailing garbage"),
        ("invalid json", edit_header(with_root(None, [], b""), b'"root"', b"'root'"), "not valid UTF-8 JSON"),
        (
            "invalid utf-8",
            edit_header(with_root("\u00e9", [], b""), b"\\u00e9", b"\xff\xfe"),
            "not valid UTF-8",
        ),
        ("NaN literal", edit_header(with_root(None, [], b""), b"null", b"NaN"), "non-standard JSON constant"),
        (
            "duplicate key",
            edit_header(with_root(None, [], b""), b'"v": 1', b'"v": 1, "v": 1'),
            "duplicate key",
        ),
        ("header not object", join([1, 2], b""), "exactly the keys"),
        ("missing root", join({"v": 1, "bufs": []}, b""), "exactly the keys"),
        ("wrong version", join({"v": 2, "bufs": [], "root": None}, b""), "unsupported codec version"),
        ("bool version", join({"v": True, "bufs": [], "root": None}, b""), "unsupported codec version"),
        ("bufs not list", join({"v": 1, "bufs": {}, "root": None}, b""), "not a list"),
        ("unknown tag", with_root({"$obj": "os.system"}, [], b""), "unknown tag '\\$obj'"),
        ("bare dollar tag", with_root({"$": 1}, [], b""), "unknown tag"),
        ("extra key", with_root({"$b": 0, "evil": 1}, [[0, 4]], b"abcd"), "has keys"),
        ("buffer index out of range", with_root({"$b": 1}, [[0, 4]], b"abcd"), "refers to buffer 1"),
        ("buffer index negative", with_root({"$b": -1}, [[0, 4]], b"abcd"), "refers to buffer -1"),
        ("buffer index float", with_root({"$b": 0.0}, [[0, 4]], b"abcd"), "refers to buffer 0.0"),
        ("buffer offset out of range", with_root({"$b": 0}, [[8, 4]], b"abcd"), "beyond the end of the body"),
        ("buffer length out of range", with_root({"$b": 0}, [[0, 9]], b"abcd"), "beyond the end of the body"),
        ("buffer offset misplaced", with_root([{"$b": 0}, {"$b": 1}], [[0, 2], [4, 2]], b"abcdef"), "layout"),
        ("buffer negative length", with_root({"$b": 0}, [[0, -1]], b"abcd"), "non-negative"),
        ("buffer entry shape", with_root({"$b": 0}, [[0, 4, 1]], b"abcd"), "pair"),
        ("buffer used twice", with_root([{"$b": 0}, {"$b": 0}], [[0, 4]], b"abcd"), "more than once"),
        ("buffer unused", with_root(None, [[0, 4]], b"abcd"), "not referenced"),
        ("object dtype", with_root({"$nd": 0, "dtype": "|O", "shape": [2]}, [[0, 16]], bytes(16)), "'\\|O'"),
        ("complex dtype", with_root({"$nd": 0, "dtype": "<c16", "shape": [1]}, [[0, 16]], bytes(16)), "<c16"),
        ("datetime dtype", with_root({"$nd": 0, "dtype": "<M8[D]", "shape": [1]}, [[0, 8]], bytes(8)), "M8"),
        ("dtype not str", with_root({"$nd": 0, "dtype": 8, "shape": [1]}, [[0, 8]], bytes(8)), "not allowed"),
        (
            "shape mismatch",
            with_root({"$nd": 0, "dtype": "<i4", "shape": [5]}, [[0, 16]], arr),
            "does not fill",
        ),
        (
            "negative dim",
            with_root({"$nd": 0, "dtype": "<i4", "shape": [-4]}, [[0, 16]], arr),
            "non-negative",
        ),
        (
            "neg dims product",
            with_root({"$nd": 0, "dtype": "<i4", "shape": [-2, -2]}, [[0, 16]], arr),
            "non-neg",
        ),
        (
            "bool dim",
            with_root({"$nd": 0, "dtype": "<i4", "shape": [True, 4]}, [[0, 16]], arr),
            "non-negative",
        ),
        ("float dim", with_root({"$nd": 0, "dtype": "<i4", "shape": [4.0]}, [[0, 16]], arr), "non-negative"),
        ("shape not list", with_root({"$nd": 0, "dtype": "<i4", "shape": 4}, [[0, 16]], arr), "shape"),
        (
            "too many dims",
            with_root({"$nd": 0, "dtype": "<i4", "shape": [1] * 65}, [[0, 4]], arr[:4]),
            "shape",
        ),
        (
            "huge empty dims",
            with_root({"$nd": 0, "dtype": "<i4", "shape": [0, 2**80]}, [[0, 0]], b""),
            "built",
        ),
        (
            "bad bool bytes",
            with_root({"$nd": 0, "dtype": "|b1", "shape": [2]}, [[0, 2]], b"\x01\x02"),
            "0 and 1",
        ),
        ("ints width mismatch", with_root({"$ints": 0, "n": 3, "w": 2}, [[0, 4]], b"abcd"), "do not fill"),
        ("ints zero width", with_root({"$ints": 0, "n": 0, "w": 0}, [[0, 0]], b""), "do not fill"),
        ("ints n negative", with_root({"$ints": 0, "n": -1, "w": -4}, [[0, 4]], b"abcd"), "non-negative"),
        ("floats mismatch", with_root({"$floats": 0, "n": 1}, [[0, 4]], b"abcd"), "do not fill"),
        ("bad float tag", with_root({"$f": "zero"}, [], b""), "invalid value"),
        ("float tag list", with_root({"$f": ["nan"]}, [], b""), "invalid value"),
        ("bad int tag", with_root({"$int": "0x10"}, [], b""), "hexadecimal"),
        ("int tag spaces", with_root({"$int": " 10_0"}, [], b""), "hexadecimal"),
        (
            "huge json int",
            edit_header(with_root(0, [], b""), b'"root": 0', b'"root": ' + b"9" * 5000),
            "JSON",
        ),
        (
            "deep json",
            edit_header(with_root(0, [], b""), b'"root": 0', b'"root": ' + b"[" * 100_000),
            "JSON|deep",
        ),
        ("deep lists", with_root(json.loads("[" * 65 + "]" * 65), [], b""), "deeper than 64"),
        ("deep dicts", with_root(json.loads('{"a":' * 65 + "0" + "}" * 65), [], b""), "deeper than 64"),
    ]
    return cases


@pytest.mark.parametrize(
    ("name", "data", "message"), malformed_cases(), ids=[case[0] for case in malformed_cases()]
)
def test_malformed_input_is_refused(name: str, data: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode(data)
    with pytest.raises(CodecError, match=message):
        decode(bytearray(data))


def test_non_bytes_input_is_refused() -> None:
    with pytest.raises(CodecError, match="expects bytes"):
        decode("FBC1")  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="expects bytes"):
        decode(None)  # type: ignore[arg-type]


def test_valid_hand_built_encoding_decodes() -> None:
    body = np.arange(4, dtype=np.int32).tobytes()
    got = decode(with_root({"a": {"$nd": 0, "dtype": "<i4", "shape": [2, 2]}}, [[0, 16]], body))
    assert_same(got, {"a": np.arange(4, dtype=np.int32).reshape(2, 2)})


# ---------------------------------------------------------------- limits


def test_limits_are_a_frozen_dataclass_with_documented_defaults() -> None:
    documented = CodecLimits(
        max_depth=64, max_items=50_000_000, max_bytes=4 * 2**30, max_header_bytes=64 * 2**20
    )
    assert documented == DEFAULT_LIMITS
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_LIMITS.max_depth = 1  # type: ignore[misc]
    with pytest.raises(ValueError):
        CodecLimits(max_depth=0)


def test_depth_limit() -> None:
    limits = CodecLimits(max_depth=3)
    decode(encode([[[1]]]), limits)
    decode(encode({"a": {"b": [np.zeros(2)]}}), limits)
    with pytest.raises(CodecError, match="max_depth"):
        decode(encode([[[[1]]]]), limits)
    with pytest.raises(CodecError, match="max_depth"):
        decode(encode({"a": {"b": {"c": {}}}}), limits)
    with pytest.raises(CodecError, match="deeper than 3"):
        encode([[[[1]]]], limits=limits)


def test_items_limit() -> None:
    limits = CodecLimits(max_items=10)
    decode(encode(list(range(10))), limits)
    decode(encode({str(i): i for i in range(5)} | {"x": [1, 2, 3, 4]}), limits)
    for value in (
        list(range(11)),
        list(range(100)),
        [2**70] * 11,
        [0.5] * 20,
        {str(i): None for i in range(11)},
        [[1, 2, 3], [4, 5, 6], [7, 8]],
    ):
        with pytest.raises(CodecError, match="max_items"):
            decode(encode(value), limits)


def test_bytes_and_header_limits() -> None:
    data = encode({"w": np.zeros(100)})
    decode(data, CodecLimits(max_bytes=len(data)))
    with pytest.raises(CodecError, match="max_bytes"):
        decode(data, CodecLimits(max_bytes=len(data) - 1))
    header_length = int.from_bytes(data[4:8], "little")
    decode(data, CodecLimits(max_header_bytes=header_length))
    with pytest.raises(CodecError, match="max_header_bytes"):
        decode(data, CodecLimits(max_header_bytes=header_length - 1))
    lying = data[:4] + (2**32 - 1).to_bytes(4, "little") + data[8:]
    with pytest.raises(CodecError, match="max_header_bytes"):
        decode(lying)


# ---------------------------------------------------------------- fuzzing


def mutate_header(data: bytes, rng: random.Random) -> bytes:
    """Replace one number or string of the header by a hostile value, keeping the JSON valid."""
    length = int.from_bytes(data[4:8], "little")
    text = data[8 : 8 + length].decode().rstrip()
    tokens = list(re.finditer(r'-?\d+(\.\d+)?|"[^"]*"|true|false|null', text))
    token = rng.choice(tokens)
    hostile = rng.choice(
        [
            "-1",
            "0",
            "1",
            "3",
            "7",
            "8",
            "65",
            "1e400",
            "2.5",
            "true",
            "null",
            '"$nd"',
            '"|O"',
            "[]",
            "{}",
            "[-1]",
        ]
        + [str(2**64), str(rng.randrange(1000)), '"<f8"', '"$b"', '"$x"', '"zz"', "[0, 99]"]
    )
    text = text[: token.start()] + hostile + text[token.end() :]
    raw = text.encode()
    return codec.MAGIC + len(raw).to_bytes(4, "little") + raw + data[8 + length :]


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    buffer = bytearray(data)
    choice = rng.randrange(4)
    if choice == 0:
        for _ in range(rng.randint(1, 4)):
            buffer[rng.randrange(len(buffer))] = rng.randrange(256)
    elif choice == 1:
        del buffer[rng.randrange(len(buffer)) :]
    elif choice == 2:
        position = rng.randrange(len(buffer))
        buffer[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    else:
        start = rng.randrange(len(buffer))
        del buffer[start : start + rng.randint(1, 16)]
    return bytes(buffer)


def test_fuzzed_input_gives_only_codec_errors_or_values() -> None:
    rng = random.Random(20240531)
    seeds = [
        sample(),
        encode(varied_payload()),
        encode([{"$k": [1, 2.5, None]}, np.array([True, False]), [2**65, -3], [1.0] * 16, list(range(16))]),
        encode(np.arange(24, dtype=">i2").reshape(2, 3, 4)),
    ]
    outcomes = {"error": 0, "value": 0}
    for iteration in range(4000):
        data = rng.choice(seeds)
        mutated = mutate_header(data, rng) if iteration % 2 else mutate_bytes(data, rng)
        try:
            decode(mutated, CodecLimits(max_items=10_000))
        except CodecError:
            outcomes["error"] += 1
        else:
            outcomes["value"] += 1
    assert outcomes["error"] > 1000 and outcomes["value"] > 50, outcomes
