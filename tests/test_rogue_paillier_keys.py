"""Hole 4 of issue #14: a peer's Paillier public key must not drive the randomness of what we send back.

The attack: the key owner (a rogue guest) hands over its public key with an obfuscation base of its choosing
(hs = n^2 - 1, i.e. -1) and a modulus built so that p - 1 has a large power of two. If the host rerandomises
its SSHE reply with that base, the reply's "randomness" is a known sign, and the guest reads the host's feature
row straight out of it (discrete logarithms in the 2-power subgroup mod p). After the fix the host always uses
its own base, the recovery yields garbage, and malformed keys are refused with a clear error.
"""

from __future__ import annotations

import secrets
import threading
import warnings
from pathlib import Path
from typing import Any

import gmpy2
import numpy as np
import pytest
from gmpy2 import mpz
from rogue import reconfigure_rogue, rogue_sandbox, victim_run_ended

import fedbench
from fedbench import sandbox
from fedbench.crypto.paillier import EncryptedVector, PrivateKey, PublicKey, generate_keypair
from fedbench.crypto.paillier.errors import PeerKeyError
from fedbench.errors import FedbenchError
from fedbench.federation import Context, TaskIO
from fedbench.ml import sshe
from fedbench.ml.design import FIXED_BITS
from fedbench.net.transport import InMemoryFederation
from fedbench.pipeline import Pipeline

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

_TWO_POWER = 150
"""p - 1 is divisible by 2^_TWO_POWER: room for 6 features of FIXED_BITS bits, below one SSHE slot."""


def _rogue_primes() -> tuple[int, int]:
    """p = 2^k m + 1 (a large 2-power subgroup mod p) and an ordinary q; n = p q passes every import check."""
    while True:
        m = secrets.randbits(512 - _TWO_POWER) | (3 << (510 - _TWO_POWER)) | 1
        p = (m << _TWO_POWER) + 1
        if gmpy2.is_prime(p, 40):
            break
    while True:
        q = gmpy2.next_prime(secrets.randbits(512) | (3 << 510))
        if q.bit_length() == 512 and (p - 1) % q and (q - 1) % p:
            return int(p), int(q)


def _two_power_generator(p: int) -> int:
    """A generator of the subgroup of order 2^k of Z*_p (k = _TWO_POWER)."""
    m = (p - 1) >> _TWO_POWER
    while True:
        g = gmpy2.powmod(secrets.randbelow(p - 3) + 2, m, p)
        if gmpy2.powmod(g, 1 << (_TWO_POWER - 1), p) != 1:
            return int(g)


def _two_power_log(value: int, g: int, p: int) -> int:
    """log_g(value) in the subgroup of order 2^k (Pohlig-Hellman, one bit at a time); -1 if not in it."""
    if gmpy2.powmod(value, 1 << _TWO_POWER, p) != 1:
        return -1
    g_inv = gmpy2.invert(g, p)
    x = 0
    for i in range(_TWO_POWER):
        rest = value * gmpy2.powmod(g_inv, x, p) % p
        if gmpy2.powmod(rest, 1 << (_TWO_POWER - 1 - i), p) != 1:
            x |= 1 << i
    return x


def _contexts(federation: InMemoryFederation, failures: list[BaseException]) -> dict[str, Context]:
    io = TaskIO(
        read_input=lambda _: None,
        write_output=lambda *_: None,
        emit=lambda _: None,
        is_cancelled=lambda: bool(failures),
    )
    roles = {"guest": ["guest"], "host": ["host"]}
    return {
        party: Context(
            party=party,
            role=party,
            roles=roles,
            job_id="job",
            step="train",
            params=None,
            transport=federation.transport(party),
            io=io,
            recv_timeout=60.0,
        )
        for party in roles
    }


def _rogue_key_message(public: PublicKey) -> dict[str, Any]:
    """Our key as the honest code serialises it, with the obfuscation base replaced where the form has one."""
    message = public.to_dict()
    if "hs" in message:
        message["hs"] = int(public.nsq) - 1
    return message


