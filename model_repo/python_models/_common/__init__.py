"""Code shared by the Python-backend models.

The renderer copies this directory into every Python model's version directory as the package
``_common`` (Triton's Python backend puts the version directory on ``sys.path``), so a rendered model
directory is self-contained. Nothing here imports Triton at module level except :mod:`_common.triton`.
"""
