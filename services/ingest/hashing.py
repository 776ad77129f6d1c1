"""A SHA-256 whose state is saved with the upload, so any process can carry on hashing.

hashlib's state cannot be exported, so an upload hashed with it would have to be
read back in full after a crash or when another replica takes over. The hasher
of ``resumablesha256`` (Brad Conte's public-domain C implementation) exposes its
112-byte context — the eight chaining words, the pending partial block and the
bit count — which is stored, base64, in the upload's record each time a part is
stored. It is slower than hashlib (about 250 MB/s a core) and holds the GIL while
it runs, so bytes are fed in slices from a worker thread: the event loop gets
the GIL back between slices.
"""

from __future__ import annotations

import base64

from resumablesha256 import sha256 as _Sha256

_SLICE = 1024 * 1024


class ResumableSha256:
    def __init__(self, state: str = "") -> None:
        self._hasher = _Sha256()
        if state:
            self._hasher.__setstate__(base64.b64decode(state))

    def update(self, data: bytes | memoryview) -> None:
        """Feed bytes (call from a worker thread for large buffers)."""
        view = memoryview(data)
        for start in range(0, len(view), _SLICE):
            self._hasher.update(bytes(view[start : start + _SLICE]))

    def state(self) -> str:
        return base64.b64encode(self._hasher.__getstate__()).decode("ascii")

    def hexdigest(self) -> str:
        return str(self._hasher.hexdigest())
