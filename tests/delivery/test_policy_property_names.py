"""The property paths and type tokens the policy rules read exist in the installed provider SDKs.

A rule that reads a misspelt property (``httpToken``) sees None on every resource and reports a
violation forever, or, worse, never. Each path below is walked through the SDK's input types, translating
Python names to the camelCase names the engine sees, exactly as Pulumi serialises them.
"""

from __future__ import annotations

import inspect
import re
import sys

import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest
from pulumi import _types
from pulumi_aws.s3 import bucket_server_side_encryption_configuration as s3_sse
from pulumi_aws.s3 import bucket_versioning as s3_versioning

from policy import rules

_FORWARD_REF = re.compile(r"ForwardRef\('([\w.]+)'\)")


def _field_type(cls: type, pulumi_name: str) -> tuple[str, list[type]]:
    names = {v: k for k, v in _types.input_type_py_to_pulumi_names(cls).items()}
    assert pulumi_name in names, f"{cls.__name__} has no input {pulumi_name!r}; it has {sorted(names)}"
    annotation = str(inspect.signature(cls.__init__).parameters[names[pulumi_name]].annotation)
    namespace = vars(sys.modules[cls.__module__])
    nested = []
    for ref in _FORWARD_REF.findall(annotation):
        if ref.startswith("Output"):
            continue
        nested.append(eval(ref, namespace))  # noqa: S307 - resolves an SDK forward reference by name
    return annotation, nested


def _walk(args_cls: type, path: str) -> None:
    current = [args_cls]
    for step in path.split("."):
        candidates = [c for c in current if step in _types.input_type_py_to_pulumi_names(c).values()]
        assert candidates, f"{path}: no {step!r} on {[c.__name__ for c in current]}"
        _, current = _field_type(candidates[0], step)
        if not current:
            return  # a scalar, list of scalars or free-form map: the path ends here


PATHS = [
    (aws.ec2.LaunchTemplateArgs, "metadataOptions.httpTokens"),
    (aws.ec2.LaunchTemplateArgs, "metadataOptions.httpPutResponseHopLimit"),
    (aws.ec2.LaunchTemplateArgs, "metadataOptions.httpEndpoint"),
    (aws.ec2.InstanceArgs, "metadataOptions.httpTokens"),
    (aws.eks.NodeGroupArgs, "launchTemplate.id"),
    (aws.eks.NodeGroupArgs, "amiType"),
    (aws.eks.NodeGroupArgs, "instanceTypes"),
    (aws.eks.NodeGroupArgs, "labels"),
    (aws.eks.NodeGroupArgs, "taints.key"),
    (aws.eks.NodeGroupArgs, "taints.effect"),
    (aws.ecr.RepositoryArgs, "imageTagMutability"),
    (aws.ecr.RepositoryArgs, "imageScanningConfiguration.scanOnPush"),
    (aws.eks.ClusterArgs, "vpcConfig.endpointPublicAccess"),
    (aws.eks.ClusterArgs, "vpcConfig.endpointPrivateAccess"),
    (aws.eks.ClusterArgs, "encryptionConfig.resources"),
    (aws.eks.ClusterArgs, "encryptionConfig.provider.keyArn"),
    (s3_sse.BucketServerSideEncryptionConfigurationInitArgs, "bucket"),
    (s3_sse.BucketServerSideEncryptionConfigurationInitArgs, "rules.applyServerSideEncryptionByDefault.sseAlgorithm"),
    (s3_versioning.BucketVersioningInitArgs, "bucket"),
    (s3_versioning.BucketVersioningInitArgs, "versioningConfiguration.status"),
    (aws.s3.BucketPublicAccessBlockArgs, "blockPublicAcls"),
    (aws.s3.BucketPublicAccessBlockArgs, "blockPublicPolicy"),
    (aws.s3.BucketPublicAccessBlockArgs, "ignorePublicAcls"),
    (aws.s3.BucketPublicAccessBlockArgs, "restrictPublicBuckets"),
    (aws.s3.BucketArgs, "bucket"),
    (aws.s3.BucketArgs, "acl"),
    (aws.s3.BucketArgs, "versioning.enabled"),
    (aws.s3.BucketArgs, "serverSideEncryptionConfiguration.rule.applyServerSideEncryptionByDefault.sseAlgorithm"),
    (k8s.apps.v1.DeploymentArgs, "metadata.labels"),
    (k8s.apps.v1.DeploymentArgs, "spec.template.metadata.labels"),
    (k8s.apps.v1.DeploymentArgs, "spec.template.spec.containers.startupProbe"),
    (k8s.apps.v1.DeploymentArgs, "spec.template.spec.containers.readinessProbe"),
    (k8s.apps.v1.DeploymentArgs, "spec.template.spec.containers.livenessProbe"),
    (k8s.apps.v1.DeploymentArgs, "spec.template.spec.containers.resources.limits"),
    (k8s.apps.v1.DeploymentArgs, "spec.template.spec.containers.image"),
    (k8s.apps.v1.DeploymentArgs, "spec.template.spec.containers.env.value"),
    (k8s.apps.v1.DeploymentArgs, "spec.template.spec.containers.env.valueFrom"),
    (k8s.apps.v1.DeploymentArgs, "spec.template.spec.initContainers.env.name"),
    (k8s.apps.v1.StatefulSetArgs, "spec.template.spec.containers.startupProbe"),
    (k8s.batch.v1.CronJobArgs, "spec.jobTemplate.spec.template.spec.containers.env.value"),
    (k8s.core.v1.PodArgs, "spec.containers.image"),
    (k8s.helm.v3.ReleaseArgs, "chart"),
    (k8s.helm.v3.ReleaseArgs, "values"),
    (k8s.helm.v4.ChartArgs, "chart"),
    (k8s.helm.v4.ChartArgs, "values"),
]


