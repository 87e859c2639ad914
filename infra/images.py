"""The platform's container images: built from a Dockerfile of ``docker/`` and pushed to the stack's ECR
repository with pulumi-docker; workloads and build Jobs reference them by digest.

Two recipes (``ImageRecipe``), each with flavours that differ only in base image and requirements file:
- ``TRITON`` (``docker/triton``): the serving images, ``llm`` on the TensorRT-LLM flavour of the pinned Triton
  release and ``speech`` on the plain image (``platform_spec.versions``).
- ``ENGINE_BUILDER`` (``docker/engine-builder``): the images the engine-build Jobs run in, ``tensorrt`` on the
  TensorRT image of the same release and ``tensorrt-llm`` on the TensorRT-LLM Triton image, with the build's
  Python dependencies baked in, so a build pod installs nothing at run time while it can write the engine store.

The tag is the recipe's prefix, the flavour, the Triton release and a digest of every file in the build context:
the ECR repository has immutable tags, so the same context always pushes the same tag (a no-op) and any change
pushes a new one, never overwriting. Pods use ``repo@sha256:...`` (the digest the registry returned), so what
runs is exactly what was pushed even if a tag were ever moved.

The build context is staged: exactly the files the image copies (``ImageRecipe.context_paths``) are copied into
``build/<recipe>-image-context/<digest>/`` and that directory is the context. pulumi-docker hashes the whole
context on every preview and reads only a ``.dockerignore`` at the context root, so pointing it at the
repository root would make it walk the virtualenv and every build output.

The registry credentials come from ``aws.ecr.get_authorization_token_output`` (a 12-hour token for
the caller's identity), marked secret so they never appear in state or logs in plain text.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from engines.runners.kubernetes_job import BUILD_IMAGE_BASES
from platform_spec import versions
from platform_spec.settings import REPO_ROOT

DEFAULT_STAGING_PARENT = REPO_ROOT / "build"
# What the build context holds (a test checks every COPY source of the Dockerfile is among them).
# The smoke checker (local.smoke) ships with the two local modules it imports, and nothing else of local/.
SMOKE_CLIENT_PATHS: tuple[str, ...] = tuple(
    f"local/{name}.py" for name in ("__init__", "smoke", "model_inputs", "triton_calls")
)
CONTEXT_PATHS: tuple[str, ...] = ("docker/triton", "platform_spec", "model_repo", *SMOKE_CLIENT_PATHS)
_EXCLUDED_PARTS = {"__pycache__", "tests"}
PLATFORM = "linux/amd64"  # every GPU instance family the platform supports is x86_64

# Flavour -> base image. The LLM pool needs TensorRT-LLM; speech models need only TensorRT + Python.
BASE_IMAGES: dict[str, str] = {role: runtime.image for role, runtime in versions.RUNTIMES.items()}


@dataclass(frozen=True)
class ImageRecipe:
    name: str  # names the staging directory and the component resources
    dockerfile: Path  # relative to the repository root; its directory holds requirements-<flavour>.txt
    context_paths: tuple[str, ...]
    base_images: Mapping[str, str] = field(default_factory=dict)  # flavour -> base image
    tag_prefix: str = ""

    @property
    def docker_dir(self) -> str:
        return self.dockerfile.parent.as_posix()

    def staging_dir(self, parent: Path = DEFAULT_STAGING_PARENT) -> Path:
        """Where this recipe's build contexts are staged: ``<parent>/<name>-image-context``."""
        return Path(parent) / f"{self.name}-image-context"


TRITON = ImageRecipe("triton", Path("docker/triton/Dockerfile"), CONTEXT_PATHS, BASE_IMAGES)
ENGINE_BUILDER = ImageRecipe("engine-builder", Path("docker/engine-builder/Dockerfile"), ("docker/engine-builder",),
                             BUILD_IMAGE_BASES, tag_prefix="engine-builder-")  # fmt: skip


class ImageError(ValueError):
    """The image cannot be built as asked; the message names the input and the fix."""


def flavour_of_role(role: str) -> str:
    """The image flavour a GPU pool of ``role`` runs."""
    if role not in BASE_IMAGES:
        raise ImageError(f"GPU pool role {role!r} has no Triton image flavour; use one of {sorted(BASE_IMAGES)}")
    return role


def context_files(root: Path = REPO_ROOT, recipe: ImageRecipe = TRITON) -> list[Path]:
    """Files of the build context, sorted: the recipe's paths; of its docker directory only the Dockerfile and
    the requirement files."""
    files: list[Path] = []
    for entry in recipe.context_paths:
        path = root / entry
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not _EXCLUDED_PARTS & set(p.relative_to(root).parts)
                and p.suffix != ".pyc"
                and (entry != recipe.docker_dir or p.name.startswith("requirements-") or p.name == "Dockerfile")
            )
        else:
            raise ImageError(f"build context path {entry} is missing under {root}; the image cannot be built")
    return sorted(files)


