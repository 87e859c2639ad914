"""The whole platform of one stack: settings in, components wired together, stack outputs out.

``build(settings)`` is the only thing ``__main__.py`` calls. It declares the foundation
(``build_platform``: network, cluster, node groups, add-ons, GPU software, stores) and returns the
stack outputs. Later parts take the ``Platform`` and add their components in ``build``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from engines.runners.kubernetes_job import build_image_flavour
from infra import gpu_software
from infra.addons import ClusterAddons, ClusterAddonsArgs
from infra.aws_context import AwsContext, lookup_aws_context
from infra.cluster import Cluster, ClusterArgs
from infra.engine_build_access import EngineBuildAccess, EngineBuildAccessArgs
from infra.engine_declarations import declare_engines
from infra.gpu_software import GpuSoftware, GpuSoftwareArgs
from infra.images import ENGINE_BUILDER, TRITON, declare_images, flavour_of_role
from infra.log_encryption import log_encryption_key
from infra.monitoring import Monitoring, MonitoringArgs
from infra.network import Network, NetworkArgs
from infra.node_autoscaler import GpuNodeAutoscaler
from infra.node_groups import NodeGroups, NodeGroupsArgs
from infra.stack_plan import plan_stack
from infra.stores import Stores, StoresArgs, model_store_bucket
from infra.triton.wiring import build_triton
from platform_spec.settings import Settings, settings_from_pulumi_config

# Version of the stack-outputs contract (docs/outputs.md, docs/outputs.contract.json). Consumers
# check it before reading the others; bump the major for a rename or removal, the minor for an addition.
OUTPUTS_VERSION = "1.2.0"


@dataclass(frozen=True)
class Platform:
    """The foundation every later component builds on."""

    settings: Settings
    name: str  # "<project>-<stack>": the cluster name and the prefix of every physical name
    aws: AwsContext
    tags: Mapping[str, str]
    network: Network
    cluster: Cluster
    node_groups: NodeGroups
    addons: ClusterAddons
    gpu_software: GpuSoftware
    node_autoscaler: GpuNodeAutoscaler
    stores: Stores

    @property
    def k8s_provider(self) -> k8s.Provider:
        """Pass this to every Kubernetes resource (``ResourceOptions(provider=...)``)."""
        return self.cluster.k8s_provider


def platform_tags(settings: Settings, name: str) -> dict[str, str]:
    # The stack tag wins over a same-named config tag: cost reports group by it.
    return {**settings.tags, "platform.io/stack": name}


def build_platform(settings: Settings) -> Platform:
    name = f"{pulumi.get_project()}-{pulumi.get_stack()}"
    # Lookups first: a region without enough AZs fails here, before any resource is declared.
    ctx = lookup_aws_context(settings)
    tags = platform_tags(settings, name)

    log_key = log_encryption_key(name, ctx, tags, settings.protect)
    network = Network(
        name,
        NetworkArgs(
            settings=settings.network,
            cluster_name=name,
            region=settings.region,
            availability_zones=ctx.availability_zones,
            availability_zone_ids=ctx.availability_zone_ids,
            log_kms_key_arn=log_key.arn,
            tags=tags,
        ),
    )
    cluster = Cluster(
        name,
        ClusterArgs(
            settings=settings.cluster,
            cluster_name=name,
            aws=ctx,
            subnet_ids=network.private_subnet_ids,
            protect=settings.protect,
            log_kms_key_arn=log_key.arn,
            tags=tags,
        ),
    )
    node_groups = NodeGroups(
        name,
        NodeGroupsArgs(
            system=settings.system_node_group,
            gpu_pools=settings.gpu_pools,
            cluster_name=cluster.name,
            kubernetes_version=cluster.version,
            subnet_ids=network.private_subnet_ids,
            aws=ctx,
            tags=tags,
            after=cluster.node_prerequisites,
        ),
    )
    addons = ClusterAddons(
        name,
        ClusterAddonsArgs(
            cluster_name=cluster.name,
            aws=ctx,
            k8s_provider=cluster.k8s_provider,
            protect=settings.protect,
            tags=tags,
            after=[node_groups.system],
        ),
    )
    # Before anything that needs a GPU node: pools at minSize 0 get their first node for a pending build Job.
    node_autoscaler = GpuNodeAutoscaler(
        f"{name}-node-autoscaler",
        cluster_name=cluster.name,
        region=settings.region,
        k8s_provider=cluster.k8s_provider,
        tags=tags,
        after=[addons, node_groups.system],
    )
    gpu_software = GpuSoftware(
        name,
        GpuSoftwareArgs(
            device_plugin=settings.device_plugin,
            k8s_provider=cluster.k8s_provider,
            after=list(node_groups.gpu.values()),
        ),
    )
    stores = Stores(
        name,
        StoresArgs(
            name_prefix=name,
            protect=settings.protect,
            tags=tags,
            bucket_name=model_store_bucket(name, ctx.account_id),
        ),
    )
    return Platform(
        settings=settings,
        name=name,
        aws=ctx,
        tags=tags,
        network=network,
        cluster=cluster,
        node_groups=node_groups,
        addons=addons,
        gpu_software=gpu_software,
        node_autoscaler=node_autoscaler,
        stores=stores,
    )


def stack_outputs(platform: Platform) -> dict[str, Any]:
    """The stack outputs: a contract read by other stacks (StackReference) and by the README.
    Keep the names stable; add, never rename."""
    return {
        "outputsVersion": OUTPUTS_VERSION,
        "clusterName": platform.cluster.name,
        "clusterEndpoint": platform.cluster.endpoint,
        "kubeconfig": platform.cluster.kubeconfig,  # secret
        "oidcIssuerUrl": platform.cluster.oidc_issuer_url,
        "oidcProviderArn": platform.cluster.oidc_provider.arn,
        "nodeGroups": {pool: group.node_group_name for pool, group in platform.node_groups.gpu.items()},
        "ecrRepositoryUrl": platform.stores.repository_url,
        "modelStoreBucket": platform.stores.bucket_name,
        "region": platform.settings.region,
        "vpcId": platform.network.vpc_id,
    }


def build(settings: Settings) -> dict[str, Any]:
    """Declare the stack described by ``settings``; return its outputs.

    The stack plan (model selection, engine plan against the source lock and the pools' GPUs, the
    pools' fit) is derived once, first, so everything that can reject the stack's config fails
    before the first resource."""
    plan = plan_stack(settings)
    serving = plan.serving
    for pool_plan in plan.llm_memory:
        pulumi.log.info(f"GPU memory plan: {pool_plan.describe()}")

    platform = build_platform(settings)
    build_access = EngineBuildAccess(
        f"{platform.name}-engine-builds",
        EngineBuildAccessArgs(
            cluster_name=platform.cluster.name,
            bucket_arn=platform.stores.bucket.arn,
            kms_key_arn=platform.stores.key.arn,
            region=settings.region,
            k8s_provider=platform.k8s_provider,
            tags=platform.tags,
        ),
    )
    # The serving images of the pools' roles and the engine-builder images of the planned engines' runtimes.
    images = declare_images(
        f"{platform.name}-triton",
        platform.stores.repository_url,
        platform.stores.repository.registry_id,
        [(TRITON, flavour_of_role(p.role)) for p in settings.gpu_pools]
        + [(ENGINE_BUILDER, build_image_flavour(e.spec)) for e in plan.engines],
    )
    engines = declare_engines(
        plan.engines,
        store_uri=platform.stores.bucket_name.apply(lambda bucket: f"s3://{bucket}/"),
        kubeconfig=platform.cluster.kubeconfig,
        runner_settings={**build_access.runner_settings(), "timeout_seconds": settings.engines.build_timeout_seconds},
        builder_images={f: i.reference for (recipe, f), i in images.items() if recipe == ENGINE_BUILDER.name},
        delete_artifacts=settings.engines.delete_artifacts,
        opts=pulumi.ResourceOptions(
            # The autoscaler first: a build Job on a pool at zero nodes is what makes it add one.
            depends_on=[
                build_access,
                platform.gpu_software,
                platform.node_autoscaler,
                *platform.node_groups.gpu.values(),
            ]
        ),
    )
    monitoring = Monitoring(
        platform.name,
        MonitoringArgs(
            k8s_provider=platform.k8s_provider,
            settings=settings.monitoring,
            namespace=serving.monitoring_namespace,
            triton_namespace=serving.namespace,
            dcgm_namespace=gpu_software.NAMESPACE,
            model_roles={m.name: m.role for m in plan.models},
            slos=plan.slos,
            after=[platform.addons, platform.node_groups.system],
        ),
    )
    serving_images = {f: i for (recipe, f), i in images.items() if recipe == TRITON.name}
    triton = build_triton(platform, plan, engines=engines, images=serving_images, after=[monitoring])
    return {
        **stack_outputs(platform),
        **triton.outputs,
        "engineKeys": {f"{engine}@{pool}": d.resource.key for (engine, pool), d in engines.items()},
        "llmMemoryPlan": {p.pool: p.to_output() for p in plan.llm_memory},
        "grafanaUrl": monitoring.grafana_url,
        "prometheusUrl": monitoring.prometheus_url,
        "alertmanagerUrl": monitoring.alertmanager_url,
        "grafanaExternalUrl": monitoring.grafana_external_url,
        "grafanaAdminSecret": monitoring.grafana_admin_secret,
    }


def engine_config() -> dict[str, Any]:
    """The stack's whole config map as the Pulumi engine hands it to the program (keys like
    ``triton-platform:network``; structured values JSON-encoded). The whole map, not key-by-key
    reads, so that an unknown (misspelt) key is reported instead of ignored."""
    config = dict(pulumi.runtime.get_config_env())
    config.update(pulumi.runtime.config.CONFIG.get())
    return config


def settings_from_engine() -> Settings:
    config = engine_config()
    secret_keys = [key for key in config if pulumi.runtime.is_config_secret(key)]
    return settings_from_pulumi_config(config, source=f"stack {pulumi.get_stack()!r} config", secret_keys=secret_keys)
