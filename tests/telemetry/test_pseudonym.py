"""The visitor pseudonym: keyed, stable across processes and releases, and safe on any text."""

from __future__ import annotations

import hmac
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.telemetry import Pseudonymizer
from tests.telemetry.conftest import KEY, ROOT

# Frozen: analysts join logs across releases on these. HMAC-SHA256(KEY, id), first 32 hex chars.
VECTORS = [
    ("v-vip", "4f895902582cadc65c5419dbe401764e"),
    ("", "04c44bb4a3169ff23d704365b8d540cb"),
    ("ünïcødé", "8a4352768989f8b74c61c6ffa18f218b"),
]


@pytest.mark.parametrize(("visitor_id", "pseudonym"), VECTORS)
def test_pseudonyms_match_the_frozen_vectors(visitor_id: str, pseudonym: str) -> None:
    assert Pseudonymizer(KEY)(visitor_id) == pseudonym


def test_another_process_gives_the_same_pseudonym() -> None:
    code = f"from service.telemetry import Pseudonymizer; print(Pseudonymizer({KEY!r})('v-vip'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == Pseudonymizer(KEY)("v-vip")


def test_another_key_gives_another_pseudonym() -> None:
    assert Pseudonymizer(KEY)("v-vip") != Pseudonymizer(b"another key, also 32 bytes long!")("v-vip")


@pytest.mark.parametrize("key", [b"", b"fifteen bytes!!"])
def test_a_short_key_is_refused(key: bytes) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Pseudonymizer(key)


def test_the_key_stays_out_of_its_repr() -> None:
    assert "test key" not in repr(Pseudonymizer(KEY))


@given(st.text())
def test_any_text_gives_32_hex_characters(visitor_id: str) -> None:
    pseudonym = Pseudonymizer(KEY)(visitor_id)
    assert len(pseudonym) == 32
    assert set(pseudonym) <= set("0123456789abcdef")


@given(st.binary(min_size=16, max_size=200), st.text())
def test_it_is_hmac_sha256_for_any_key_and_id(key: bytes, visitor_id: str) -> None:
    expected = hmac.digest(key, visitor_id.encode("utf-8", "surrogatepass"), "sha256").hex()[:32]
    assert Pseudonymizer(key)(visitor_id) == expected


def test_a_lone_surrogate_does_not_fail() -> None:
    assert Pseudonymizer(KEY)("\ud800") != Pseudonymizer(KEY)("\ud801")
