"""A SHA-256 whose state is saved with the upload, so any process can carry on hashing.

hashlib's state cannot be exported, so an upload hashed with it would have to be
read back in full after a crash or when another replica takes over. ``rehashes``
(CERT Polska; RustCrypto's ``sha2``, which uses the CPU's SHA extensions) exports
its 104-byte state — the eight chaining words, the count of whole blocks and the
pending partial block — which is stored, base64, in the upload's record each time
a part is stored. It runs at hashlib's speed (about 1.5 GB/s a core here, where
the ``resumablesha256`` it replaced ran at 250 MB/s and was the tus path's largest
cost) but holds the GIL while it runs, so bytes are fed in slices from a worker
thread: the event loop gets the GIL back between slices.

States saved by ``resumablesha256`` (112 bytes: the partial block, its length,
the bit count of whole blocks, the chaining words) are converted on load, so an
upload in flight across the upgrade carries on with the right digest.
"""

from __future__ import annotations

import base64
import struct

from rehashes import PySha256

_SLICE = 1024 * 1024
_BLOCK = 64
_STATE_SIZE = 104  # rehashes: 8 chaining words, u64 whole blocks, pending length byte + 63 bytes
_LEGACY_STATE_SIZE = 112  # resumablesha256: data[64], u32 datalen, pad, u64 bitlen, 8 chaining words


def _from_legacy(state: bytes) -> bytes:
    """A ``resumablesha256`` state as the same hash's ``rehashes`` state."""
    pending_len, bit_count = struct.unpack_from("<I4xQ", state, _BLOCK)
    if pending_len >= _BLOCK or bit_count % (_BLOCK * 8):
        raise ValueError("not a SHA-256 state")
    chaining = state[_BLOCK + 16 :]
    pending = state[:pending_len].ljust(_BLOCK - 1, b"\0")
    return chaining + struct.pack("<QB", bit_count // (_BLOCK * 8), pending_len) + pending


class ResumableSha256:
    def __init__(self, state: str = "") -> None:
        if not state:
            self._hasher = PySha256()
            return
        raw = base64.b64decode(state)
        if len(raw) == _LEGACY_STATE_SIZE:
            raw = _from_legacy(raw)
        if len(raw) != _STATE_SIZE:
            raise ValueError("not a SHA-256 state")
        self._hasher = PySha256.deserialize(raw)

    def update(self, data: bytes | memoryview) -> None:
        """Feed bytes (call from a worker thread for large buffers)."""
        view = memoryview(data)
        for start in range(0, len(view), _SLICE):
            self._hasher.update(bytes(view[start : start + _SLICE]))  # rehashes takes bytes only

    def state(self) -> str:
        return base64.b64encode(self._hasher.serialize()).decode("ascii")

    def hexdigest(self) -> str:
        """The digest of the bytes so far (the hasher stays usable: rehashes' finalize consumes it)."""
        return str(PySha256.deserialize(self._hasher.serialize()).finalize())
