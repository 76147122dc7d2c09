"""Proofs that Paillier ciphertexts encrypt 0 or 1 (`crypto/paillier/proofs.py`): complete, sound, bound."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fedbench.crypto.paillier import EncryptedVector, WeakKeyWarning, generate_keypair, proofs
from fedbench.crypto.paillier.proofs import BitProofError, BitProofs, encrypt_bits, verify_bits

CONTEXT = b"project p / job j / step binning"


@pytest.fixture(scope="module")
def keys():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakKeyWarning)
        return generate_keypair(1024)


def _width(public) -> int:
    return (int(public.nsq).bit_length() + 7) // 8


def _prove_anything(
    private, values: list[int], context: bytes = CONTEXT
) -> tuple[EncryptedVector, BitProofs]:
    """What a cheating prover gets by running the honest algorithm on values that are not 0/1."""
    public = private.public
    cts, commitments, challenges, responses = proofs._prove_chunk(
        int(private.p), int(private.q), 5, context, 0, values
    )
    width = _width(public)
    vector = EncryptedVector.from_ciphertexts(public, proofs.ciphertexts_from_bytes(cts, width), bound=1)
    return vector, BitProofs(5, proofs.ciphertexts_from_bytes(commitments, width), challenges, responses)


def _roundtrip(public, proof: BitProofs, count: int) -> BitProofs:
    return BitProofs.from_dict(public, proof.to_dict(public), count)


def test_honest_proofs_verify_and_decrypt_to_the_bits(keys):
    public, private = keys
    bits = np.random.default_rng(1).integers(0, 2, 60)
    vector, proof = encrypt_bits(private, bits, CONTEXT, workers=1)
    assert private.decrypt(vector).tolist() == bits.tolist()
    assert vector.bound == 1 and vector.frac_bits == 0
    verify_bits(public, vector, _roundtrip(public, proof, len(bits)), CONTEXT, workers=1)
    verify_bits(public, vector[:0], BitProofs(proof.base, [], [], []), CONTEXT)


def test_values_other_than_0_and_1_cannot_be_encrypted_with_proofs(keys):
    with pytest.raises(BitProofError, match="must all be 0 or 1"):
        encrypt_bits(keys[1], [0, 1, 2], CONTEXT, workers=1)


@pytest.mark.parametrize("value", [2, -1, 1 << 40])
def test_a_proof_for_anything_but_0_or_1_fails(keys, value):
    public, private = keys
    vector, proof = _prove_anything(private, [value])
    with pytest.raises(BitProofError, match="do not verify"):
        verify_bits(public, vector, proof, CONTEXT, workers=1)


def test_a_batch_with_one_bad_proof_among_honest_ones_is_rejected(keys):
    public, private = keys
    values = [0, 1] * 20
    values[17] = 2
    vector, proof = _prove_anything(private, values)
    with pytest.raises(BitProofError, match="do not verify"):
        verify_bits(public, vector, proof, CONTEXT, workers=1)
    values[17] = 1
    vector, proof = _prove_anything(private, values)
    verify_bits(public, vector, proof, CONTEXT, workers=1)


def test_mangled_proofs_swapped_ciphertexts_and_another_context_fail(keys):
    public, private = keys
    vector, proof = encrypt_bits(private, [1, 0, 1, 1], CONTEXT, workers=1)
    mangled = [
        BitProofs(
            proof.base, proof.commitments, [proof.challenges[0] ^ 1, *proof.challenges[1:]], proof.responses
        ),
        BitProofs(
            proof.base, proof.commitments, proof.challenges, [proof.responses[0] + 1, *proof.responses[1:]]
        ),
        BitProofs(proof.base, proof.commitments[::-1], proof.challenges, proof.responses),
        BitProofs(proof.base + 1, proof.commitments, proof.challenges, proof.responses),
    ]
    for bad in mangled:
        with pytest.raises(BitProofError, match="do not verify"):
            verify_bits(public, vector, bad, CONTEXT, workers=1)
    with pytest.raises(BitProofError, match="do not verify"):
        verify_bits(public, vector[[1, 0, 2, 3]], proof, CONTEXT, workers=1)
    with pytest.raises(BitProofError, match="do not verify"):
        verify_bits(public, vector, proof, b"another job", workers=1)
    other = private.encrypt([1, 0, 1, 1])
    with pytest.raises(BitProofError, match="do not verify"):
        verify_bits(public, other, proof, CONTEXT, workers=1)


def test_malformed_proofs_are_refused_before_any_arithmetic(keys):
    public, private = keys
    vector, proof = encrypt_bits(private, [1, 0], CONTEXT, workers=1)
    wire = proof.to_dict(public)
    with pytest.raises(BitProofError, match="for 3 ciphertexts"):
        BitProofs.from_dict(public, wire, 3)
    with pytest.raises(BitProofError, match="base"):
        BitProofs.from_dict(public, {**wire, "base": 1}, 2)
    with pytest.raises(BitProofError, match="dict"):
        BitProofs.from_dict(public, {**wire, "extra": 1}, 2)
    width = _width(public)
    zero = bytes(width) + wire["commitments"][width:]
    with pytest.raises(BitProofError, match="commitment"):
        BitProofs.from_dict(public, {**wire, "commitments": zero}, 2)
    with pytest.raises(BitProofError, match="one proof per ciphertext"):
        verify_bits(public, vector[:1], proof, CONTEXT, workers=1)


def test_batch_verification_in_worker_processes(keys):
    public, private = keys
    bits = [1, 0, 0, 1] * 60
    vector, proof = encrypt_bits(private, bits, CONTEXT, workers=2)
    verify_bits(public, vector, proof, CONTEXT, workers=2)
    bad, bad_proof = _prove_anything(private, [*bits[:-1], 3])
    with pytest.raises(BitProofError, match="do not verify"):
        verify_bits(public, bad, bad_proof, CONTEXT, workers=2)