def context_digest(root: Path = REPO_ROOT, files: Iterable[Path] | None = None, recipe: ImageRecipe = TRITON) -> str:
    """sha256 over (relative path, content) of every context file: equal contexts, equal tags."""
    digest = hashlib.sha256()
    for path in files if files is not None else context_files(root, recipe):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def stage_context(
    root: Path = REPO_ROOT, staging_root: Path | None = None, recipe: ImageRecipe = TRITON
) -> tuple[Path, str]:
    """Copy the context files into ``staging_root/<digest>`` (default: the recipe's staging directory), reused when
    present; return it and the digest."""
    staging_root = recipe.staging_dir() if staging_root is None else Path(staging_root)
    files = context_files(root, recipe)
    digest = context_digest(root, files)
    final = staging_root / digest[:16]
    if final.is_dir() and context_digest(final, context_files(final, recipe)) == digest:
        return final, digest
    staging_root.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=".staging-", dir=staging_root))
    try:
        for path in files:
            target = temporary / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        if final.exists():
            shutil.rmtree(final)  # an incomplete earlier copy
        os.rename(temporary, final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return final, digest


def image_tag(flavour: str, digest: str, recipe: ImageRecipe = TRITON) -> str:
    return f"{recipe.tag_prefix}{flavour}-{versions.ngc_release(recipe.base_images[flavour])}-{digest[:16]}"


_DIGEST_REF = re.compile(r"^(?P<repo>[^@\s]+?)(?::[\w][\w.-]{0,127})?@(?P<digest>sha256:[0-9a-f]{64})$")


def digest_reference(repo_digest: str) -> str:
    """``repo[:tag]@sha256:...`` (pulumi-docker's ``repo_digest``) -> ``repo@sha256:...``."""
    match = _DIGEST_REF.match(repo_digest or "")
    if match is None:
        raise ImageError(f"registry returned {repo_digest!r}, not a repo@sha256:<64 hex> digest reference")
    return f"{match['repo']}@{match['digest']}"


def registry_host(repository_url: str) -> str:
    """``<account>.dkr.ecr.<region>.amazonaws.com/<name>`` -> the registry host."""
    return repository_url.split("/", 1)[0]


@dataclass(frozen=True)
class ImageArgs:
    repository_url: pulumi.Input[str]  # the ECR repository (Stores.repository_url)
    registry_id: pulumi.Input[str]  # its registry (account) id, for the authorization token
    flavour: str  # one of recipe.base_images
    recipe: ImageRecipe = TRITON
    context_root: Path = REPO_ROOT  # where the context files are read from
    staging_root: Path | None = None  # where the staged context is written (build/<recipe>-image-context)


class PlatformImage(pulumi.ComponentResource):
    """One flavour of one recipe, built for linux/amd64 and pushed to ECR.

    Outputs: ``image_name`` (``repo:tag``), ``reference`` (``repo@sha256:...``, what pods use).
    """

    def __init__(self, name: str, args: ImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("platform:images:PlatformImage", name, None, opts)
        recipe = args.recipe
        if args.flavour not in recipe.base_images:
            raise ImageError(f"{recipe.name} image flavour {args.flavour!r}: use one of {sorted(recipe.base_images)}")
        if not (Path(args.context_root) / recipe.dockerfile).is_file():
            raise ImageError(f"{Path(args.context_root) / recipe.dockerfile} does not exist; the image needs it")
        context, digest = stage_context(Path(args.context_root), args.staging_root, recipe)
        self.tag = image_tag(args.flavour, digest, recipe)

        token = aws.ecr.get_authorization_token_output(
            registry_id=args.registry_id, opts=pulumi.InvokeOptions(parent=self)
        )
        self.image = docker.Image(
            f"{name}-image",
            image_name=pulumi.Output.concat(args.repository_url, ":", self.tag),
            build=docker.DockerBuildArgs(
                context=str(context),
                dockerfile=str(context / recipe.dockerfile),
                platform=PLATFORM,
                builder_version=docker.BuilderVersion.BUILDER_BUILD_KIT,
                args={"BASE_IMAGE": recipe.base_images[args.flavour], "FLAVOUR": args.flavour},
            ),
            registry=docker.RegistryArgs(
                server=pulumi.Output.from_input(args.repository_url).apply(registry_host),
                username=token.user_name,
                password=pulumi.Output.secret(token.password),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.image_name: pulumi.Output[str] = self.image.image_name
        self.reference: pulumi.Output[str] = self.image.repo_digest.apply(digest_reference)
        self.register_outputs({"imageName": self.image_name, "reference": self.reference, "tag": self.tag})


def declare_images(
    name: str,
    repository_url: pulumi.Input[str],
    registry_id: pulumi.Input[str],
    wanted: Iterable[tuple[ImageRecipe, str]],
    *,
    staging_parent: Path = DEFAULT_STAGING_PARENT,
    context_root: Path = REPO_ROOT,
    opts: pulumi.ResourceOptions | None = None,
) -> dict[tuple[str, str], PlatformImage]:
    """One ``PlatformImage`` per (recipe, flavour) wanted, keyed by (recipe name, flavour)."""
    images = {}
    unique = {(recipe.name, flavour): (recipe, flavour) for recipe, flavour in wanted}
    for _, (recipe, flavour) in sorted(unique.items()):
        images[(recipe.name, flavour)] = PlatformImage(
            f"{name}-{recipe.tag_prefix}image-{flavour}",
            ImageArgs(repository_url, registry_id, flavour, recipe, context_root,
                      recipe.staging_dir(staging_parent)),  # fmt: skip
            opts=opts,
        )
    return images
