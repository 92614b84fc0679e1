"""Download a UEA archive zip, check it and unpack it safely.

The archive's zip files are not pinned here: nobody on the team has a verified sha256 of
``CharacterTrajectories.zip`` (the shared copy came from a mirror, without the zip). What IS
known are the sha256s of the extracted per-dimension ``.arff`` files (shared/data/README.md), so
for CharacterTrajectories those are verified after extraction instead. For every download the
zip's own sha256 is written next to the data (``<name>.zip.sha256``) so a run can record it.

Nothing unverified is left in the data directory: the zip is fetched and unpacked in a
temporary folder ``<root>/.<name>-download-*`` (removed whatever happens), checked there, and
only then are its files moved into ``<root>/<name>/``. The staging folder sits beside
``<root>/<name>/``, not inside it, because the loader searches that folder recursively: files
left by a killed download must not be found there. Any failure is one
:class:`~bench.data.paths.DataNotFoundError` naming the URL, the reason and the target folder.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

from bench.data.paths import DataNotFoundError, find_uea_files, sha256_file

# What a failed download can raise: OSError covers URLError/HTTPError, timeouts and a full disk;
# ValueError a refused archive member or a bad URL; RuntimeError/EOFError a damaged zip member.
DOWNLOAD_ERRORS = (
    OSError,
    ValueError,
    RuntimeError,
    EOFError,
    zipfile.BadZipFile,
    http.client.HTTPException,
)

UEA_URL = "https://www.timeseriesclassification.com/aeon-toolkit/{name}.zip"

# sha256 of archive zips, when known; none is known yet (see the module docstring).
ARCHIVE_SHA256: dict[str, str] = {}

# sha256 of extracted files, from shared/data/README.md (files as the archive ships them).
FILE_SHA256: dict[str, dict[str, str]] = {
    "CharacterTrajectories": {
        "CharacterTrajectoriesDimension1_TRAIN.arff": "09d6a3c66b874ef80d8fa259a2a079534cf68f6893bd2667a5367400d5efa147",
        "CharacterTrajectoriesDimension2_TRAIN.arff": "052bd654def99d976967ae6a1a4aff625d2683116c8359232449b3df61e619f1",
        "CharacterTrajectoriesDimension3_TRAIN.arff": "043ac8333f7852844c8a5464abe435ee76e2ff29559cc00dfc16de7ab149db7b",
        "CharacterTrajectoriesDimension1_TEST.arff": "35f8354a74addccbe2693875a6756a0b40a8e6300092a38cbd6aef96cee90b82",
        "CharacterTrajectoriesDimension2_TEST.arff": "0beb557aa88af34b74698c5fe00cc4fe7c01c9b0db580ef84ca9d4bad005381f",
        "CharacterTrajectoriesDimension3_TEST.arff": "55d8aaddd4240ba8ce3ebd9e97451bcaef0db846e361c4c3264716715b11370e",
    },
}

# git blob ids (sha1 of ``b"blob <size>\0" + content``, what ``git hash-object`` prints) of the
# .ts files, which the loader prefers: the README of shared/data gives these, not sha256s.
FILE_GIT_BLOB: dict[str, dict[str, str]] = {
    "CharacterTrajectories": {
        "CharacterTrajectories_TRAIN.ts": "fd9f5ee3b20b21046c6ea2b9a3f1e733563a0427",
        "CharacterTrajectories_TEST.ts": "c9d23ce4559135bbd2bd848d1c99dfdb67bb257f",
    },
}


class ChecksumError(DataNotFoundError):
    """A downloaded or extracted file is unpinned or does not match its pin (none was kept)."""


def safe_extract(archive: str | os.PathLike[str], target: str | os.PathLike[str]) -> list[Path]:
    """Unpack a zip into ``target``, refusing members that would land outside it.

    Absolute names, ``..`` components and symbolic links are all rejected before anything is
    written, so a hostile archive cannot touch files elsewhere. Returns the extracted files.
    """
    target = Path(target).resolve()
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for member in members:
            dest = (target / member.filename).resolve()
            is_link = (member.external_attr >> 16) & 0o170000 == 0o120000
            if is_link or not dest.is_relative_to(target) or Path(member.filename).is_absolute():
                raise ValueError(
                    f"{archive}: refusing to extract {member.filename!r} (it would escape {target})"
                )
        target.mkdir(parents=True, exist_ok=True)
        zf.extractall(target)
    return [target / m.filename for m in members if not m.is_dir()]


def git_blob_id(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """What ``git hash-object`` prints for a file: sha1 of ``b"blob <size>\0"`` + its bytes."""
    digest = hashlib.sha1(f"blob {Path(path).stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_files(name: str, root: str | os.PathLike[str]) -> None:
    """Check every file the loader would read for ``name`` under ``root`` against its pin.

    For a dataset with pins (:data:`FILE_SHA256`, :data:`FILE_GIT_BLOB`) each of those files
    must be pinned and match, so an archive that ships other files (say unpinned .ts files,
    which the loader prefers) is refused too. A dataset without pins is not checked (only the
    zip's sha256 is recorded). Messages name files relative to ``root``, a staging folder that
    is gone by the time anyone reads them.
    """
    pins = {**{f: ("sha256", sha256_file, h) for f, h in FILE_SHA256.get(name, {}).items()},
            **{f: ("git blob id", git_blob_id, h) for f, h in FILE_GIT_BLOB.get(name, {}).items()}}  # fmt: skip
    if not pins:
        return
    found = find_uea_files(Path(root), name)
    if found is None:
        raise ChecksumError(f"the archive holds no {name} .ts or per-dimension .arff files")
    for path in (p for paths in found[1].values() for p in paths):
        shown = path.relative_to(root)
        if path.name not in pins:
            raise ChecksumError(f"{shown}: no pinned checksum for this file, so it cannot be verified")
        kind, digest, expected = pins[path.name]
        if (got := digest(path)) != expected:
            raise ChecksumError(f"{shown}: {kind} {got}, expected {expected} (corrupt or a different release)")


def remove_stale_staging(root: Path, prefix: str, age_s: float = 3600.0) -> None:
    """Remove staging folders ``root/<prefix>*`` that a killed download left behind.

    Only those older than ``age_s``: a younger one may belong to a download running now.
    """
    for path in Path(root).glob(f"{prefix}*"):
        if path.is_dir() and time.time() - path.stat().st_mtime > age_s:
            shutil.rmtree(path, ignore_errors=True)


def move_files(source: Path, target: Path) -> None:
    """Move every file under ``source`` to the same relative place under ``target``.

    Renames within one file system (the staging folder sits in the same data directory), so
    each file appears at once and complete.
    """
    for path in sorted(source.rglob("*")):
        if path.is_file():
            dest = target / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)


def download_uea(
    name: str, root: str | os.PathLike[str], url: str | None = None, timeout: float = 60.0
) -> Path:
    """Download ``{name}.zip`` from the UEA archive and unpack its verified files into ``root/name``.

    ``root`` is created if absent: whether a missing data directory may be created is the
    caller's decision (the data modules refuse a named one first, see
    :func:`bench.data.paths.check_data_dir`). The zip is fetched and unpacked in a staging
    folder inside ``root``, its pinned sha256 (when known) and the pinned sha256s of its files
    are checked there, the zip's own sha256 is recorded, and only then are the files moved into
    ``root/name``. On any failure nothing is kept and :class:`DataNotFoundError` (a
    :class:`ChecksumError` for a checksum mismatch) names the URL, the reason and the target.
    """
    url = url or UEA_URL.format(name=name)
    target = Path(root) / name
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        remove_stale_staging(Path(root), f".{name}-download-")
        with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-download-") as tmp:
            archive, staged = Path(tmp) / f"{name}.zip", Path(tmp) / name
            with urllib.request.urlopen(url, timeout=timeout) as response:
                with open(archive, "wb") as out:
                    shutil.copyfileobj(response, out)
            digest = sha256_file(archive)
            expected = ARCHIVE_SHA256.get(name)
            if expected is not None and digest != expected:
                raise ChecksumError(
                    f"{name}.zip: sha256 {digest}, expected {expected} (corrupt or a different release)"
                )
            safe_extract(archive, staged)
            verify_files(name, staged)
            (staged / f"{name}.zip.sha256").write_text(f"{digest}  {name}.zip\n")
            move_files(staged, target)
    except DOWNLOAD_ERRORS as exc:
        kind = ChecksumError if isinstance(exc, ChecksumError) else DataNotFoundError
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise kind(
            f"could not download {url} ({reason}); nothing of it was kept in {target}/"
        ) from exc
    return target
