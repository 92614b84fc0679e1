"""Zip archives built in memory, for the download and extraction tests."""

from __future__ import annotations

import io
import zipfile


def make_zip(members: dict[str, bytes]) -> bytes:
    """A zip holding ``members`` (archive name -> bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()
