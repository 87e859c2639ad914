"""The EKS control plane, built from pulumi-aws primitives, and the one Kubernetes provider that
every Kubernetes resource of the platform uses.

Settings (``cluster.*``): ``kubernetesVersion``, ``endpointPrivateAccess``, ``endpointPublicAccess``,
``publicAccessCidrs``, ``adminPrincipalArns``, ``logRetentionDays``; ``protect`` (KMS key, EKS
deletion protection).

Provisions: the cluster IAM role; a KMS key (rotation on) for envelope encryption of Secrets; the
control-plane log group with its retention, created before the cluster so EKS does not create one
that keeps logs forever; the cluster with all five log types, API-only authentication and no
implicit creator admin; explicit cluster-admin access entries for the deployer and for
``adminPrincipalArns``; the IAM OIDC provider (IRSA); and the add-ons a node needs to become Ready
(Pod Identity agent, VPC CNI with network-policy enforcement and its own Pod Identity role,
kube-proxy).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.addons import managed_addon
from infra.aws_context import AwsContext
from infra.iam import POD_IDENTITY_PRINCIPAL, role_with_managed_policies
from infra.kubeconfig import kubeconfig_output
from platform_spec.settings import ClusterSettings

CONTROL_PLANE_LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
CLUSTER_ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"


@dataclass(frozen=True)
class ClusterArgs:
    settings: ClusterSettings
    cluster_name: str  # the EKS cluster's physical name (subnet tags and the log group use it)
    aws: AwsContext
    subnet_ids: Sequence[pulumi.Input[str]]  # private subnets: control-plane ENIs
    protect: bool
    tags: Mapping[str, str]
    log_kms_key_arn: pulumi.Input[str] | None = None  # encrypts the control-plane log group


def _principal_slug(arn: str) -> str:
    """arn:aws:iam::123456789012:role/team/admin -> 123456789012-admin (a stable resource-name part)."""
    account = arn.split(":")[4]
    leaf = arn.rsplit("/", 1)[-1]
    return f"{account}-{re.sub(r'[^a-zA-Z0-9-]', '-', leaf).lower()}"


class Cluster(pulumi.ComponentResource):
    """An EKS cluster with encrypted Secrets, full control-plane logs and access entries."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("platform:cluster:Cluster", name, None, opts)
        settings, ctx = args.settings, args.aws
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)

        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            # EKS writes to exactly this name; owning it lets us set the retention.
            name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_in_days=settings.log_retention_days,
            kms_key_id=args.log_kms_key_arn,
            tags=tags,
            opts=child,
        )

        self.secrets_key = aws.kms.Key(
            f"{name}-secrets",
            description=f"Envelope encryption of Kubernetes Secrets in EKS cluster {args.cluster_name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        aws.kms.Alias(
            f"{name}-secrets",
            name=f"alias/{args.cluster_name}-secrets",
            target_key_id=self.secrets_key.key_id,
            opts=child,
        )

        role, role_attachments = role_with_managed_policies(
            f"{name}-cluster",
            trusted_service="eks.amazonaws.com",
            policy_arns=[ctx.managed_policy("AmazonEKSClusterPolicy")],
            tags=tags,
            parent=self,
            description=f"EKS control plane of {args.cluster_name}",
        )

        self.eks = aws.eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            role_arn=role.arn,
            version=settings.kubernetes_version,
            vpc_config={
                "subnet_ids": list(args.subnet_ids),
                "endpoint_private_access": settings.endpoint_private_access,
                "endpoint_public_access": settings.endpoint_public_access,
                "public_access_cidrs": list(settings.public_access_cidrs) if settings.endpoint_public_access else None,
            },
            access_config={
                # Access entries only (no aws-auth ConfigMap), and no invisible admin for whoever
                # happened to create the cluster: every admin is an entry you can read and revoke.
                "authentication_mode": "API",
                "bootstrap_cluster_creator_admin_permissions": False,
            },
            encryption_config={"provider": {"key_arn": self.secrets_key.arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=CONTROL_PLANE_LOG_TYPES,
            # The core add-ons below are EKS-managed and pinned; do not also install unmanaged copies.
            bootstrap_self_managed_addons=False,
            deletion_protection=args.protect,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group, *role_attachments]),
        )

        self.name: pulumi.Output[str] = self.eks.name
        self.endpoint: pulumi.Output[str] = self.eks.endpoint
        self.version: pulumi.Output[str] = self.eks.version
        self.oidc_issuer_url: pulumi.Output[str] = self.eks.identities.apply(lambda ids: ids[0].oidcs[0].issuer)
        self.security_group_id: pulumi.Output[str] = self.eks.vpc_config.apply(
            lambda vpc: vpc.cluster_security_group_id
        )

        # IRSA stays available for tools that do not speak Pod Identity yet.
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=self.oidc_issuer_url,
            client_id_lists=["sts.amazonaws.com"],
            tags=tags,
            opts=child,
        )

        admin_associations = self._cluster_admins(name, args)

        # Add-ons a node needs to become Ready; node groups wait for these.
        pod_identity_agent = managed_addon(
            f"{name}-eks-pod-identity-agent",
            cluster_name=self.eks.name,
            addon_name="eks-pod-identity-agent",
            tags=tags,
            parent=self,
        )
        cni_role, cni_attachments = role_with_managed_policies(
            f"{name}-vpc-cni",
            trusted_service=POD_IDENTITY_PRINCIPAL,
            policy_arns=[ctx.managed_policy("AmazonEKS_CNI_Policy")],
            tags=tags,
            parent=self,
            description="VPC CNI (aws-node, Pod Identity): assigns pod IPs; keeps the CNI policy off the node role",
        )
        vpc_cni = managed_addon(
            f"{name}-vpc-cni",
            cluster_name=self.eks.name,
            addon_name="vpc-cni",
            tags=tags,
            parent=self,
            # Enforce NetworkPolicy objects (default-deny with explicit allows for the workloads).
            configuration={"enableNetworkPolicy": "true"},
            pod_identity=(cni_role.arn, "aws-node"),
            depends_on=[pod_identity_agent, *cni_attachments],
        )
        kube_proxy = managed_addon(
            f"{name}-kube-proxy", cluster_name=self.eks.name, addon_name="kube-proxy", tags=tags, parent=self
        )
        self.node_prerequisites: list[pulumi.Resource] = [pod_identity_agent, vpc_cni, kube_proxy]

        self.kubeconfig: pulumi.Output[str] = kubeconfig_output(
            self.eks.name,
            self.eks.endpoint,
            self.eks.certificate_authority.apply(lambda ca: ca.data),
            ctx.region,
        )
        api_access = self._deployer_access(name, args)
        # The only Kubernetes provider of the program: every Kubernetes resource names it, so nothing
        # ever lands in whatever cluster the ambient ~/.kube/config points at. It waits for the admins'
        # access entries and the deployer's network path, or its first call fails.
        self.k8s_provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*admin_associations, *api_access]),
        )

        self.register_outputs(
            {
                "clusterName": self.name,
                "endpoint": self.endpoint,
                "oidcIssuerUrl": self.oidc_issuer_url,
                "oidcProviderArn": self.oidc_provider.arn,
                "kubeconfig": self.kubeconfig,
            }
        )

    def _deployer_access(self, name: str, args: ClusterArgs) -> list[pulumi.Resource]:
        """HTTPS to the private API endpoint (on the cluster security group, which fronts its network
        interfaces) from the configured deployer CIDRs and security groups."""
        settings = args.settings
        sources = [("cidr", cidr, {"cidr_ipv4": cidr}) for cidr in settings.deployer_cidrs] + [
            ("sg", sg, {"referenced_security_group_id": sg}) for sg in settings.deployer_security_group_ids
        ]
        rules: list[pulumi.Resource] = []
        for kind, source, peer in sources:
            slug = source.replace("/", "-").replace(".", "-")
            rules.append(
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-api-from-{kind}-{slug}",
                    security_group_id=self.security_group_id,
                    ip_protocol="tcp",
                    from_port=443,
                    to_port=443,
                    description=f"Kubernetes API for pulumi up and operators ({source})",
                    tags=dict(args.tags),
                    opts=pulumi.ResourceOptions(parent=self),
                    **peer,
                )
            )
        return rules

    def _cluster_admins(self, name: str, args: ClusterArgs) -> list[pulumi.Resource]:
        # Exactly the configured roles (the deploy role among them), whoever runs this: the same plan
        # under every identity, so `pulumi up --plan` holds.
        principals = list(args.settings.admin_principal_arns)
        associations: list[pulumi.Resource] = []
        for arn in principals:
            slug = _principal_slug(arn)
            entry = aws.eks.AccessEntry(
                f"{name}-admin-{slug}",
                cluster_name=self.eks.name,
                principal_arn=arn,
                type="STANDARD",
                tags=dict(args.tags),
                opts=pulumi.ResourceOptions(parent=self),
            )
            associations.append(
                aws.eks.AccessPolicyAssociation(
                    f"{name}-admin-{slug}",
                    cluster_name=self.eks.name,
                    principal_arn=entry.principal_arn,
                    policy_arn=args.aws.eks_access_policy(CLUSTER_ADMIN_POLICY),
                    access_scope={"type": "cluster"},
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
        return associations
