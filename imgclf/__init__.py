"""imgclf: a reproducible image-classification pipeline.

The package holds all the logic; the Snakemake rules and scripts only unpack
their inputs, call one function from here and write what it returns.
"""

__version__ = "0.1.0"
