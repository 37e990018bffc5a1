"""Docstrings of the public API: numpydoc sections and runnable examples.

Every public function and class (``fastknn.__all__``, ``fastknn.datasets``,
``fastknn.augment`` and ``fastknn.model_selection``) must have a docstring
with a summary line and an ``Examples`` section, and every example in the
modules that define them, and in the documentation pages, must run as a
doctest.
"""

import doctest
import importlib
import inspect
import pathlib
import re

import pytest

PUBLIC_MODULES = (
    "fastknn", "fastknn.datasets", "fastknn.augment", "fastknn.distortion", "fastknn.model_selection", "fastknn.dask"
)
# Modules that need an optional extra; absent when it is not installed.
OPTIONAL_DEPENDENCIES = {"fastknn.dask": "dask"}
DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# A numpydoc section header: its name, then a line of dashes at least as long.
_SECTION = re.compile(r"^(?P<name>[A-Z][A-Za-z ]+)\n(?P<rule>-+)$", re.MULTILINE)


def _import_if_present(name):
    """The module, or None where this version of fastknn does not have it."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name not in (name, OPTIONAL_DEPENDENCIES.get(name)):
            raise
        return None


def _public_names(module):
    """``__all__``, or else the functions and classes the module defines."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, obj in vars(module).items()
            if not name.startswith("_")
            and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == module.__name__
        ]
    return sorted(names)


def _public_objects():
    """``(qualified name, object)`` of every public function and class."""
    objects = []
    for module_name in PUBLIC_MODULES:
        module = _import_if_present(module_name)
        if module is None:
            continue
        for name in _public_names(module):
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                objects.append((f"{module_name}.{name}", obj))
    return objects


def _sections(docstring):
    """Names of the numpydoc sections of a docstring (headers with a matching rule)."""
    return [m["name"] for m in _SECTION.finditer(docstring) if len(m["rule"]) >= len(m["name"])]


def _doctest_modules():
    """The public modules and the modules defining their public objects."""
    names = {name for name in PUBLIC_MODULES if _import_if_present(name) is not None}
    names |= {obj.__module__ for _, obj in _public_objects()}
    return sorted(names)


def _module_doctests():
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = []
    for name in _doctest_modules():
        module = importlib.import_module(name)
        tests += [test for test in finder.find(module, name, globs={}) if test.examples]
    return sorted(tests, key=lambda test: test.name)


def _docs_pages():
    """The documentation pages that hold ``>>>`` examples."""
    pages = sorted(DOCS.glob("**/*.rst")) if DOCS.is_dir() else []
    return [page for page in pages if ">>>" in page.read_text(encoding="utf-8")]


def _run(test):
    """Run one doctest; fail with the runner's report of what went wrong."""
    report = []
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS, verbose=False)
    result = runner.run(test, out=report.append)
    if result.failed:
        pytest.fail(f"{result.failed} of {result.attempted} examples failed:\n" + "".join(report), pytrace=False)


PUBLIC_OBJECTS = _public_objects()


def test_public_api_is_found():
    names = {name for name, _ in PUBLIC_OBJECTS}
    assert {"fastknn.KNNClassifier", "fastknn.kneighbors", "fastknn.datasets.load_mnist_split"} <= names


@pytest.mark.parametrize("name, obj", PUBLIC_OBJECTS, ids=[name for name, _ in PUBLIC_OBJECTS])
def test_numpydoc_docstring_with_examples(name, obj):
    docstring = inspect.getdoc(obj)
    assert docstring, f"{name} has no docstring"
    summary = docstring.splitlines()[0]
    assert summary.strip() and summary.rstrip().endswith("."), f"{name}: the summary line must be a sentence"
    sections = _sections(docstring)
    assert "Examples" in sections, f"{name} has no Examples section (sections: {sections})"
    examples = docstring[docstring.index("Examples\n--"):]
    assert ">>>" in examples, f"{name}: the Examples section has no >>> example"
    if inspect.isfunction(obj) and inspect.signature(obj).parameters:
        assert "Parameters" in sections, f"{name} takes arguments but has no Parameters section"


MODULE_DOCTESTS = _module_doctests()


@pytest.mark.parametrize("test", MODULE_DOCTESTS, ids=[test.name for test in MODULE_DOCTESTS])
def test_docstring_examples_run(test):
    _run(test)


@pytest.mark.parametrize("page", _docs_pages(), ids=lambda page: str(page.relative_to(DOCS)))
def test_documentation_examples_run(page):
    text = page.read_text(encoding="utf-8")
    _run(doctest.DocTestParser().get_doctest(text, {}, page.name, str(page), 0))


@pytest.mark.skipif(not (DOCS / "api" / "index.rst").is_file(), reason="no docs/api/index.rst")
def test_api_reference_lists_every_public_object():
    page = (DOCS / "api" / "index.rst").read_text(encoding="utf-8")
    listed = set()
    for block in re.split(r"^\.\. currentmodule:: ", page, flags=re.MULTILINE)[1:]:
        module, _, body = block.partition("\n")
        listed |= {f"{module.strip()}.{name}" for name in re.findall(r"^   (\w+)$", body, re.MULTILINE)}
    # An object exported under several names (fastknn.KNNClassifierCV is
    # fastknn.model_selection.KNNClassifierCV) needs to be listed once.
    names_of = {}
    for name, obj in PUBLIC_OBJECTS:
        names_of.setdefault(id(obj), []).append(name)
    missing = sorted(names[0] for names in names_of.values() if not listed.intersection(names))
    assert not missing, f"public objects missing from docs/api/index.rst: {missing}"
