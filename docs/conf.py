"""Sphinx configuration: the user guide (Markdown, via MyST) and the API reference (numpydoc)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import sketchsel  # noqa: E402

project = "sketchsel"
author = "The sketchsel developers"
copyright = "2026, The sketchsel developers"
release = version = sketchsel.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
autosummary_generate = True
autodoc_default_options = {
    "members": True,
    "inherited-members": False,
    # scikit-learn's metadata-routing setters, documented there, not here.
    "exclude-members": "set_fit_request, set_partial_fit_request, set_score_request, "
    "set_transform_request, set_output",
}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
myst_heading_anchors = 3
# The guide links to benchmark results and research notes that live outside docs/.
suppress_warnings = ["myst.xref_missing"]
html_theme = "pydata_sphinx_theme"
html_title = f"sketchsel {version}"
