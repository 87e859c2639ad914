"""``TritonPlatform``: Triton Inference Server for every GPU pool of a stack.

Provisions, in order:
  1. the serving images it is given (one per pool role: ``llm`` on the TensorRT-LLM flavour, ``speech`` on
     the plain one; built and pushed by ``infra.images`` before the engines), referenced by digest;
  2. the GPU model repository rendered from the catalog (the stack's ``models`` selection and the
     gpu overrides) and published to the model store as an immutable version, with each pool's
     engines placed from the engine store;
  3. the ``triton`` namespace (restricted Pod Security), the IRSA role that can only read published
     repositories, its service account, default-deny NetworkPolicies with explicit allows;
  4. KEDA, then per GPU pool (:class:`TritonPool`): a Deployment pinned to the pool's nodes, its Service
     (http/grpc/metrics), an optional internal NLB, a PodDisruptionBudget and a KEDA ScaledObject on the
     pool's SLO signals (``infra.triton.autoscaling``; the node autoscaler is part of the foundation);
  5. the smoke Job, after every Deployment is rolled out.

Settings: the stack's region and ``gpuPools``, the served models and source lock from the stack plan
(``infra.stack_plan``), and ``TritonSettings``
(sizes, bounds, targets, NLB, client namespaces; see :mod:`platform_spec.serving`).
Outputs: per pool HTTP and gRPC endpoints (and the NLB hostname when on), served models with their
versions, image references by digest, the repository version and its S3 URIs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from engines.source_lock import SourceLock
from infra.images import PlatformImage, flavour_of_role
from infra.monitoring.slos import LatencySlos
from infra.triton import deployment, probes
from infra.triton.autoscaling import KedaAutoscaling, pool_triggers, scaled_object_manifest
from infra.triton.identity import TritonIdentity
from infra.triton.network_policy import network_policies
from infra.triton.publication import (
    DEFAULT_BUILD_ROOT,
    EngineLike,
    ModelRepository,
    ModelRepositoryArgs,
    RenderedRepository,
    render_gpu_repository,
)
from infra.triton.smoke import grpc_endpoint, smoke_job_manifest
from model_repo import catalog
from model_repo.render import VERSION as MODEL_VERSION
from platform_spec.monitoring import VoiceSlo
from platform_spec.serving import TritonSettings
from platform_spec.settings import GpuPool


@dataclass(frozen=True)
class TritonPlatformArgs:
    gpu_pools: Sequence[GpuPool]
    region: str
    specs: Sequence[catalog.ModelSpec]  # the served models with their gpu overrides (StackPlan.gpu_specs)
    sources: SourceLock  # the stack's engine source lock (pins export:// and hf:// files)
    triton: TritonSettings
    k8s_provider: k8s.Provider
    cluster_name: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    images: Mapping[str, PlatformImage]  # serving image per flavour (infra.images.declare_images, TRITON recipe)
    slos: LatencySlos  # the LLM pools scale on the LLM first-token SLO
    voice_slo: VoiceSlo  # the pipeline's pool scales on the time-to-first-audio target
    bucket: pulumi.Input[str]  # model-store bucket name
    bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]  # the store's key (SSE-KMS)
    # pool name -> engine name -> Engine (``publication.engines_by_pool(declare_engines(...))``)
    engines: Mapping[str, Mapping[str, EngineLike]]
    tags: Mapping[str, str] = field(default_factory=dict)
    # Resources the pods need first: GPU node groups, the device plugin, the monitoring stack (CRDs).
    after: Sequence[pulumi.Resource] = ()
    build_root: Path = DEFAULT_BUILD_ROOT


@dataclass(frozen=True)
class TritonPoolArgs:
    pool: GpuPool
    triton: TritonSettings
    region: str
    image: pulumi.Input[str]
    repository_uri: pulumi.Input[str]
    repository_version: pulumi.Input[str]
    roles: Sequence[str]
    grpc_endpoints: Mapping[str, str]
    k8s_provider: k8s.Provider
    triggers: Sequence[Mapping[str, Any]] = ()  # KEDA triggers (autoscaling.pool_triggers)
    keda: pulumi.Resource | None = None  # the KEDA release: its CRD must exist before the ScaledObject
    after: Sequence[pulumi.Resource] = ()


def _load_balancer_hostname(status: Any) -> str:
    """The NLB's DNS name from a Service status ("" until AWS has provisioned it)."""
    try:
        return status.load_balancer.ingress[0].hostname or ""
    except (AttributeError, IndexError, TypeError):
        return ""


