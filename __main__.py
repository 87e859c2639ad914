"""Pulumi entry point: validated settings -> build -> stack outputs. Nothing else happens here."""

import pulumi

from infra.program import build, settings_from_engine

for key, value in build(settings_from_engine()).items():
    pulumi.export(key, value)
