"""Sphinx configuration of the fastknn documentation.

Build from the repository root, warnings as errors::

    pip install ".[docs]"
    sphinx-build -W -b html docs docs/_build/html
"""

import os
import sys

# Document the fastknn of this checkout, installed or not.
sys.path.insert(0, os.path.abspath(".."))

import fastknn  # noqa: E402

project = "fastknn"
author = "the fastknn developers"
copyright = "the fastknn developers; code BSD-3-Clause, MNIST digits CC BY-SA 3.0"
version = release = fastknn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# API pages: one generated page per public object (docs/api/generated/, not
# in git). numpydoc renders the sections; the class template lists methods.
autosummary_generate = True
autosummary_imported_members = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# No intersphinx: the build must work offline, and a failed inventory fetch
# would be a warning, i.e. an error under -W. References to numpy,
# scikit-learn and the standard library render as literal names.

# `name` renders as code, as in scikit-learn's docs (e.g. ``(`n_features_in_`,)``).
default_role = "literal"

html_theme = "alabaster"
html_title = f"fastknn {release}"
html_theme_options = {
    "description": "Exact k-nearest-neighbour classification with Numba kernels",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "230px",
}
html_static_path = []


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Document a class's methods only where fastknn defines them.

    Methods inherited from scikit-learn's base classes (``get_params``,
    ``score``, the ``set_*_request`` methods of metadata routing...) keep
    their documentation in scikit-learn; methods fastknn defines, including
    those of its private base classes, are listed on each class's page.
    """
    if callable(obj) and not (getattr(obj, "__module__", None) or "").startswith("fastknn"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_members)
