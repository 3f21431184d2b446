"""Declared architectures: each module here holds ``SPECS``, torch-free.

The registry (:mod:`pipeline.upscale`) imports every module of this package.
"""
