"""Content-addressed image files under ``<data dir>/images``.

An image is stored once, named by the sha256 of its bytes
(``images/ab/cd/abcd...<ext>``), written to a temporary file, fsynced, then
hard-linked into place: the link fails if the name exists, so a file is
never overwritten, and a crash leaves either no file or a complete one.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Magic numbers of the formats the lanes produce; anything else keeps ".bin".
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
    (b"BM", ".bmp"),
)


class ImageStoreError(OSError):
    """An image could not be stored or does not match its hash."""


@dataclass(frozen=True)
class StoredImage:
    sha256: str
    path: Path
    size: int
    created: bool            # False when identical content was already stored


def sniff_extension(data: bytes) -> str:
    for magic, ext in _SIGNATURES:
        if data.startswith(magic):
            return ext
    return ".bin"


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, sha256: str, ext: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}{ext}"

    def find(self, sha256: str) -> Path | None:
        """The stored file for this hash, whatever its extension, or None."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        folder = self.root / sha256[:2] / sha256[2:4]
        matches = sorted(folder.glob(f"{sha256}.*")) if folder.is_dir() else []
        return matches[0] if matches else None

    def put_bytes(self, data: bytes) -> StoredImage:
        if not data:
            raise ImageStoreError("refusing to store an empty image")
        sha256 = hashlib.sha256(data).hexdigest()
        existing = self.find(sha256)
        if existing is not None:
            return StoredImage(sha256, existing, existing.stat().st_size, created=False)
        final = self._path(sha256, sniff_extension(data))
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", dir=final.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, final)            # atomic, and refuses to replace an existing name
                created = True
            except FileExistsError:            # another writer stored the same content first
                created = False
            _fsync_dir(final.parent)
        except OSError as exc:
            raise ImageStoreError(f"cannot store image {sha256} under {self.root}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return StoredImage(sha256, final, len(data), created)

    def put_file(self, path: Path) -> StoredImage:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ImageStoreError(f"cannot read image {path}: {exc.strerror or exc}") from exc
        return self.put_bytes(data)

    def put_array(self, image: np.ndarray) -> StoredImage:
        """Store an RGB uint8 array losslessly as PNG."""
        import cv2  # noqa: PLC0415 - only needed for arrays

        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ImageStoreError(f"expected an HxW or HxWx3 uint8 image, got {image.dtype} {image.shape}")
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
        ok, encoded = cv2.imencode(".png", bgr)
        if not ok:
            raise ImageStoreError(f"could not encode a {image.shape} image as PNG")
        return self.put_bytes(encoded.tobytes())

    def read_bytes(self, sha256: str, *, verify: bool = True) -> bytes:
        path = self.find(sha256)
        if path is None:
            raise ImageStoreError(f"image {sha256} is not in {self.root}")
        data = path.read_bytes()
        if verify and hashlib.sha256(data).hexdigest() != sha256:
            raise ImageStoreError(f"image file {path} is corrupt: its content no longer matches its name")
        return data


def _fsync_dir(folder: Path) -> None:
    """Make the new directory entry durable (POSIX); harmless where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
