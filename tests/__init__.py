"""Test package root.

It makes ``tests/triton`` import as ``tests.triton``: without it pytest puts ``tests/`` on sys.path and
imports that directory as a top-level ``triton`` package, which shadows OpenAI Triton for torch
(``torch.onnx.export`` then fails with "module 'triton' has no attribute 'language'").
"""
