"""The one vocabulary of method names: the sheet's ``methods`` column, paths, tables, the report.

Every other module (and ``workflow/rules/*.smk``) names a method through these constants
or groups, never as a string of its own. A method's name is a path component
(``results/<run>/<dataset>/<method>/``), a value of the metrics table's ``method``
column, and a key of the report's colours.
"""

from __future__ import annotations

CORRUPTED = "corrupted"
"""Not a method: the dataset's input as given (tomogram, WBP, or Fourier-wedged volume), scored too."""
WBP = "wbp"
"""Weighted back-projection of the tilt series: the baseline."""
ISONET = "isonet"
"""The IsoNet-style baseline in our harness (consistency loss only)."""
CRYOGEN = "cryogen"
"""CryoGEN: generator trained against an energy model."""
CN = "cn"
"""Coordinate networks fitted per y-slab against the projections."""

METHODS = (WBP, ISONET, CRYOGEN, CN)
"""What the sheet's ``methods`` column may list, in report order."""
IMPLEMENTED_METHODS = METHODS
"""The methods this version runs (a sheet asking for another one stops at workflow start)."""
TRAINED_METHODS = (CRYOGEN, ISONET)
"""Methods of rules ``train_cryogen`` / ``predict_cryogen``: a generator trained on subtomograms."""
TILT_SERIES_METHODS = (WBP, CN)
"""Methods that need a tilt series (not a tomogram, not a Fourier-wedged volume)."""
CORRECTED_METHODS = (ISONET, CRYOGEN, CN)
"""Methods whose output is a missing-wedge-corrected tomogram (listed in the RELION-5 hand-off)."""
SCORED = (CORRUPTED, *METHODS)
"""Every ``method`` value of the metrics table, in report order."""


def wildcard_pattern(names: tuple[str, ...]) -> str:
    """A Snakemake wildcard constraint matching exactly ``names``: ``"cryogen|isonet"``."""
    return "|".join(names)
