"""facebench: a reproducible benchmark for face super-resolution.

All logic of the Snakemake workflow lives in this package; the rules under
``workflow/`` only call into it.
"""

__version__ = "0.1.0"