class TritonPool(pulumi.ComponentResource):
    """One GPU pool's Triton: Deployment, Service, optional internal NLB, PDB and KEDA ScaledObject."""

    def __init__(self, name: str, args: TritonPoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("platform:triton:TritonPool", name, None, opts)
        pool, triton = args.pool, args.triton
        serving = triton.pool(pool.name)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider)
        manifest = deployment.deployment_manifest(
            pool=pool,
            settings=triton,
            image=args.image,
            repository_uri=args.repository_uri,
            repository_version=args.repository_version,
            roles=args.roles,
            region=args.region,
            grpc_endpoints=args.grpc_endpoints,
        )
        # pulumi-kubernetes waits for the rollout; a pool's rollout replaces one pod at a time, each
        # loading its models, so the wait scales with the startup budget and the replica count.
        budget = probes.startup_budget_s(args.roles, serving)
        rollout_minutes = max(10, (budget + 120) * serving.max_replicas // 60)
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=manifest["metadata"],
            spec=manifest["spec"],
            opts=pulumi.ResourceOptions.merge(
                on_cluster,
                pulumi.ResourceOptions(
                    depends_on=list(args.after),
                    # KEDA's HPA owns the replica count once the Deployment exists.
                    ignore_changes=["spec.replicas"],
                    custom_timeouts=pulumi.CustomTimeouts(
                        create=f"{rollout_minutes}m", update=f"{rollout_minutes}m"
                    ),
                ),
            ),
        )
        service = deployment.service_manifest(pool, triton)
        self.service = k8s.core.v1.Service(
            f"{name}-service", metadata=service["metadata"], spec=service["spec"], opts=on_cluster
        )
        self.nlb: k8s.core.v1.Service | None = None
        if triton.internal_nlb:
            nlb = deployment.nlb_service_manifest(pool, triton)
            self.nlb = k8s.core.v1.Service(
                f"{name}-nlb", metadata=nlb["metadata"], spec=nlb["spec"], opts=on_cluster
            )
        pdb = deployment.pdb_manifest(pool, triton)
        self.pdb = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb", metadata=pdb["metadata"], spec=pdb["spec"], opts=on_cluster
        )
        scaled = scaled_object_manifest(pool, serving, triton, list(args.triggers))
        self.scaled_object = k8s.apiextensions.CustomResource(
            f"{name}-scaledobject",
            api_version=scaled["apiVersion"],
            kind=scaled["kind"],
            metadata=scaled["metadata"],
            spec=scaled["spec"],
            # KEDA's CRD comes with its release; the ScaledObject takes over the Deployment's replicas.
            opts=pulumi.ResourceOptions.merge(
                on_cluster,
                pulumi.ResourceOptions(depends_on=[self.deployment, *([args.keda] if args.keda is not None else [])]),
            ),
        )
        dns = deployment.service_dns(pool, triton)
        self.http_endpoint = f"http://{dns}:{deployment.HTTP_PORT}"
        self.grpc_endpoint = grpc_endpoint(dns)
        self.nlb_hostname: pulumi.Output[str] | None = None
        if self.nlb is not None:
            self.nlb_hostname = self.nlb.status.apply(_load_balancer_hostname)
        self.register_outputs({"http": self.http_endpoint, "grpc": self.grpc_endpoint})


