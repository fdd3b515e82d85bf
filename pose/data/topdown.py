"""The top-down inference steps, written once for evaluation (``tools/test.py``) and the predictor.

1. box ``x, y, w, h`` -> crop centre/scale (:meth:`CropInput.center_scale`, the official ``_xywh2cs``);
2. crop + normalise (:meth:`CropInput.__call__`): ``cv2.warpAffine`` bilinear with the codec's crop
   matrix to the network input size, BGR -> RGB when ``color_rgb``, ``(x / 255 - mean) / std``;
3. the forward pass with flip test (:func:`network_heatmaps`): the mirrored inputs go in the same
   batch, their heatmaps are flipped back by the codec (shifted one pixel for the Gaussian codec
   when ``shift_heatmap``) and averaged in float32;
4. decoding to image px (:func:`decode_to_image`) and the official instance rescoring (:func:`rescore`).

The dataset's validation items (``pose.data.coco``), the evaluator (``pose.engine.evaluator``) and
the predictor (``pose.predictor``) call these, so the predictor's keypoints for an image and a box
equal those ``tools/test.py`` writes for them (a test checks this for every codec, flip on and off).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from pose.data.codecs import HeatmapCodec
from pose.data.transforms import box_to_center_scale

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CropInput:
    """Box -> crop -> normalised network input.

    input_size: network input (width, height) px.
    color_rgb: feed RGB (False: BGR, as the official ResNet configs).
    mean, std: per-channel normalisation of the [0, 1] image, in the fed channel order.
    padding, pixel_std: box padding and the unit of scale (official 1.25 and 200).
    """

    input_size: tuple[int, int]
    color_rgb: bool = True
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD
    padding: float = 1.25
    pixel_std: float = 200.0
    _mul: torch.Tensor = field(init=False, repr=False, compare=False)
    _add: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std must have 3 values (std > 0), got {self.mean}, {self.std}")
        object.__setattr__(self, "input_size", (int(self.input_size[0]), int(self.input_size[1])))
        # (x / 255 - mean) / std as one multiply-add per channel.
        mul = torch.tensor([1.0 / (255.0 * s) for s in self.std], dtype=torch.float32).view(3, 1, 1)
        add = torch.tensor([-m / s for m, s in zip(self.mean, self.std)], dtype=torch.float32).view(3, 1, 1)
        object.__setattr__(self, "_mul", mul)
        object.__setattr__(self, "_add", add)

    @property
    def aspect_ratio(self) -> float:
        return self.input_size[0] / self.input_size[1]

    def center_scale(self, box_xywh: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Box ``x, y, w, h`` image px -> ``(center (2,), scale (2,))`` float32 of its crop."""
        return box_to_center_scale(box_xywh, self.aspect_ratio, self.padding, self.pixel_std)

    def __call__(self, image_bgr: np.ndarray, matrix: np.ndarray) -> torch.Tensor:
        """(3, H, W) float32 network input: ``image_bgr`` (h, w, 3) uint8 warped by ``matrix``
        (2, 3) image px -> crop px (bilinear), channels reordered when ``color_rgb``, normalised."""
        crop = cv2.warpAffine(image_bgr, np.asarray(matrix, np.float64), self.input_size, flags=cv2.INTER_LINEAR)
        chw = crop.transpose(2, 0, 1)
        if self.color_rgb:
            chw = chw[::-1]
        return torch.from_numpy(np.ascontiguousarray(chw)).float().mul_(self._mul).add_(self._add)


def last_output(output: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """The heatmaps evaluated: the last of a network's stage outputs (official), or its only output."""
    return output[-1] if isinstance(output, (list, tuple)) else output


def network_heatmaps(model: Callable[[torch.Tensor], torch.Tensor | Sequence[torch.Tensor]],
                     images: torch.Tensor, codec: HeatmapCodec, *, flip_test: bool, shift_heatmap: bool,
                     channels_last: bool = False) -> torch.Tensor:
    """Heatmaps (N, K, h, w) float32 of ``images`` (N, 3, H, W), on the images' device.

    With ``flip_test`` the mirrored images go through the network in the same batch and their
    heatmaps, mapped back by ``codec.flip_back(shift=shift_heatmap)``, are averaged with the
    unmirrored ones (official). ``channels_last``: the batch is fed in that memory format (for a
    network converted to it). The caller owns eval mode, ``inference_mode`` and autocast.
    """
    n = images.shape[0]
    inputs = torch.cat([images, images.flip(3)]) if flip_test else images
    if channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    out = last_output(model(inputs)).float()
    if flip_test:
        out = (out[:n] + codec.flip_back(out[n:], shift=shift_heatmap)) * 0.5
    return out


def decode_to_image(codec: HeatmapCodec, heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                    refine: str) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (N, K, h, w) of crops ``centers``/``scales`` (N, 2) -> ``(coords (N, K, 2) float32
    image px, maxvals (N, K) float32)``: the codec's decoding (``refine``) and its inverse crop."""
    coords, maxvals = codec.decode(heatmaps, refine=refine)
    return codec.to_image(coords, centers, scales), maxvals.astype(np.float32, copy=False)


def rescore(maxvals: np.ndarray, box_scores: np.ndarray, kpt_score_thresh: float = 0.2) -> np.ndarray:
    """Instance scores (N,) float64: box score x mean of the joint scores (N, K) above the threshold.

    An instance with no joint above the threshold scores 0 (official). The mean is summed joint
    by joint (vectorised over instances) so the result equals the official per-joint loop exactly.
    """
    maxvals = np.asarray(maxvals)
    box_scores = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    if maxvals.ndim != 2 or maxvals.shape[0] != box_scores.shape[0]:
        raise ValueError(f"maxvals must be (N, K) with N = {box_scores.shape[0]} box scores, "
                         f"got {maxvals.shape}")
    vals = maxvals.astype(np.float64)
    above = vals > kpt_score_thresh
    total = np.zeros(vals.shape[0])
    for k in range(vals.shape[1]):
        total += np.where(above[:, k], vals[:, k], 0.0)
    count = above.sum(axis=1)
    mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return mean * box_scores
