"""Arrays to QImages the canvas can show without converting pixels on the GUI thread.

QImage (unlike QPixmap) may be built in any thread. On the raster backend a pixmap
wraps a QImage in the screen's native format (RGB32 for opaque images,
ARGB32_Premultiplied with alpha); ``QPixmap.fromImage`` of an image already in that
format only shares it, while any other format is converted pixel by pixel on the
GUI thread (~5 ms for the 1225x954 RGBA heat map). So the workers build images in
the native format and the canvas's ``setPixmap`` stays cheap.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def _check(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 or HxWx4 uint8 array, got {array.shape} {array.dtype}")
    return np.ascontiguousarray(array)


def display_qimage(array: np.ndarray) -> QImage:
    """An owned QImage in the pixmap-native format (RGB32, or ARGB32_Premultiplied for RGBA); any thread."""
    array = _check(array)
    height, width, channels = array.shape
    source = QImage(array.data, width, height, channels * width,
                    QImage.Format_RGB888 if channels == 3 else QImage.Format_RGBA8888)
    # Converting to another format always writes a new, owned buffer: the array may go away after this.
    return source.convertToFormat(QImage.Format_RGB32 if channels == 3 else QImage.Format_ARGB32_Premultiplied)
