"""Numba kernels: array-in, array-out loops on validated, contiguous arrays."""
