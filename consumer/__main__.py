"""Example consumer of the triton-platform outputs: a voice gateway team's stack.

It reads ``<org>/triton-platform/<stack>`` through a StackReference, deploys into the platform's
cluster with a Kubernetes provider built from the platform's ``kubeconfig`` (a secret that stays
secret), labels its namespace so the platform's NetworkPolicy admits it to Triton, and hands its app
the Triton endpoints and served model versions in a ConfigMap.

    cd consumer && pulumi config set platformOrg acme && pulumi up --stack dev
"""

import json

import pulumi
import pulumi_kubernetes as k8s
from platform_outputs import PlatformOutputs

config = pulumi.Config()
platform_stack = config.get("platformStack") or pulumi.get_stack()
platform = PlatformOutputs(f"{config.require('platformOrg')}/triton-platform/{platform_stack}")

cluster = k8s.Provider("platform-cluster", kubeconfig=platform.kubeconfig)
on_cluster = pulumi.ResourceOptions(provider=cluster)

namespace = k8s.core.v1.Namespace(
    "voice-gateway",
    # The platform admits callers from namespaces with this label (infra/triton: client_namespace_label).
    metadata={"name": "voice-gateway", "labels": {"platform.io/triton-client": "true"}},
    opts=on_cluster,
)

endpoints = k8s.core.v1.ConfigMap(
    "triton-endpoints",
    metadata={"name": "triton-endpoints", "namespace": namespace.metadata.name},
    data={
        "LLM_GRPC_ENDPOINT": platform.endpoint("llm", "grpc"),
        "SPEECH_GRPC_ENDPOINT": platform.endpoint("speech", "grpc"),
        "SERVED_MODELS": platform.served_models.apply(lambda models: json.dumps(models, sort_keys=True)),
        "PLATFORM_OUTPUTS_VERSION": platform.version,
    },
    opts=on_cluster,
)

pulumi.export("platformOutputsVersion", platform.version)
pulumi.export("llmGrpcEndpoint", platform.endpoint("llm", "grpc"))
pulumi.export("endpointsConfigMap", endpoints.metadata.name)
