"""One typed, validated model of a stack's configuration.

The stack's config (``Pulumi.<stack>.yaml``, namespace ``triton-platform:``) is parsed exactly once,
before any resource is declared. Every invalid value fails here with a message that names the key,
the value and the fix; components receive these frozen objects and never read ``pulumi.Config``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from platform_spec import gpus
from platform_spec.config_model import ConfigModel
from platform_spec.monitoring import MonitoringSettings, byte_size  # noqa: F401 (part of the settings tree)
from platform_spec.network import ClusterSettings, ExistingVpc, NetworkSettings  # noqa: F401 (part of the tree)
from platform_spec.serving import TritonSettings, TritonSettingsError, triton_overrides, triton_settings

PROJECT = "triton-platform"
REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A stack config that cannot be deployed; each line names key, value and fix."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"invalid stack config in {source}:\n" + "\n".join(f"  - {p}" for p in problems))


class _Scaling(ConfigModel):
    min_size: int = Field(ge=0)
    max_size: int = Field(ge=1)
    desired_size: int = Field(ge=0)

    @model_validator(mode="after")
    def _bounds(self):
        if self.min_size > self.max_size:
            raise ValueError(f"minSize {self.min_size} > maxSize {self.max_size}; make minSize <= maxSize")
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"desiredSize {self.desired_size} is outside [minSize {self.min_size}, maxSize {self.max_size}]"
            )
        return self


class SystemNodeGroup(_Scaling):
    instance_types: list[str] = Field(min_length=1)
    disk_size_gib: int = Field(default=50, ge=20, le=2000)

    @field_validator("instance_types")
    @classmethod
    def _cpu_only(cls, types: list[str]) -> list[str]:
        gpu = [t for t in types if gpus.sku_of_instance(t)]
        if gpu:
            raise ValueError(f"{gpu} are GPU instance types; the system group runs add-ons, use e.g. m7i.large")
        return types


class GpuPool(_Scaling):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,30}$")
    role: Literal["llm", "speech"]
    instance_types: list[str] = Field(min_length=1)
    gpu_sku: str
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"
    # Root volume holds the Triton image (~15 GB for the TRT-LLM flavour) plus engines and checkpoints.
    disk_size_gib: int = Field(default=200, ge=100, le=4000)
    labels: dict[str, str] = Field(default_factory=dict)
    # An On-Demand Capacity Reservation the pool's instances launch into (its instance type and AZ must match
    # the pool's: one instance type, and the reservation's zone among the stack's).
    capacity_reservation_id: str | None = None

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name == "system":
            raise ValueError("'system' is the CPU node group's pool name; choose another, e.g. llm-main")
        return name

    @field_validator("labels")
    @classmethod
    def _no_platform_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        reserved = sorted(k for k in labels if k.startswith("platform.io/") or k == "k8s.amazonaws.com/accelerator")
        if reserved:
            raise ValueError(
                f"{reserved} are set by the platform (pool, role, gpu-sku, accelerator); remove them from labels"
            )
        return labels

    @field_validator("gpu_sku")
    @classmethod
    def _known_sku(cls, sku: str) -> str:
        if sku not in gpus.GPU_SKUS:
            raise ValueError(f"unknown GPU SKU; use one of {sorted(gpus.GPU_SKUS)}")
        return sku

    @model_validator(mode="after")
    def _types_carry_sku(self) -> GpuPool:
        for itype in self.instance_types:
            if gpus.sku_of_instance(itype) is not None and itype not in gpus.INSTANCE_TYPES:
                raise ValueError(
                    f"instance type {itype!r} has no known shape (vCPUs, memory, GPUs) to size pods and builds "
                    "against; use one of platform_spec.gpus.INSTANCE_TYPES or add it there"
                )
            carried = gpus.sku_of_instance(itype)
            if carried is None:
                families = sorted(gpus.INSTANCE_FAMILY_SKU)
                raise ValueError(f"instance type {itype!r} has no GPU; use a GPU family: {families}")
            if carried != self.gpu_sku:
                raise ValueError(
                    f"instance type {itype!r} carries {carried}, not gpuSku {self.gpu_sku!r}; "
                    "an engine is built for one GPU, so a pool holds one SKU"
                )
        return self

    @field_validator("capacity_reservation_id")
    @classmethod
    def _reservation_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"cr-[0-9a-f]{17}", value):
            raise ValueError("not a capacity reservation id; use the id EC2 shows, like cr-0123456789abcdef0")
        return value

    @model_validator(mode="after")
    def _reservation(self) -> GpuPool:
        if self.capacity_reservation_id and (self.capacity_type != "ON_DEMAND" or len(self.instance_types) != 1):
            raise ValueError(
                f"capacityReservationId {self.capacity_reservation_id} holds one instance type on demand; give the "
                f"pool exactly one instanceTypes entry and capacityType ON_DEMAND (it has {self.instance_types}, "
                f"{self.capacity_type})"
            )
        return self

    @property
    def compute_capability(self) -> str:
        return gpus.GPU_SKUS[self.gpu_sku].compute_capability


class DevicePluginSettings(ConfigModel):
    # Time-slicing lets several pods share one GPU (dev economy); it gives no memory isolation,
    # so production pools keep "none".
    sharing: Literal["none", "time-slicing"] = "none"
    replicas: int = Field(default=1, ge=1, le=16)

    @model_validator(mode="after")
    def _replicas(self) -> DevicePluginSettings:
        if self.sharing == "none" and self.replicas != 1:
            raise ValueError(f"replicas {self.replicas} needs sharing: time-slicing; set sharing or replicas: 1")
        return self


class ModelSelection(ConfigModel):
    enabled: bool = True
    precision: str | None = None


class EngineSettings(ConfigModel):
    """How engines are built and kept (engines/README.md)."""

    # Catalog source URI -> pinned bytes (store path + sha256); relative to the repository root.
    sources_lock: str = "engines/sources.lock.json"
    build_timeout_seconds: int = Field(default=3600, ge=300, le=6 * 3600)
    # Keep artifacts when an Engine is deleted or replaced: a rollback finds them in the store.
    delete_artifacts: bool = False

    @field_validator("sources_lock")
    @classmethod
    def _lock_exists(cls, path: str) -> str:
        if not (REPO_ROOT / path).is_file():
            raise ValueError(
                f"no such file under {REPO_ROOT}; pin sources with `python -m engines.source_lock record ...`"
            )
        return path


class Settings(ConfigModel):
    """A whole stack: which environment, where, what cluster, which GPU pools and models."""

    environment: Literal["dev", "prod"]
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$")
    network: NetworkSettings
    cluster: ClusterSettings = ClusterSettings()
    system_node_group: SystemNodeGroup
    gpu_pools: list[GpuPool] = Field(min_length=1)
    device_plugin: DevicePluginSettings = DevicePluginSettings()
    models: dict[str, ModelSelection] = Field(default_factory=dict)
    # The two LLM variants: "separate" deployments, or "lora" adapters on one base model.
    llm_variants: Literal["separate", "lora"] = "separate"
    engines: EngineSettings = Field(default_factory=EngineSettings)
    monitoring: MonitoringSettings = MonitoringSettings()
    # Triton serving overrides per stack (platform_spec/serving.py: TritonSettings fields, camelCase);
    # parsed with the environment's defaults into ``serving``.
    triton: dict[str, Any] = Field(default_factory=dict)
    # protect: stateful resources (bucket, ECR, KMS key) refuse deletion by `pulumi destroy`.
    protect: bool = False
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("gpu_pools")
    @classmethod
    def _unique_pools(cls, pools: list[GpuPool]) -> list[GpuPool]:
        names = [p.name for p in pools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pool names {dupes} repeat; give every GPU pool a unique name")
        return pools

    @model_validator(mode="after")
    def _production_rules(self) -> Settings:
        if self.environment != "prod":
            return self
        if self.network.existing_vpc is None and self.network.az_count < 3:
            raise ValueError(
                f"network.azCount = {self.network.az_count}: prod needs at least 3 AZs to survive losing one; "
                "set azCount: 3 or more"
            )
        if self.network.existing_vpc is None and self.network.nat_gateways != "per-az":
            raise ValueError(
                "network.natGateways = \"single\": prod needs one NAT gateway per AZ so an AZ outage keeps egress; "
                "set natGateways: per-az"
            )
        if self.cluster.endpoint_public_access:
            raise ValueError(
                "cluster.endpointPublicAccess = true: prod keeps the API endpoint private; "
                "set endpointPublicAccess: false"
            )
        if self.monitoring.replicas < 2:
            raise ValueError(
                f"monitoring.replicas = {self.monitoring.replicas}: prod runs 2 Prometheus and 2 Alertmanager pods, "
                "so one node going away loses neither scraping nor alerting; set replicas: 2"
            )
        spot_llm = [p.name for p in self.gpu_pools if p.role == "llm" and p.capacity_type == "SPOT"]
        if spot_llm:
            raise ValueError(
                f"gpuPools {spot_llm} capacityType = \"SPOT\": prod LLM pools run on demand (a spot reclaim drops "
                "live sessions); set capacityType: ON_DEMAND"
            )
        return self

    _serving: TritonSettings = PrivateAttr()

    @model_validator(mode="after")
    def _serving_settings(self) -> Settings:
        """The ``triton`` object over the environment's serving defaults, plus the stack-wide ``llmVariants``
        (engines and serving must agree on it, so it is not a Triton-only override)."""
        if "llmVariants" in self.triton:
            raise ValueError("triton.llmVariants: set the top-level llmVariants instead (engines use it too)")
        try:
            overrides = {**triton_overrides(self.triton), "llm_variants": self.llm_variants}
            self._serving = triton_settings(self, overrides)
        except TritonSettingsError as exc:
            text = str(exc).removeprefix(f"{PROJECT}:").removeprefix("triton setting ")
            raise ValueError(text if text.startswith("triton.") else f"triton.{text}") from None
        return self

    @property
    def serving(self) -> TritonSettings:
        """Triton's serving settings for this stack (validated with the rest of the config)."""
        return self._serving

    def deploy_blockers(self) -> list[str]:
        """What this config still lacks for a real `pulumi preview`/`up` against an AWS account: the values
        only the team can know. Empty when it is complete. (Local runs and offline plans do not need them.)"""
        problems = []
        cluster = self.cluster
        if not cluster.admin_principal_arns:
            problems.append(
                f"{PROJECT}:cluster.adminPrincipalArns is empty: the cluster has no implicit creator admin, so "
                "nobody (pulumi up included) could use its API. Add the role that runs pulumi up and your "
                "operators' role: pulumi config set --path 'cluster.adminPrincipalArns[0]' "
                "arn:aws:iam::<account>:role/<deploy-role>"
            )
        public = cluster.endpoint_public_access and cluster.public_access_cidrs
        if not (public or cluster.deployer_cidrs or cluster.deployer_security_group_ids):
            problems.append(
                f"{PROJECT}:cluster has no path for pulumi up to the Kubernetes API: the endpoint is private and "
                "no deployer is admitted. Set cluster.deployerCidrs (your VPN or peered CI network: pulumi config "
                "set --path 'cluster.deployerCidrs[0]' <cidr>) or cluster.deployerSecurityGroupIds (a runner "
                "inside the VPC); on dev you may instead set endpointPublicAccess: true with publicAccessCidrs "
                "= your egress IP as a /32"
            )
        if self.environment == "prod" and self.monitoring.alertmanager_config_secret is None:
            problems.append(
                f"{PROJECT}:monitoring.alertmanagerConfigSecret is unset: prod alerts would go to the chart's "
                "receiver that drops them. Create a Secret with key alertmanager.yaml (your receivers) in the "
                "monitoring namespace and name it: pulumi config set --stack prod --path "
                "monitoring.alertmanagerConfigSecret <secret-name>"
            )
        return problems

    def pools(self, role: str) -> list[GpuPool]:
        return [p for p in self.gpu_pools if p.role == role]