class TritonPlatform(pulumi.ComponentResource):
    """Triton for every GPU pool of the stack; see the module docstring."""

    def __init__(self, name: str, args: TritonPlatformArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("platform:triton:TritonPlatform", name, None, opts)
        triton = args.triton
        for pool in args.gpu_pools:
            triton.pool(pool.name)  # every pool has serving settings (clear error otherwise)
        specs = list(args.specs)
        self.rendered: RenderedRepository = render_gpu_repository(
            specs, llm_variants=triton.llm_variants, build_root=args.build_root
        )
        repository_args = ModelRepositoryArgs(
            rendered=self.rendered,
            gpu_pools=args.gpu_pools,
            bucket=args.bucket,
            engines=args.engines,
            region=args.region,
            tags=args.tags,
            sources=args.sources,
        )
        # Every engine and packaged file must be placeable before anything is declared (no image
        # build, no upload for a repository that could never be complete).
        ModelRepository.check(repository_args)
        child = pulumi.ResourceOptions(parent=self)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider)

        # 1. images, one per role the pools need (built before the engines: the build Jobs run in their own)
        self.images: dict[str, PlatformImage] = {}
        for role in sorted({p.role for p in args.gpu_pools}):
            flavour = flavour_of_role(role)
            if flavour not in args.images:
                raise ValueError(f"no serving image for flavour {flavour!r}; declare it with infra.images")
            self.images[flavour] = args.images[flavour]

        # 2. the published repository
        self.repository = ModelRepository(f"{name}-repository", repository_args, opts=child)

        # 3. namespace, identity, network policies
        ns = deployment.namespace_manifest(triton)
        namespace = k8s.core.v1.Namespace(f"{name}-namespace", metadata=ns["metadata"], opts=on_cluster)
        in_namespace = pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[namespace]))
        admin_key = random.RandomPassword(f"{name}-admin-key", length=40, special=False, opts=child)
        admin_secret = k8s.core.v1.Secret(
            f"{name}-admin-key",
            metadata={"name": deployment.ADMIN_KEY_SECRET, "namespace": triton.namespace},
            string_data={"key": admin_key.result},
            opts=in_namespace,
        )
        self.identity = TritonIdentity(
            f"{name}-identity",
            oidc_provider_arn=args.oidc_provider_arn,
            oidc_issuer_url=args.oidc_issuer_url,
            namespace=triton.namespace,
            service_account=deployment.SERVICE_ACCOUNT,
            bucket_arn=args.bucket_arn,
            kms_key_arn=args.kms_key_arn,
            region=args.region,
            tags=args.tags,
            opts=child,
        )
        sa = deployment.service_account_manifest(triton, self.identity.role_arn)
        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=sa["metadata"],
            automount_service_account_token=sa["automountServiceAccountToken"],
            opts=in_namespace,
        )
        policies = [
            k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol-{policy['metadata']['name']}",
                metadata=policy["metadata"],
                spec=policy["spec"],
                opts=in_namespace,
            )
            for policy in network_policies(triton)
        ]

        # 4. KEDA, then the pools (each with its ScaledObject)
        self.autoscaling = KedaAutoscaling(
            f"{name}-autoscaling", k8s_provider=args.k8s_provider, after=args.after,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
        )  # fmt: skip
        pools_by_name = {p.name: p for p in args.gpu_pools}
        grpc_endpoints = {
            p.name: grpc_endpoint(deployment.service_dns(p, triton)) for p in args.gpu_pools
        }
        ready_first = [service_account, admin_secret, self.identity, self.repository, *policies, *args.after]
        self.pools: dict[str, TritonPool] = {}
        for pool in args.gpu_pools:
            roles = sorted({m.role for m in self.rendered.models_for(pool)})
            self.pools[pool.name] = TritonPool(
                f"{name}-{pool.name}",
                TritonPoolArgs(
                    pool=pool,
                    triton=triton,
                    region=args.region,
                    image=self.images[flavour_of_role(pool.role)].reference,
                    repository_uri=self.repository.pool_uris[pool.name],
                    repository_version=self.repository.version,
                    roles=roles,
                    grpc_endpoints=grpc_endpoints,
                    k8s_provider=args.k8s_provider,
                    triggers=pool_triggers(pool, triton.pool(pool.name), triton, roles, args.slos, args.voice_slo),
                    keda=self.autoscaling.release,
                    after=ready_first,
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace]),
            )

        # 5. smoke
        self.served: dict[str, list[str]] = self.repository.served
        self.smoke_job: k8s.batch.v1.Job | None = None
        if triton.smoke:
            run_on = next((p for p in args.gpu_pools if p.role == "speech"), args.gpu_pools[0])
            targets = {grpc_endpoints[p]: models for p, models in self.served.items() if models}
            job = smoke_job_manifest(
                settings=triton,
                image=self.images[flavour_of_role(run_on.role)].reference,
                run_on=pools_by_name[run_on.name],
                targets=targets,
                repository_version=self.repository.version,
            )
            self.smoke_job = k8s.batch.v1.Job(
                f"{name}-smoke",
                metadata=job["metadata"],
                spec=job["spec"],
                opts=pulumi.ResourceOptions.merge(
                    in_namespace,
                    pulumi.ResourceOptions(
                        depends_on=[p.deployment for p in self.pools.values()],
                        delete_before_replace=True,  # fixed name: the old Job goes before the new one
                        custom_timeouts=pulumi.CustomTimeouts(create="30m", update="30m"),
                    ),
                ),
            )

        self.outputs: dict[str, Any] = self._outputs()
        self.register_outputs(self.outputs)

    def _outputs(self) -> dict[str, Any]:
        endpoints: dict[str, Any] = {}
        for pool_name, pool in self.pools.items():
            entry: dict[str, Any] = {"http": pool.http_endpoint, "grpc": pool.grpc_endpoint}
            if pool.nlb_hostname is not None:
                entry["nlbHttp"] = pool.nlb_hostname.apply(lambda h: f"http://{h}:{deployment.HTTP_PORT}" if h else "")
                entry["nlbGrpc"] = pool.nlb_hostname.apply(lambda h: f"{h}:{deployment.GRPC_PORT}" if h else "")
            endpoints[pool_name] = entry
        return {
            "tritonEndpoints": endpoints,
            "servedModels": {
                pool: [{"name": model, "versions": [MODEL_VERSION]} for model in models]
                for pool, models in self.served.items()
            },
            "tritonImages": {flavour: image.reference for flavour, image in self.images.items()},
            "modelRepositoryVersion": self.repository.version,
            "modelRepositoryUris": dict(self.repository.pool_uris),
        }