def _attack_sshe_reply(features: np.ndarray) -> tuple[list[int], str | None]:
    """Play the rogue guest against a real host `SsheParty`; what the guest reads from one reply (row 0)."""
    width = features.shape[1]
    p, q = _rogue_primes()
    public = PublicKey(p * q)
    PrivateKey(public, p, q)
    g = _two_power_generator(p)
    federation = InMemoryFederation(["guest", "host"])
    failures: list[BaseException] = []
    ctx = _contexts(federation, failures)

    def host() -> None:
        party = None
        try:
            party = sshe.SsheParty(ctx["host"], ctx["host"].peer("guest"), 1, features, 1024, False, 8)
            party.step(ctx["host"], np.arange(len(features)), 0.1, 0.0)
        except BaseException as exc:  # noqa: BLE001 - the host's refusal is what the test inspects
            failures.append(exc)
        finally:
            if party is not None:
                party.close()

    thread = threading.Thread(target=host)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        thread.start()
        guest = ctx["guest"].peer("host")
        guest.send("sshe.key", {"public_key": _rogue_key_message(public), "width": 2, "intercept": True})
        host_key = guest.recv("sshe.key")
        thread.join(timeout=0.5)
        if failures:
            return [], str(failures[0])
        guest.recv("sshe.w")
        # Column j's "encrypted weight" is (1 + n) r_j^n with r_j = g^(2^(24 j)) mod p: mod p it is r_j^n.
        n, nsq = mpz(public.n), public.nsq
        cts = []
        for j in range(width):
            rp = gmpy2.powmod(g, 1 << (FIXED_BITS * j), p)
            r = int(rp * q * gmpy2.invert(q, p) + p * gmpy2.invert(p, q)) % int(n)
            cts.append(int((1 + n) * gmpy2.powmod(r, n, nsq) % nsq))
        guest.send("sshe.w", EncryptedVector.from_ciphertexts(public, cts).to_dict())
        reply = EncryptedVector.from_dict(public, guest.recv("sshe.xw"))
        guest.send("sshe.xw", {})
        thread.join(timeout=60)
    assert isinstance(host_key, dict)
    # Mod p the reply is prod r_j^(n e_j) * obfuscator; slots past the first are multiples of 2^slot_bits >= 2^k.
    exponent = _two_power_log(int(reply.ciphertexts[0]) % p, g, p)
    if exponent < 0:
        return [], None
    e = exponent * int(gmpy2.invert(p * q, 1 << _TWO_POWER)) % (1 << (_TWO_POWER - 1))
    return [(e >> (FIXED_BITS * j)) & ((1 << FIXED_BITS) - 1) for j in range(width)], None


def test_a_rogue_key_owner_cannot_read_the_host_row_from_an_sshe_reply() -> None:
    rng = np.random.default_rng(7)
    features = rng.normal(size=(4, 5))
    recovered, refused = _attack_sshe_reply(features)
    row = list(sshe.fixed_point(features)[0])
    assert refused is None, f"the attacker's well-formed key was refused: {refused}"
    assert recovered != row, "the guest read the host's feature row out of the SSHE reply"


def test_a_peer_key_dict_carries_no_obfuscation_base() -> None:
    public, _ = generate_keypair(1024)
    message = public.to_dict()
    assert "hs" not in message
    with pytest.raises(PeerKeyError, match="obfuscation base"):
        PublicKey.from_dict({**message, "hs": int(public.nsq) - 1})
    imported = PublicKey.from_dict(message)
    assert imported.obfuscator_spec().hs != public.obfuscator_spec().hs


