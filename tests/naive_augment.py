"""Slow, readable references for ``fastknn.augment``, one image at a time.

Independent of the package: moments by numpy sums over a coordinate grid,
resampling by :func:`scipy.ndimage.affine_transform`, shifts by explicit
index arithmetic. Everything in float64.
"""

import numpy as np
from scipy import ndimage


def moments(image):
    """``(mass, row_centre, col_centre, alpha)`` of one 2-D image."""
    image = np.asarray(image, dtype=np.float64)
    mass = image.sum()
    if mass == 0:
        return 0.0, 0.0, 0.0, 0.0
    rows, cols = np.indices(image.shape, dtype=np.float64)
    r0 = (rows * image).sum() / mass
    c0 = (cols * image).sum() / mass
    mu02 = ((rows - r0) ** 2 * image).sum()
    mu11 = ((rows - r0) * (cols - c0) * image).sum()
    # Slant undefined when (nearly) all mass lies on one row: take 0.
    alpha = mu11 / mu02 if mu02 > 1e-9 * mass else 0.0
    return mass, r0, c0, alpha


def deskew_image(image):
    """Deskew one square image: shear by alpha, centre of mass to the centre."""
    image = np.asarray(image, dtype=np.float64)
    mass, r0, c0, alpha = moments(image)
    if mass == 0:
        return image.copy()
    centre = (image.shape[0] - 1) / 2.0
    matrix = np.array([[1.0, 0.0], [alpha, 1.0]])
    offset = np.array([r0, c0]) - matrix @ np.array([centre, centre])
    # "grid-constant": bilinear weights on outside neighbours multiply zeros.
    return ndimage.affine_transform(
        image, matrix, offset=offset, order=1, mode="grid-constant", cval=0.0
    )


def rotate_image(image, degrees):
    """Rotate one image counter-clockwise (as displayed) about its centre."""
    image = np.asarray(image, dtype=np.float64)
    theta = np.deg2rad(degrees)
    matrix = np.array(
        [[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]]
    )
    centre = np.full(2, (image.shape[0] - 1) / 2.0)
    return ndimage.affine_transform(
        image, matrix, offset=centre - matrix @ centre, order=1, mode="grid-constant"
    )


def shift_image(image, d_row, d_col):
    """Move the content by ``(d_row, d_col)`` pixels, zero-filled."""
    image = np.asarray(image)
    out = np.zeros_like(image)
    height, width = image.shape
    for r in range(height):
        for c in range(width):
            rr, cc = r + d_row, c + d_col
            if 0 <= rr < height and 0 <= cc < width:
                out[rr, cc] = image[r, c]
    return out
