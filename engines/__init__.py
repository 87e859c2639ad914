"""Engines as content-addressed artifacts: specs and keys, builders, stores, runners, the Engine provider.

Start with ``engines.spec`` (what an engine is and its key), ``engines.provider`` (the ``Engine``
resource) and ``infra.engine_declarations`` (one Engine per enabled model and GPU pool); README.md in this
directory describes what runs where and what could not be run on a machine without a GPU.
"""