def test_obfuscators_for_a_peer_key_do_not_depend_on_what_the_peer_sent() -> None:
    public, _ = generate_keypair(1024)
    one, two = PublicKey.from_dict(public.to_dict()), PublicKey.from_dict(public.to_dict())
    spec_one, spec_two = one.obfuscator_spec(), two.obfuscator_spec()
    assert spec_one.hs != spec_two.hs, "two imports of the same key share an obfuscation base"
    assert spec_one.exponent_bits >= public.n_bits, (
        "a peer key's exponents must be long (not the peer's choice)"
    )
    values = one.obfuscators(64)
    assert len(set(values)) == 64 and all(
        0 < int(v) < int(one.nsq) and int(v) != int(one.nsq) - 1 for v in values
    )
    assert one.obfuscator_spec("textbook").hs == 0


def _with(message: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**message, **changes}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("even", "odd"),
        ("g", "g = n \\+ 1"),
        ("small_factor", "small prime factor"),
        ("short", "bits"),
        ("square", "square"),
        ("proof", "proof"),
        ("no_proof", "proof"),
    ],
)
def test_malformed_peer_keys_are_refused(change: str, match: str) -> None:
    public, private = generate_keypair(1024)
    message = public.to_dict()
    n = int(public.n)
    if change == "even":
        message = _with(message, n=n + 1, g=n + 2)
    elif change == "g":
        message = _with(message, g=n + 3)
    elif change == "small_factor":
        small = n // 65521 * 65521
        small -= 0 if small % 2 else 65521
        message = _with(message, n=small, g=small + 1)
    elif change == "short":
        short = int(gmpy2.next_prime(1 << 400) * gmpy2.next_prime(1 << 420))
        message = _with(message, n=short, g=short + 1)
    elif change == "square":
        square = int(private.p) ** 2
        message = _with(message, n=square, g=square + 1)
    elif change == "proof":
        other, _ = generate_keypair(1024)
        message = _with(message, proof=other.to_dict()["proof"])
    else:
        message = {k: v for k, v in message.items() if k != "proof"}
    with pytest.raises(PeerKeyError, match=match):
        PublicKey.from_dict(message)


def _training(protocol: str = "sshe") -> Pipeline:
    """PSI on the demo breast-cancer tables, then a small SSHE run (1024-bit keys, one epoch)."""
    return Pipeline.from_dict(
        {
            "name": "rogue_keys",
            "steps": [
                {
                    "name": "psi",
                    "component": "psi",
                    "params": {},
                    "inputs": {"data": {"dataset": "breast_cancer"}},
                },
                {
                    "name": "train",
                    "component": "hetero_lr",
                    "params": {
                        "protocol": protocol,
                        "key_bits": 1024,
                        "epochs": 1,
                        "batch_size": 0,
                        "label": "y",
                    },
                    "inputs": {"train": {"step": "psi", "output": "data"}},
                },
            ],
        }
    )


def test_a_victim_node_refuses_a_malformed_peer_key_audits_it_and_keeps_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "sb"
    monkeypatch.setenv(sandbox.DEMO_ROWS_ENV, "1000")  # the smallest demo credit table: it goes unused
    federation = rogue_sandbox(root, patches=["fb_rogue_keys"], settings={"key": "even"}, rogue="guest")
    try:
        guest = fedbench.connect(home=federation.home("guest").root).project("demo")
        host = fedbench.connect(home=federation.home("host").root)
        for deviation, match in (("even", "is even"), ("hs", "obfuscation base")):
            if deviation != "even":
                reconfigure_rogue(root, {"key": deviation}, rogue="guest")
            run = guest.run_pipeline(_training())
            with pytest.raises(FedbenchError, match=match):
                run.wait(show_progress=False)
            victim_run_ended(host.project("demo"), run.job_id)
            audit = host.audit()
            refused = audit[(audit["action"] == "step.hetero_lr") & ~audit["allowed"].astype(bool)]
            assert refused["reason"].str.contains(match).any(), refused.to_dict("records")
        reconfigure_rogue(root, {}, rogue="guest")
        run = guest.run_pipeline(_training()).wait(show_progress=False)
        assert run.info["state"] == "succeeded"
    finally:
        sandbox.down(root)
