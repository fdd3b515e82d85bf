"""Image reading for the datasets: OpenCV decoding (optionally at 1/2, 1/4, 1/8 size) with clear errors.

A JPEG can be decoded directly at a reduced size (libjpeg's DCT scaling), several times faster
than a full decode. Pixel ``i`` of an image decoded at ``1/r`` covers full-size pixels
``r*i .. r*i + r - 1``, so its centre is at ``r*i + (r - 1) / 2`` full-size px
(:func:`reduced_to_full_matrix`). :func:`reduction_for_zoom` picks the largest reduction that
still leaves at least one decoded pixel per crop pixel, so the crop is never upsampled from the
reduced image and results change only by interpolation noise.
"""

from pathlib import Path

import cv2
import numpy as np

_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
          8: cv2.IMREAD_REDUCED_COLOR_8}
REDUCTIONS = tuple(_FLAGS)


def prepare_opencv_for_fork() -> None:
    """Make OpenCV single-threaded in this process, before DataLoader workers are forked.

    OpenCV's thread pool does not survive ``fork``: a worker that resizes the pool it inherited
    (``cv2.setNumThreads`` in a ``worker_init_fn``) can deadlock on the parent's copied locks. Set
    in the parent, the count is inherited and workers never touch the pool. One thread per worker
    is also what data loading wants (the workers are the parallelism)."""
    cv2.setNumThreads(1)


class CorruptImageError(ValueError):
    """An image file exists but cannot be decoded; the message names it."""


def read_image(path: str | Path, reduce: int = 1) -> np.ndarray:
    """Read a colour image as (H, W, 3) uint8 BGR, EXIF orientation ignored (as the official code).

    Grayscale, RGBA and 16-bit images are converted to 3-channel 8-bit BGR (OpenCV's
    ``IMREAD_COLOR``: gray replicated, alpha dropped, 16-bit values divided by 256).

    ``reduce`` in (1, 2, 4, 8) decodes at that fraction of the size (JPEG: DCT scaling; other
    formats are resized by OpenCV, rounding the size down). A non-JPEG image too small to be
    reduced (fewer than ``reduce`` px on a side) is returned at full size: callers compare the
    shape. Raises FileNotFoundError when the file is missing and :class:`CorruptImageError` when it
    is empty, cannot be decoded or a JPEG is truncated (no end marker).
    """
    if reduce not in _FLAGS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce}")
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    except IsADirectoryError:
        raise CorruptImageError(f"{path}: is a directory, expected an image file") from None
    if not data:
        raise CorruptImageError(f"{path}: empty file (0 bytes); expected a JPEG or PNG image")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-1024:]:
        raise CorruptImageError(f"{path}: truncated JPEG (no end-of-image marker); expected a complete JPEG")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), _FLAGS[reduce] | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as exc:
        if reduce > 1:  # OpenCV cannot shrink an image smaller than the reduction (non-JPEG): full size
            return read_image(path, 1)
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "OpenCV error"
        raise CorruptImageError(f"{path}: cannot decode ({len(data)} bytes; {reason}); expected a JPEG or "
                                "PNG image readable by OpenCV") from None
    if image is None:
        raise CorruptImageError(f"{path}: cannot decode ({len(data)} bytes); expected a JPEG or PNG "
                                "image readable by OpenCV")
    return image


def reduction_for_zoom(zoom: float, max_reduce: int = 8) -> int:
    """Largest ``r`` in (1, 2, 4, 8), at most ``max_reduce``, with ``r * zoom <= 1``.

    ``zoom`` is crop px per image px (the largest row norm of the crop matrix's linear part).
    """
    best = 1
    for r in REDUCTIONS:
        if r <= max_reduce and r * zoom <= 1.0 + 1e-9:
            best = r
    return best


def crop_zoom(mat: np.ndarray) -> float:
    """Crop px per image px of a (2, 3) image -> crop matrix (finest axis)."""
    mat = np.asarray(mat, dtype=np.float64)
    return float(np.sqrt((mat[:, :2] ** 2).sum(axis=1)).max())


def reduced_to_full_matrix(reduce: int) -> np.ndarray:
    """(2, 3) reduced-image px -> full-size px: ``x = r * x' + (r - 1) / 2``."""
    off = (reduce - 1) / 2.0
    return np.array([[reduce, 0.0, off], [0.0, reduce, off]], dtype=np.float64)
