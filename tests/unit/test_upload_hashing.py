"""The resumable upload's SHA-256: its saved state carries on in another hasher, and states
saved by the previous implementation (``resumablesha256``) still give the right digest."""

from __future__ import annotations

import base64
import hashlib

import pytest

from services.ingest.hashing import ResumableSha256

# 771 bytes: twelve whole blocks and three pending bytes.
MESSAGE = bytes(range(256)) * 3 + b"xyz"
# ``resumablesha256`` 1.0's state after MESSAGE (its __getstate__), as saved in records before.
LEGACY_STATE = bytes.fromhex(
    "78797ac3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
    "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff03000000000000000018000000000000"
    "35b4e272f2ff76d10e07a31018df15df90d166800b935def9c864ce67e084f50"
)
# rehashes 0.3.0's state after MESSAGE: a version that changed the layout would misread saved states.
STATE = bytes.fromhex(
    "35b4e272f2ff76d10e07a31018df15df90d166800b935def9c864ce67e084f50" + "0c00000000000000" + "03" + "78797a"
) + bytes(60)


@pytest.mark.parametrize("split", [0, 1, 63, 64, 65, 771, 3 * 1024 * 1024 + 7])
def test_a_saved_state_carries_on_in_a_new_hasher_to_the_whole_files_digest(split: int) -> None:
    data = bytes(i * 7 % 251 for i in range(split + 5000))
    first = ResumableSha256()
    first.update(memoryview(data)[:split])
    assert first.hexdigest() == hashlib.sha256(data[:split]).hexdigest()
    second = ResumableSha256(first.state())
    second.update(memoryview(data)[split:])
    assert second.hexdigest() == hashlib.sha256(data).hexdigest()


def test_the_saved_state_keeps_the_layout_records_were_written_with() -> None:
    hasher = ResumableSha256()
    hasher.update(MESSAGE)
    assert base64.b64decode(hasher.state()) == STATE


def test_a_state_saved_by_the_previous_hasher_carries_on_to_the_right_digest() -> None:
    hasher = ResumableSha256(base64.b64encode(LEGACY_STATE).decode())
    hasher.update(b"the rest of the file")
    assert hasher.hexdigest() == hashlib.sha256(MESSAGE + b"the rest of the file").hexdigest()


def test_a_state_that_is_not_a_sha256_state_is_refused() -> None:
    with pytest.raises(ValueError):
        ResumableSha256(base64.b64encode(b"\0" * 50).decode())
