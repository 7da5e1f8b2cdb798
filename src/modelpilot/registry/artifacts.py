"""Content-addressed artifact files: stored by sha256, checked on every fetch."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from modelpilot.errors import ArtifactError

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


def sha256_of(path: Path) -> tuple[str, int]:
    """The file's sha256 (hex) and size in bytes, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class ArtifactStore:
    """Artifact files under ``root``, each at ``root/<first two hex>/<sha256>``.

    The same bytes are stored once however many versions use them. A file is written to a
    temporary name and renamed into place, so that a crash never leaves a partial artifact
    under a valid name.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def derived_path(self, sha256: str, suffix: str) -> Path:
        """Where something computed from an artifact is cached (a converted model, say)."""
        return self.root / sha256[:2] / f"{sha256}{suffix}"

    def write_derived(self, sha256: str, suffix: str, data: bytes) -> Path:
        """Store ``data`` next to the artifact, atomically (readers never see half a file)."""
        target = self.derived_path(sha256, suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".derived-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def put(self, source: Path) -> tuple[str, int]:
        """Store a copy of ``source``; returns its sha256 and size.

        A stored file of the same hash is kept only if it still hashes to it: registering
        the file again is how a corrupted artifact is repaired (``fetch`` says so), and a
        check of the size alone kept a file with a flipped byte, under the new version too.
        """
        source = Path(source)
        if not source.is_file():
            raise ArtifactError(f"no such file: {source}")
        sha, size = sha256_of(source)
        target = self.path_for(sha)
        if target.is_file():
            if target.stat().st_size == size and sha256_of(target)[0] == sha:
                return sha, size
            logger.warning(
                "the stored artifact %s was corrupted (its content no longer hashes to its "
                "name); replacing it with a copy of %s",
                sha[:12],
                source,
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, _CHUNK)
                out.flush()
                os.fsync(out.fileno())
            copied, _ = sha256_of(Path(tmp))
            if copied != sha:
                raise ArtifactError(f"{source} changed while it was being copied; try again")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha, size

    def fetch(self, sha256: str) -> Path:
        """The stored file, after checking that its content still hashes to ``sha256``."""
        path = self.path_for(sha256)
        if not path.is_file():
            raise ArtifactError(
                f"artifact {sha256[:12]} is missing from {self.root}; the registry's artifact "
                "directory is incomplete (was it moved, or is MODELPILOT_ARTIFACTS wrong?)"
            )
        actual, _ = sha256_of(path)
        if actual != sha256:
            raise ArtifactError(
                f"artifact {sha256[:12]} is corrupted: its content hashes to {actual[:12]}; "
                "refusing to load it. Register the model file again."
            )
        return path
