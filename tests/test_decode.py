"""Safe image decoding: odd files become a clear ImageDecodeError, odd pixel formats follow the documented rules."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.imaging.decode import (
    ImageDecodeError,
    decode_bytes,
    decode_bytes_at_least,
    encode_jpg,
    image_size,
    jpeg_frame,
    probe_size,
    read_image,
    to_rgb8,
    write_image,
)


def _rgb(height: int = 48, width: int = 64) -> np.ndarray:
    rng = np.random.default_rng(1)
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = 200  # strongly red so a channel swap would show
    image[..., 1] = rng.integers(0, 60, (height, width))
    image[..., 2] = 30
    return image


def _png(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    assert ok
    return buf.tobytes()


def test_jpg_decodes_to_rgb():
    image = _rgb()
    decoded = decode_bytes(encode_jpg(image))
    assert decoded.shape == (48, 64, 3) and decoded.dtype == np.uint8
    assert abs(int(decoded[..., 0].mean()) - 200) < 5 and decoded[..., 2].mean() < 40  # RGB, not BGR


def test_png_is_lossless():
    image = _rgb()
    assert np.array_equal(decode_bytes(_png(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))), image)


def test_16bit_png_is_scaled_by_1_over_257():
    values = np.array([[0, 128, 257, 32896, 65534, 65535]], np.uint16)
    decoded = decode_bytes(_png(values))
    assert decoded.shape == (1, 6, 3)
    assert decoded[0, :, 0].tolist() == [0, 0, 1, 128, 255, 255]
    assert (decoded[..., 0] == decoded[..., 1]).all() and (decoded[..., 1] == decoded[..., 2]).all()


def test_grayscale_is_replicated():
    gray = np.arange(48 * 64, dtype=np.uint32).reshape(48, 64).astype(np.uint8)
    decoded = decode_bytes(_png(gray))
    assert decoded.shape == (48, 64, 3)
    for c in range(3):
        assert np.array_equal(decoded[..., c], gray)


def test_rgba_is_composited_on_white():
    bgra = np.zeros((2, 2, 4), np.uint8)
    bgra[..., 2] = 200  # red in BGR order
    bgra[0, 0, 3] = 255  # opaque
    bgra[0, 1, 3] = 0  # transparent: white belt
    bgra[1, :, 3] = 128  # half
    decoded = decode_bytes(_png(bgra))
    assert decoded[0, 0].tolist() == [200, 0, 0]
    assert decoded[0, 1].tolist() == [255, 255, 255]
    assert decoded[1, 0].tolist() == [int(np.rint(200 * 128 / 255 + 255 * 127 / 255)),
                                      int(np.rint(255 * 127 / 255)), int(np.rint(255 * 127 / 255))]


def test_truncated_jpg_is_refused():
    data = encode_jpg(_rgb(300, 400))
    with pytest.raises(ImageDecodeError, match="scan.jpg: the JPG is truncated"):
        decode_bytes(data[: int(len(data) * 0.8)], "scan.jpg")
    with pytest.raises(ImageDecodeError, match="no image data"):
        decode_bytes(data[:100], "scan.jpg")


def test_jpg_with_trailer_after_end_marker_is_accepted():
    """Scanners and cameras may append metadata after the EOI marker; the image is still whole."""
    data = encode_jpg(_rgb())
    trailer = b"SCANNER-METADATA " * 20
    assert np.array_equal(decode_bytes(data + trailer), decode_bytes(data))


@pytest.mark.parametrize("data, fragment", [
    (b"", r"empty \(0 bytes\)"),
    (b"this is not an image\n", "not a readable image"),
    (bytes(range(256)) * 8, "not a readable image"),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a readable image"),  # PNG signature, garbage after
])
def test_corrupt_bytes_are_refused(data, fragment):
    with pytest.raises(ImageDecodeError, match=fragment):
        decode_bytes(data, "x")


def test_file_errors_name_the_path(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    for path, fragment in ((empty, "0 bytes"), (text, "not a readable image"), (tmp_path, "not a regular file"),
                           (tmp_path / "absent.jpg", "no such file")):
        with pytest.raises(ImageDecodeError, match=fragment) as info:
            read_image(path)
        assert str(path) in str(info.value)


def test_to_rgb8_rules():
    assert to_rgb8(np.array([[0.0, 0.5, 1.0, 2.0]], np.float32))[0, :, 0].tolist() == [0, 128, 255, 255]
    with pytest.raises(ImageDecodeError, match="NaN"):
        to_rgb8(np.array([[np.nan]], np.float32))
    with pytest.raises(ImageDecodeError, match="2 channels"):
        to_rgb8(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ImageDecodeError, match="unsupported pixel type"):
        to_rgb8(np.zeros((2, 2), np.int32))
    with pytest.raises(ImageDecodeError, match="empty"):
        to_rgb8(np.zeros((0, 3, 3), np.uint8))


def test_sizes_and_write_round_trip(tmp_path):
    image = _rgb(37, 53)
    write_image(tmp_path / "a.png", image)
    write_image(tmp_path / "a.tiff", image)
    assert np.array_equal(read_image(tmp_path / "a.tiff"), image)
    assert probe_size(tmp_path / "a.png") == image_size(tmp_path / "a.png") == (53, 37)
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(ImageDecodeError):
        probe_size(tmp_path / "bad.png")


def _scan(height: int, width: int) -> np.ndarray:
    """A smooth image with structure, so reduced-scale decoding can be compared to an area resize."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([128 + 100 * np.sin(x / 23.0), 128 + 100 * np.cos(y / 17.0), (x + y) % 256], axis=-1)
    return image.astype(np.uint8)


