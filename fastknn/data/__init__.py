"""Data files packaged with fastknn, and the script that builds them.

``mnist_digits.npz`` holds 15,000 real MNIST digits; load it with
:func:`fastknn.datasets.load_mnist`. ``NOTICE.md`` gives its origin and
licence; ``build_digits.py`` rebuilds it from the original files.
"""
