"""Downloads, the data directory and the cache key: failures keep nothing and read as one line.

The network is never touched: ``urllib.request.urlopen`` (which both our download code and
torchvision call) is replaced in every test, by a guard that fails the test unless the test
serves its own answer.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import http.client
import io
import os
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from archives import make_zip
from cli_checks import assert_one_line_error

from bench.data import CharacterTrajectoriesDataModule, MNISTDataModule, UEADataModule, paths, uea
from bench.data import download as dl
from bench.data.character_trajectories import NAME as CT
from bench.data.mnist import RAW_FILES
from bench.data.paths import DataDirError, DataNotFoundError

CT_URL = dl.UEA_URL.format(name=CT)


class FakeResponse(io.BytesIO):
    """What ``urlopen`` returns; ``url``/``length`` are read by torchvision."""

    url = None

    @property
    def length(self) -> int:
        return len(self.getvalue())


class DiskFullResponse(FakeResponse):
    """Fails part-way, as writing the archive to a full disk does."""

    def read(self, *args):
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(request, *args, **kwargs):
        pytest.fail(f"the test tried to reach the network: {getattr(request, 'full_url', request)}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def serve(monkeypatch, answer) -> list[str]:
    """Make ``urlopen`` raise ``answer`` (an exception) or answer with it (bytes, a dict
    URL-suffix -> bytes, or a response class, made afresh per call). Returns the URLs asked for."""
    asked: list[str] = []

    def fake_urlopen(request, timeout=None):
        url = getattr(request, "full_url", request)
        asked.append(url)
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, dict):
            return FakeResponse(next(v for k, v in answer.items() if url.endswith(k)))
        return answer(b"PK") if isinstance(answer, type) else FakeResponse(answer)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return asked


def toy_ts(seed: int) -> str:
    rng = np.random.default_rng(seed)
    lines = [
        "@problemName Toy",
        "@dimensions 1",
        "@equalLength true",
        "@classLabel true a b",
        "@data",
    ]
    for label in ("a", "b"):
        for _ in range(10):
            lines.append(",".join(rng.normal(size=6).round(3).astype(str)) + f":{label}")
    return "\n".join(lines) + "\n"


TOY_ZIP = make_zip({f"Toy_{s}.ts": toy_ts(i).encode() for i, s in enumerate(("TRAIN", "TEST"))})


def run_args(data_dir: Path, results: Path, command: str = "run") -> list[str]:
    suite = ["--suite", "timescale"] if command == "run" else ["--suites", "timescale"]
    return [command, *suite, "--profile", "smoke", "--data-dir", str(data_dir),
            "--results-dir", str(results), "--device", "cpu"]  # fmt: skip


# ------------------------------------------------------------------ 1. checksums keep nothing
def test_failed_checksum_keeps_nothing_in_the_data_dir(tmp_path, monkeypatch):
    # the loader prefers .ts files, so those are what must be verified (by their git blob ids)
    root = tmp_path / "data"
    root.mkdir()
    tampered = b"@problemName CharacterTrajectories\n% not the archive's file\n"
    serve(monkeypatch, make_zip({f"{CT}_TRAIN.ts": tampered, f"{CT}_TEST.ts": tampered}))
    with pytest.raises(dl.ChecksumError) as caught:
        CharacterTrajectoriesDataModule(root).prepare_data()
    message = str(caught.value)
    assert CT_URL in message and f"{CT}_TRAIN.ts: git blob id" in message
    assert hashlib.sha1(b"blob %d\0" % len(tampered) + tampered).hexdigest() in message
    assert dl.FILE_GIT_BLOB[CT][f"{CT}_TRAIN.ts"] in message
    assert f"unzip it into {root / CT}/" in message
    assert list(root.iterdir()) == []  # no dataset folder, no .ts, no staging folder, no zip


def test_failed_checksum_through_the_cli_is_one_line(tmp_path, monkeypatch, capsys, ct_dir):
    root = tmp_path / "data"
    root.mkdir()
    files = {p.name: p.read_bytes() for p in sorted((ct_dir / CT).glob("*.arff"))}
    serve(monkeypatch, make_zip({**files, f"{CT}Dimension2_TEST.arff": b"tampered"}))
    assert_one_line_error(run_args(root, tmp_path / "results"), capsys,
                          CT_URL, f"{CT}Dimension2_TEST.arff: sha256", "expected 0beb557a")  # fmt: skip
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("extra", ["unpinned", "nothing usable"])
def test_archive_with_files_that_cannot_be_verified_is_refused(tmp_path, monkeypatch, ct_dir, extra):
    root = tmp_path / "data"
    root.mkdir()
    if extra == "unpinned":  # a fourth dimension the loader would read, with no checksum known
        files = {p.name: p.read_bytes() for p in sorted((ct_dir / CT).glob("*.arff"))}
        files |= {f"{CT}Dimension4_{s}.arff": files[f"{CT}Dimension1_{s}.arff"] for s in ("TRAIN", "TEST")}
        expected = f"{CT}Dimension4_TRAIN.arff: no pinned checksum"
    else:
        files, expected = {"readme.txt": b"hello"}, "the archive holds no CharacterTrajectories"
    serve(monkeypatch, make_zip(files))
    with pytest.raises(dl.ChecksumError, match=expected):
        CharacterTrajectoriesDataModule(root).prepare_data()
    assert list(root.iterdir()) == []


def test_git_blob_id_is_what_git_hash_object_prints(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"hello\n")
    assert dl.git_blob_id(path) == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object


def test_stale_staging_folders_are_removed_fresh_ones_kept(tmp_path):
    stale, fresh = tmp_path / f".{CT}-download-old", tmp_path / f".{CT}-download-new"
    for folder in (stale, fresh):
        (folder / "x").mkdir(parents=True)
    os.utime(stale, (0, 0))
    dl.remove_stale_staging(tmp_path, f".{CT}-download-")
    assert not stale.exists() and fresh.exists()


def test_verified_download_moves_the_files_into_place(tmp_path, monkeypatch, ct_dir):
    arff = sorted((ct_dir / CT).glob("*.arff"))
    assert len(arff) == 6
    serve(monkeypatch, make_zip({p.name: p.read_bytes() for p in arff}))
    root = tmp_path / "data"
    root.mkdir()
    CharacterTrajectoriesDataModule(root).prepare_data()
    assert [p.name for p in root.iterdir()] == [CT]  # the staging folder is gone
    got = {p.name: paths.sha256_file(p) for p in (root / CT).glob("*.arff")}
    assert got == dl.FILE_SHA256[CT]
    assert (root / CT / f"{CT}.zip.sha256").read_text().endswith(f"  {CT}.zip\n")
    assert uea.find_uea_files(root, CT)[0] == "arff"


# ------------------------------------------------------------ 2. any download error, one line
DOWNLOAD_FAILURES = {
    "http-500": urllib.error.HTTPError(CT_URL, 500, "Internal Server Error", {}, None),
    "unreachable": urllib.error.URLError("[Errno -3] Temporary failure in name resolution"),
    "timeout": TimeoutError("timed out"),
    "disk-full": DiskFullResponse,
    "cut-off": http.client.IncompleteRead(b"PK\x03\x04"),
    "not-a-zip": b"<html>down for maintenance</html>",
}
REASONS = {
    "http-500": "HTTP Error 500", "unreachable": "name resolution", "timeout": "timed out",
    "disk-full": "No space left on device", "cut-off": "IncompleteRead", "not-a-zip": "not a zip file",
}  # fmt: skip


@pytest.mark.parametrize("failure", DOWNLOAD_FAILURES)
def test_download_errors_are_one_clear_error(tmp_path, monkeypatch, failure):
    root = tmp_path / "data"
    root.mkdir()
    asked = serve(monkeypatch, DOWNLOAD_FAILURES[failure])
    with pytest.raises(DataNotFoundError) as caught:
        CharacterTrajectoriesDataModule(root).prepare_data()
    message = str(caught.value)
    assert asked == [CT_URL]
    assert f"could not download {CT_URL} (" in message and REASONS[failure] in message
    assert f"nothing of it was kept in {root / CT}/" in message
    assert f"unzip it into {root / CT}/" in message and "\n" not in message
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("failure", ["http-500", "disk-full", "cut-off", "not-a-zip"])
def test_download_errors_through_the_cli_are_one_line(tmp_path, monkeypatch, capsys, failure):
    root = tmp_path / "data"
    root.mkdir()
    serve(monkeypatch, DOWNLOAD_FAILURES[failure])
    assert_one_line_error(run_args(root, tmp_path / "results"), capsys,
                          CT_URL, REASONS[failure], f"unzip it into {root / CT}/")  # fmt: skip
    assert list(root.iterdir()) == []


def test_failed_mnist_download_keeps_nothing(tmp_path, monkeypatch):
    serve(monkeypatch, b"not a gzip file, so its md5 is wrong")
    with pytest.raises(DataNotFoundError) as caught:
        MNISTDataModule(tmp_path).prepare_data()
    message = str(caught.value)
    assert "could not download MNIST" in message and "train-images-idx3-ubyte.gz" in message
    assert f"{tmp_path / 'MNIST' / 'raw'}/" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def idx(magic: int, *dims: int) -> bytes:
    """A tiny IDX file (all zeros) with a valid header."""
    return struct.pack(f">{1 + len(dims)}i", magic, *dims) + bytes(int(np.prod(dims)))


def test_mnist_download_moves_the_unpacked_files_into_place(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    files = {
        "train-images-idx3-ubyte": idx(2051, 3, 28, 28),
        "train-labels-idx1-ubyte": idx(2049, 3),
        "t10k-images-idx3-ubyte": idx(2051, 2, 28, 28),
        "t10k-labels-idx1-ubyte": idx(2049, 2),
    }
    serve(monkeypatch, {f"{name}.gz": gzip.compress(data) for name, data in files.items()})
    # These are not the real archives: let torchvision skip its md5 check of them.
    monkeypatch.setattr(MNIST, "resources", [(name, None) for name, _ in MNIST.resources])
    MNISTDataModule(tmp_path).prepare_data()
    assert [p.name for p in tmp_path.iterdir()] == ["MNIST"]  # the staging folder is gone
    raw = tmp_path / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(RAW_FILES)  # no .gz
    assert all((raw / name).read_bytes() == data for name, data in files.items())


# ---------------------------------------------------------------- 3./4. the data directory
@pytest.mark.parametrize("download", [True, False])
@pytest.mark.parametrize("module", [CharacterTrajectoriesDataModule, MNISTDataModule])
def test_named_data_dir_that_does_not_exist_is_refused_not_created(tmp_path, module, download):
    typo = tmp_path / "dta" / "data"
    dm = module(typo, download=download)
    with pytest.raises(
        DataDirError,
        match=r"data directory .*dta/data \(from --data-dir / data_dir=\) does not exist",
    ):
        (dm.prepare_data if download else dm.setup)()
    assert list(tmp_path.iterdir()) == []


def test_data_dir_from_the_environment_is_named_in_the_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(DataDirError, match=r"missing \(from \$BENCH_DATA_DIR\) does not exist"):
        CharacterTrajectoriesDataModule().prepare_data()
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("module", [CharacterTrajectoriesDataModule, MNISTDataModule])
def test_data_dir_that_is_a_file_is_refused(tmp_path, module):
    not_a_dir = tmp_path / "data.txt"
    not_a_dir.write_text("x")
    with pytest.raises(DataDirError, match=r"data\.txt \(from --data-dir / data_dir=\) is a file"):
        module(not_a_dir).prepare_data()
    assert not_a_dir.read_text() == "x"


def test_default_data_dir_is_created_when_a_download_starts(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    monkeypatch.setattr(paths.platformdirs, "user_cache_dir", lambda app: str(tmp_path / "cache"))
    dm = UEADataModule("Toy", download=False)
    with pytest.raises(DataNotFoundError, match="UEA dataset 'Toy' not found"):
        dm.prepare_data()
    assert not (tmp_path / "cache").exists()  # no download, nothing created
    serve(monkeypatch, TOY_ZIP)
    UEADataModule("Toy").prepare_data()
    assert (tmp_path / "cache" / "data" / "Toy" / "Toy_TRAIN.ts").is_file()


@pytest.mark.parametrize("command", ["run", "nightly"])
def test_cli_refuses_a_data_dir_that_does_not_exist(tmp_path, capsys, command):
    typo = tmp_path / "dta"
    assert_one_line_error(run_args(typo, tmp_path / "results", command), capsys,
                          "--data-dir", str(typo), "does not exist")  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # neither the data dir nor the results dir


def test_cli_refuses_a_data_dir_that_is_a_file(tmp_path, capsys):
    not_a_dir = tmp_path / "data.txt"
    not_a_dir.write_text("x")
    assert_one_line_error(run_args(not_a_dir, tmp_path / "results"), capsys,
                          "--data-dir", str(not_a_dir), "is a file")  # fmt: skip


# ------------------------------------------------------------------------- 5. the cache key
def test_cache_version_is_part_of_both_cache_keys(tmp_path, monkeypatch):
    """Bumping CACHE_VERSION re-parses and re-processes the same (unchanged) source files."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "data" / "Toy"
    folder.mkdir(parents=True)
    for i, split in enumerate(("TRAIN", "TEST")):
        (folder / f"Toy_{split}.ts").write_text(toy_ts(i))
    parsed, processed = [], []
    read_ts, protocol = uea.read_ts, uea.reference_protocol
    monkeypatch.setattr(uea, "read_ts", lambda path: parsed.append(path) or read_ts(path))
    monkeypatch.setattr(uea, "reference_protocol", lambda *a: processed.append(1) or protocol(*a))

    def setup() -> None:
        UEADataModule("Toy", folder.parent, download=False).setup()

    setup()
    assert (len(parsed), len(processed)) == (2, 1)
    setup()
    assert (len(parsed), len(processed)) == (2, 1)  # both from the cache
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(names) == 2 and all(f"-v{uea.CACHE_VERSION}-" in n for n in names)
    monkeypatch.setattr(uea, "CACHE_VERSION", "bumped")
    setup()
    assert (len(parsed), len(processed)) == (4, 2)  # stale arrays were not reused
    assert sum("-vbumped-" in p.name for p in (tmp_path / "cache").iterdir()) == 2


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_cache_is_rebuilt_with_a_one_line_warning(tmp_path, monkeypatch, damage):
    """Caches are derived data: a truncated .pt or .npz warns once each and is rebuilt (the
    same arrays as before), and the rebuilt files load again without a warning."""
    import warnings

    import torch

    from bench.records import BenchWarning

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "data" / "Toy"
    folder.mkdir(parents=True)
    for i, split in enumerate(("TRAIN", "TEST")):
        (folder / f"Toy_{split}.ts").write_text(toy_ts(i))

    def setup() -> dict:
        dm = UEADataModule("Toy", folder.parent, download=False)
        dm.setup()
        return dm._data

    first = setup()
    caches = sorted((tmp_path / "cache").iterdir())
    assert sorted(p.suffix for p in caches) == [".npz", ".pt"]  # and no temporary file left beside them
    for path in caches:
        size = path.stat().st_size
        if damage == "truncate":
            with open(path, "r+b") as f:
                f.truncate(size // 2)
        else:
            path.write_bytes(b"\0" * 64)
    with pytest.warns(BenchWarning) as caught:
        again = setup()
    messages = [str(w.message) for w in caught if issubclass(w.category, BenchWarning)]
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]  # no file left open
    assert len(messages) == 2 and all("\n" not in m and "rebuilding it" in m for m in messages), messages
    assert {Path(m.split()[1]).suffix for m in messages} == {".npz", ".pt"}
    for key in ("values", "labels", "mask"):
        if key in first:
            assert torch.equal(torch.as_tensor(first[key]), torch.as_tensor(again[key]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        setup()  # rebuilt: loads cleanly
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [p.name for p in caches]


def test_write_cache_leaves_nothing_when_the_write_fails(tmp_path):
    target = tmp_path / "x.pt"

    def boom(f) -> None:
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        paths.write_cache(target, boom)
    assert list(tmp_path.iterdir()) == []
    paths.write_cache(target, lambda f: f.write(b"whole"))
    assert target.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [target]