def test_jpeg_frame_reads_the_header_only():
    data = encode_jpg(_scan(954, 1225))
    assert jpeg_frame(data) == (8, 954, 1225)
    ok, progressive = cv2.imencode(".jpg", _scan(100, 150), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert jpeg_frame(progressive.tobytes()) == (8, 100, 150)
    assert jpeg_frame(_png(_rgb())) is None
    assert jpeg_frame(data[:20]) is None          # cut inside the header
    assert jpeg_frame(b"\xff\xd8" + b"\x00" * 50) is None


@pytest.mark.parametrize("size, min_size, factor", [
    ((954, 1225), (384, 512), 2),       # an OPIXray scan for the fast detector
    ((954, 1225), (100, 100), 2),       # never below half (see decode.py)
    ((954, 1225), (600, 800), 1),       # the model needs more than half: full decode
    ((300, 400), (384, 512), 1),        # smaller than the model input: full decode
])
def test_large_jpg_is_decoded_at_the_scale_the_consumer_needs(size, min_size, factor):
    full_image = _scan(*size)
    data = encode_jpg(full_image)
    image, original = decode_bytes_at_least(data, min_size, "scan.jpg")
    assert original == size
    expected_shape = (-(-size[0] // factor), -(-size[1] // factor))     # libjpeg rounds up
    assert image.shape == (*expected_shape, 3) and image.dtype == np.uint8
    assert image.shape[0] >= min_size[0] or factor == 1
    # What the consumer makes of it (an area resize to its input) is close to the same resize of the full decode.
    target = (min_size[1], min_size[0])
    reference = cv2.resize(decode_bytes(data), target, interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(cv2.resize(image, target, interpolation=cv2.INTER_AREA).astype(float) - reference).mean() < 2.0


def test_reduced_decoding_keeps_the_full_decoders_rules_and_errors():
    png = _png(cv2.cvtColor(_scan(954, 1225), cv2.COLOR_RGB2BGR))
    image, original = decode_bytes_at_least(png, (384, 512))       # not a JPG: decoded in full
    assert original == (954, 1225) and image.shape == (954, 1225, 3)
    data = encode_jpg(_scan(954, 1225))
    with pytest.raises(ImageDecodeError, match="scan.jpg: the JPG is truncated"):
        decode_bytes_at_least(data[: len(data) // 2], (384, 512), "scan.jpg")
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_bytes_at_least(b"", (384, 512), "x")
    gray = cv2.imencode(".jpg", _scan(954, 1225)[..., 0])[1].tobytes()
    image, _ = decode_bytes_at_least(gray, (384, 512))
    assert image.shape == (477, 613, 3) and np.array_equal(image[..., 0], image[..., 2])
