"""The separable smoothing kernel: replicate borders, any layout, short axes, gradients."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from structreg.core.ops import kernels
from structreg.core.ops.smoothing import gaussian_kernel1d


def _scipy_smooth(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    out = image
    for axis in range(2, image.ndim):
        out = ndimage.correlate1d(out, kernel, axis=axis, mode="nearest")
    return out


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 2, 3, 11, 6), (2, 1, 17, 2)])
def test_smoothing_matches_replicate_padding_on_short_axes(shape):
    """Axes shorter than the kernel (9 taps) still smooth as replicate padding does."""
    image = torch.from_numpy(np.random.default_rng(0).normal(size=shape))
    kernel = gaussian_kernel1d(2.0, 9, dtype=torch.float64)
    ours = kernels.gaussian_smooth(image, kernel).numpy()
    np.testing.assert_allclose(ours, _scipy_smooth(image.numpy(), kernel.numpy()), atol=1e-12)


def test_smoothing_of_a_channels_last_tensor_equals_the_contiguous_one():
    image = torch.randn(2, 3, 12, 10, 8)
    kernel = gaussian_kernel1d(1.0, 7)
    last = image.contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(
        kernels.gaussian_smooth(last, kernel), kernels.gaussian_smooth(image, kernel)
    )


def test_smoothing_matrix_rows_sum_to_one_and_gradients_pass():
    kernel = gaussian_kernel1d(1.5, 7, dtype=torch.float64)
    matrix = kernels.smoothing_matrix(5, kernel)
    torch.testing.assert_close(matrix.sum(1), torch.ones(5, dtype=torch.float64))
    image = torch.randn(1, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: kernels.gaussian_smooth(x, kernel), (image,))
