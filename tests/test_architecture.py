"""The floor plan (docs/ARCHITECTURE.md) holds: import contracts, the plan derived once, the build Job's
imports, and the dynamic providers' pickled import paths."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import dill
import pytest

from tests.pulumi_harness import run_stack

REPO = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    """`lint-imports` (import-linter) with the contracts in pyproject.toml: dependencies point down only."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout and "3 kept" in result.stdout


def test_the_stack_plan_is_derived_once_per_program_run(monkeypatch):
    """Catalog selection, the source lock, the engine plan, the gpu overrides and the serving settings are
    computed once per `pulumi up`, however many components use them. Every module-level reference to each
    function is wrapped, so a second caller anywhere in the program is counted too."""
    import engines.catalog_engines
    import engines.source_lock
    import model_repo.catalog.operations
    import model_repo.catalog.overrides
    import platform_spec.serving

    originals = {
        "select": model_repo.catalog.operations.select,
        "load_overrides": model_repo.catalog.overrides.load_overrides,
        "load_lock": engines.source_lock.load_lock,
        "plan_engines": engines.catalog_engines.plan_engines,
        "triton_settings": platform_spec.serving.triton_settings,
    }
    calls: Counter[str] = Counter()

    def counting(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    wrapped = {id(f): (name, counting(name, f)) for name, f in originals.items()}
    for module in [m for m in list(sys.modules.values()) if m is not None]:
        for attribute, value in list(vars(module).items()):
            if callable(value) and id(value) in wrapped:
                monkeypatch.setattr(module, attribute, wrapped[id(value)][1])

    run = run_stack("dev")
    run.raise_error()
    assert dict(calls) == {name: 1 for name in originals}, dict(calls)


def test_the_build_job_bundle_imports_on_its_own(tmp_path):
    """The build Job runs the bundle from a ConfigMap in NVIDIA's image: it must import under its real
    package names with nothing of this checkout on the path and without the settings parser."""
    from engines.runners.code_bundle import code_bundle

    bundle = tmp_path / "engines.zip"
    bundle.write_bytes(code_bundle())
    names = zipfile.ZipFile(io.BytesIO(bundle.read_bytes())).namelist()
    assert "platform_spec/gpus.py" in names and not any(n.startswith("infra/") for n in names)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import engines.job_main, engines.spec;"
        "import platform_spec; assert platform_spec.__file__.startswith(sys.argv[1]), platform_spec.__file__;"
        "assert 'platform_spec.settings' not in sys.modules and 'pulumi' not in sys.modules, sorted(sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(bundle)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize(
    ("module", "cls"), [("engines.provider", "EngineProvider"), ("infra.triton.store_copy", "StoreCopyProvider")]
)
def test_dynamic_providers_keep_their_pickled_import_paths(module, cls):
    """Pulumi stores each dynamic provider pickled by reference (dill, recurse=True) in every resource's
    state and imports it by that path for refresh, diff and delete; the paths must not move."""
    import importlib

    provider_class = getattr(importlib.import_module(module), cls)
    # what pulumi.dynamic.dynamic.serialize_provider does (pulumi 3.272: dynamic.py:318)
    serialized = dill.dumps(provider_class(), protocol=pickle.DEFAULT_PROTOCOL, recurse=True)
    assert module.encode() in serialized and cls.encode() in serialized
    assert isinstance(dill.loads(serialized), provider_class)
