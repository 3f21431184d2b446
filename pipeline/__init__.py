"""facebench: a reproducible benchmark for face super-resolution.

All logic of the Snakemake workflow lives in this package, grouped by the
stages of the workflow over a shared ground floor (the plan: ``README.md``
beside this file); the rules under ``workflow/`` only call into it.
"""

__version__ = "0.1.0"