# --- parsing ---------------------------------------------------------------------------------


def _decode(value: Any) -> Any:
    """Pulumi hands structured config values to programs as JSON strings."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    return value


def _key_path(loc: tuple[Any, ...], raw: Mapping[str, Any]) -> tuple[str, Any]:
    """Turn a pydantic error location into the config key a user edits, plus the offending value."""
    parts: list[str] = []
    value: Any = raw
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]"
        else:
            parts.append(str(item))
        if isinstance(value, Mapping):
            value = value.get(item, "<missing>")
        elif isinstance(value, list) and isinstance(item, int) and item < len(value):
            value = value[item]
        else:
            value = "<missing>"
    namespace = "aws" if parts and parts[0] == "region" else PROJECT
    key = f"{namespace}:{'.'.join(parts)}"
    return key, value


def _is_secret(key: str, secret_keys: Collection[str]) -> bool:
    return re.split(r"[.\[]", key, maxsplit=1)[0] in secret_keys


def _leaf_strings(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _leaf_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _leaf_strings(v)]
    return [str(value)] if isinstance(value, str) and value else []


def _redact(text: str, key: str, value: Any, secret_keys: Collection[str]) -> str:
    """Validator messages quote offending values; a key set with --secret must not leak through them."""
    if not _is_secret(key, secret_keys):
        return text
    for leaf in sorted(_leaf_strings(value), key=len, reverse=True):
        text = text.replace(leaf, "[secret]")
    return text


def parse_settings(
    raw: Mapping[str, Any], source: str = "stack config", secret_keys: Collection[str] = ()
) -> Settings:
    """Validate a namespace-stripped config mapping; raise SettingsError naming key, value and fix.

    ``secret_keys`` are full config keys (``triton-platform:foo``) whose values must not be printed."""
    decoded = {k: _decode(v) for k, v in raw.items()}
    try:
        return Settings.model_validate(decoded)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key, value = _key_path(err["loc"], decoded)
            msg = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:  # a whole-stack rule: its message names its own key and value
                problems.append(f"{PROJECT}:{msg}")
                continue
            if err["type"] == "missing":
                msg = "required key is missing; add it to the stack config (see Pulumi.yaml for its description)"
            elif err["type"] == "extra_forbidden":
                msg = "unknown key; remove it or fix its spelling (Pulumi.yaml lists every key)"
            elif err["type"] == "literal_error":
                msg = f"not allowed; {msg}"
            shown = "[secret]" if _is_secret(key, secret_keys) else json.dumps(value, default=str)
            top_value = decoded.get(err["loc"][0]) if err["loc"] else None
            problems.append(f"{key} = {shown}: {_redact(msg, key, top_value, secret_keys)}")
        raise SettingsError(source, problems) from None


def settings_from_pulumi_config(
    config: Mapping[str, Any], source: str = "stack config", secret_keys: Collection[str] = ()
) -> Settings:
    """Build Settings from a full Pulumi config map (keys like ``triton-platform:network``, ``aws:region``)."""
    raw: dict[str, Any] = {}
    for key, value in config.items():
        namespace, _, name = key.partition(":")
        if namespace == PROJECT:
            raw[name] = value
        elif key == "aws:region":
            raw["region"] = value
    return parse_settings(raw, source, secret_keys)


def stack_config_path(stack: str, root: Path = REPO_ROOT) -> Path:
    return root / f"Pulumi.{stack}.yaml"


def project_defaults(root: Path = REPO_ROOT) -> dict[str, Any]:
    """The ``default`` of every key ``Pulumi.yaml`` declares: the CLI hands them to the program for keys a
    stack file leaves out (``pkg/workspace/config.go`` mergeConfig)."""
    document = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
    return {
        key: decl["default"]
        for key, decl in (document.get("config") or {}).items()
        if isinstance(decl, dict) and "default" in decl
    }


def read_stack_config(stack: str, root: Path = REPO_ROOT) -> dict[str, Any]:
    """The config of stack ``stack`` as the Pulumi engine hands it over: ``Pulumi.yaml``'s defaults, then the
    ``config:`` map of ``Pulumi.<stack>.yaml``."""
    path = stack_config_path(stack, root)
    if not path.is_file():
        stacks = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))
        raise SettingsError(str(path), [f"stack {stack!r} has no config file; known stacks: {stacks}"])
    document = yaml.safe_load(path.read_text()) or {}
    return {**project_defaults(root), **(document.get("config") or {})}


def load_stack_settings(stack: str, root: Path = REPO_ROOT) -> Settings:
    """Parse ``Pulumi.<stack>.yaml`` offline (CLIs, tests, the plan command)."""
    path = stack_config_path(stack, root)
    return settings_from_pulumi_config(read_stack_config(stack, root), source=path.name)