@pytest.mark.parametrize(("args_cls", "path"), PATHS, ids=[f"{c.__name__}.{p}" for c, p in PATHS])
def test_rule_property_path_exists_in_sdk(args_cls, path):
    _walk(args_cls, path)


def test_walk_rejects_a_misspelt_path():
    with pytest.raises(AssertionError, match="httpToken"):
        _walk(aws.ec2.LaunchTemplateArgs, "metadataOptions.httpToken")


TOKENS = [
    (aws.ec2.LaunchTemplate, rules.LAUNCH_TEMPLATE),
    (aws.ec2.Instance, rules.EC2_INSTANCE),
    (aws.eks.Cluster, rules.EKS_CLUSTER),
    (aws.eks.NodeGroup, rules.EKS_NODE_GROUP),
    (aws.ecr.Repository, rules.ECR_REPOSITORY),
    (aws.s3.Bucket, rules.S3_BUCKETS[0]),
    (aws.s3.BucketV2, rules.S3_BUCKETS[1]),
    (aws.s3.BucketServerSideEncryptionConfiguration, rules.S3_ENCRYPTION[0]),
    (aws.s3.BucketServerSideEncryptionConfigurationV2, rules.S3_ENCRYPTION[1]),
    (aws.s3.BucketVersioning, rules.S3_VERSIONING[0]),
    (aws.s3.BucketVersioningV2, rules.S3_VERSIONING[1]),
    (aws.s3.BucketPublicAccessBlock, rules.S3_PUBLIC_ACCESS_BLOCK),
    (k8s.helm.v3.Release, rules.HELM_RELEASE),
    (k8s.helm.v4.Chart, rules.HELM_CHARTS[1]),
    (k8s.apps.v1.Deployment, "kubernetes:apps/v1:Deployment"),
    (k8s.apps.v1.StatefulSet, "kubernetes:apps/v1:StatefulSet"),
    (k8s.apps.v1.DaemonSet, "kubernetes:apps/v1:DaemonSet"),
    (k8s.apps.v1.ReplicaSet, "kubernetes:apps/v1:ReplicaSet"),
    (k8s.batch.v1.Job, "kubernetes:batch/v1:Job"),
    (k8s.batch.v1.CronJob, "kubernetes:batch/v1:CronJob"),
    (k8s.core.v1.Pod, "kubernetes:core/v1:Pod"),
]


@pytest.mark.parametrize(("resource_cls", "token"), TOKENS, ids=[t for _, t in TOKENS])
def test_rule_type_tokens_match_sdk(resource_cls, token):
    assert resource_cls.pulumi_type == token


def test_workload_kinds_known_to_rules_are_sdk_tokens():
    known = {t for _, t in TOKENS}
    assert rules._TEMPLATED_WORKLOADS | rules._SERVING_WORKLOADS | {rules._CRON_JOB} <= known
