"""Numba kernels behind :mod:`fastknn.augment`.

Array-in/array-out loops only: the public wrappers in ``fastknn/augment.py``
validate, coerce every image stack to C-contiguous ``float32`` and allocate the
outputs, so each kernel compiles to a single specialisation. The kernels are
serial; the wrappers run blocks of images in threads.

Coordinates follow :func:`scipy.ndimage.affine_transform`: axis 0 is the row
(``y``, growing downwards), axis 1 the column (``x``), pixel ``(r, c)`` sits at
integer coordinates.
"""

import numpy as np

from .._config import jit


# All mass on one row when the variance of the row coordinate is below this
# (in pixels squared): the slant is then undefined and taken as 0.
_MIN_ROW_VARIANCE = 1e-9


@jit()
def _image_moments(images, out):
    """Mass, centre of mass and slant of every image.

    Parameters
    ----------
    images : float32 array of shape (n_images, height, width)
        Non-negative intensities, C-contiguous.
    out : float64 array of shape (n_images, 4)
        Filled with ``mass, row_centre, col_centre, alpha`` per image, where
        ``alpha = mu11 / mu02`` is the covariance of (row, column) over the
        variance of the row coordinate. Rows of an image without mass are
        ``0, 0, 0, 0``; ``alpha`` is 0 when all mass lies on one row.
    """
    n_images, height, width = images.shape
    for i in range(n_images):
        # One pass over the pixels for per-row sums of I and I * column; the
        # central moments then follow from the rows alone, without the
        # cancellation of raw second moments.
        row_mass = np.empty(height)
        row_cmass = np.empty(height)
        mass = 0.0
        s_r = 0.0
        s_c = 0.0
        for r in range(height):
            m = 0.0
            mc = 0.0
            for c in range(width):
                v = np.float64(images[i, r, c])
                m += v
                mc += v * c
            row_mass[r] = m
            row_cmass[r] = mc
            mass += m
            s_r += m * r
            s_c += mc
        out[i, 0] = mass
        if mass <= 0.0:
            out[i, 1] = 0.0
            out[i, 2] = 0.0
            out[i, 3] = 0.0
            continue
        r0 = s_r / mass
        c0 = s_c / mass
        mu02 = 0.0
        mu11 = 0.0
        for r in range(height):
            dr = r - r0
            mu02 += row_mass[r] * dr * dr
            mu11 += dr * (row_cmass[r] - c0 * row_mass[r])
        out[i, 1] = r0
        out[i, 2] = c0
        out[i, 3] = mu11 / mu02 if mu02 > _MIN_ROW_VARIANCE * mass else 0.0


@jit()
def _affine_warp(images, matrices, offsets, out):
    """Resample each image through its own affine map, bilinear, zero fill.

    Output pixel ``o = (r, c)`` of image ``i`` takes the input value at
    ``matrices[i] @ o + offsets[i]``; neighbours that fall outside the image
    count as 0 (``mode="grid-constant", order=1`` in scipy terms).

    Parameters
    ----------
    images : float32 array of shape (n_images, height, width)
        C-contiguous input stack.
    matrices : float64 array of shape (n_images, 2, 2)
        Output-to-input linear part per image.
    offsets : float64 array of shape (n_images, 2)
        Output-to-input translation per image.
    out : float32 array of shape (n_images, height, width)
        Written in full.
    """
    n_images, height, width = images.shape
    for i in range(n_images):
        a00 = matrices[i, 0, 0]
        a01 = matrices[i, 0, 1]
        a10 = matrices[i, 1, 0]
        a11 = matrices[i, 1, 1]
        for r in range(height):
            y_row = a00 * r + offsets[i, 0]
            x_row = a10 * r + offsets[i, 1]
            for c in range(width):
                y = y_row + a01 * c
                x = x_row + a11 * c
                if not (-1.0 < y < height and -1.0 < x < width):
                    out[i, r, c] = 0.0  # all four neighbours outside
                    continue
                y_lo = np.floor(y)
                x_lo = np.floor(x)
                fy = y - y_lo
                fx = x - x_lo
                r_lo = int(y_lo)
                c_lo = int(x_lo)
                if 0 <= r_lo < height - 1 and 0 <= c_lo < width - 1:
                    top = (1.0 - fx) * images[i, r_lo, c_lo] + fx * images[i, r_lo, c_lo + 1]
                    bottom = (1.0 - fx) * images[i, r_lo + 1, c_lo] + fx * images[
                        i, r_lo + 1, c_lo + 1
                    ]
                    out[i, r, c] = (1.0 - fy) * top + fy * bottom
                    continue
                # Along the border: skip the neighbours outside the image.
                acc = 0.0
                for dr in range(2):
                    rr = r_lo + dr
                    if rr < 0 or rr >= height:
                        continue
                    wy = fy if dr == 1 else 1.0 - fy
                    for dc in range(2):
                        cc = c_lo + dc
                        if cc < 0 or cc >= width:
                            continue
                        wx = fx if dc == 1 else 1.0 - fx
                        acc += wy * wx * images[i, rr, cc]
                out[i, r, c] = acc
