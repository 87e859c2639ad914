"""What users of each stack depend on, asserted on the registrations of the whole program."""

from __future__ import annotations

import ipaddress
import json

import yaml

from infra import scheduling
from infra.cluster import CONTROL_PLANE_LOG_TYPES
from infra.gpu_software import NAMESPACE
from infra.program import OUTPUTS_VERSION
from platform_spec import versions
from tests.delivery.contract import load_contract
from tests.pulumi_harness import is_taggable
from tools.offline import DEPLOYER_ROLE_ARN, STAND_IN_ACCESS

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
CLUSTER = "aws:eks/cluster:Cluster"
ADDON = "aws:eks/addon:Addon"
RELEASE = "kubernetes:helm.sh/v3:Release"
K8S_PROVIDER = "pulumi:providers:kubernetes"

# The stable outputs of docs/outputs.contract.json: one source of truth for what every stack exports.
OUTPUT_CONTRACT = {name for name, spec in load_contract()["outputs"].items() if spec["status"] == "stable"}
SECRET_OUTPUTS = {name for name, spec in load_contract()["outputs"].items() if spec["secret"]}


def _by_urn(run):
    return {r.urn: r for r in run.registrations}


def _gpu_groups(run, settings):
    return {
        pool.name: run.one(NODE_GROUP, f"{run.outputs['clusterName']}-gpu-{pool.name}") for pool in settings.gpu_pools
    }


# --- node groups and launch templates ---------------------------------------------------------------


def test_every_launch_template_requires_imdsv2_with_hop_limit_1(stack_run):
    templates = stack_run.of_type(LAUNCH_TEMPLATE)
    assert templates, "no launch templates declared"
    for template in templates:
        metadata = template.inputs["metadataOptions"]
        assert metadata["httpTokens"] == "required", template.name
        assert metadata["httpPutResponseHopLimit"] == 1, template.name
        assert metadata["httpEndpoint"] == "enabled", template.name


def test_every_node_group_launches_through_its_own_template(stack_run):
    groups = stack_run.of_type(NODE_GROUP)
    templates = {t.id: t for t in stack_run.of_type(LAUNCH_TEMPLATE)}
    used = [group.inputs["launchTemplate"]["id"] for group in groups]
    assert sorted(used) == sorted(templates), "one launch template per node group, each used once"
    for group in groups:
        template = templates[group.inputs["launchTemplate"]["id"]]
        assert group.inputs["launchTemplate"]["version"] == str(template.outputs["latestVersion"])
        assert "diskSize" not in group.inputs, "the root volume is sized in the launch template"


def test_root_volumes_are_encrypted_and_sized_from_settings(stack_run, stack_settings):
    cluster = stack_run.outputs["clusterName"]
    expected = {f"{cluster}-system": stack_settings.system_node_group.disk_size_gib}
    expected |= {f"{cluster}-gpu-{p.name}": p.disk_size_gib for p in stack_settings.gpu_pools}
    for template in stack_run.of_type(LAUNCH_TEMPLATE):
        (mapping,) = template.inputs["blockDeviceMappings"]
        assert mapping["deviceName"] == "/dev/xvda"
        assert mapping["ebs"]["encrypted"] == "true"
        assert mapping["ebs"]["volumeType"] == "gp3"
        assert mapping["ebs"]["volumeSize"] == expected[template.name]


def test_gpu_pools_are_tainted_labelled_and_on_the_nvidia_ami(stack_run, stack_settings):
    groups = _gpu_groups(stack_run, stack_settings)
    for pool in stack_settings.gpu_pools:
        inputs = groups[pool.name].inputs
        assert inputs["amiType"] == versions.GPU_AMI_TYPE == "AL2023_x86_64_NVIDIA"
        assert inputs["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
        labels = inputs["labels"]
        assert labels["platform.io/gpu-sku"] == pool.gpu_sku
        assert labels["platform.io/pool"] == pool.name
        assert labels["platform.io/role"] == pool.role
        assert labels[scheduling.COMPUTE_CAPABILITY_LABEL] == pool.compute_capability
        for key, value in pool.labels.items():
            assert labels[key] == value
        assert inputs["instanceTypes"] == pool.instance_types
        assert inputs["capacityType"] == pool.capacity_type
        assert inputs["scalingConfig"] == {
            "minSize": pool.min_size,
            "maxSize": pool.max_size,
            "desiredSize": pool.desired_size,
        }
        assert inputs["nodeRepairConfig"] == {"enabled": True}


def test_system_group_is_untainted_on_demand_standard_ami(stack_run, stack_settings):
    system = stack_run.one(NODE_GROUP, f"{stack_run.outputs['clusterName']}-system")
    assert system.inputs["amiType"] == versions.SYSTEM_AMI_TYPE
    assert "taints" not in system.inputs or not system.inputs["taints"]
    assert system.inputs["capacityType"] == "ON_DEMAND"
    assert system.inputs["labels"] == {"platform.io/role": "system", "platform.io/pool": "system"}
    assert system.inputs["instanceTypes"] == stack_settings.system_node_group.instance_types


def test_autoscaler_owns_desired_size_after_creation(stack_run):
    for group in stack_run.of_type(NODE_GROUP):
        assert group.ignore_changes == ("scalingConfig.desiredSize",), group.name


def test_nodes_run_in_private_subnets_only(stack_run):
    private = {
        r.id
        for r in stack_run.of_type("aws:ec2/subnet:Subnet")
        if "kubernetes.io/role/internal-elb" in r.inputs["tags"]
    }
    assert private
    for group in stack_run.of_type(NODE_GROUP):
        assert set(group.inputs["subnetIds"]) == private, group.name
    assert set(stack_run.one(CLUSTER).inputs["vpcConfig"]["subnetIds"]) == private


def test_node_role_has_only_kubelet_policies(stack_run):
    attachments = stack_run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    cluster = stack_run.outputs["clusterName"]
    node_role = stack_run.one("aws:iam/role:Role", f"{cluster}-node")
    node_policies = {a.inputs["policyArn"] for a in attachments if a.inputs["role"] == node_role.outputs["name"]}
    assert node_policies == {
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
    }
    trust = json.loads(node_role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    # The CNI policy exists exactly once, on the VPC CNI's own Pod Identity role.
    cni = [a for a in attachments if a.inputs["policyArn"].endswith("/AmazonEKS_CNI_Policy")]
    assert [a.inputs["role"] for a in cni] == [stack_run.one("aws:iam/role:Role", f"{cluster}-vpc-cni").outputs["name"]]
    for group in stack_run.of_type(NODE_GROUP):
        assert group.inputs["nodeRoleArn"] == node_role.outputs["arn"]


def test_node_groups_wait_for_the_networking_addons(stack_run):
    by_urn = _by_urn(stack_run)
    for group in stack_run.of_type(NODE_GROUP):
        addon_names = {by_urn[d].inputs["addonName"] for d in group.dependencies if by_urn[d].type == ADDON}
        assert addon_names == {"vpc-cni", "kube-proxy", "eks-pod-identity-agent"}, group.name


# --- control plane --------------------------------------------------------------------------------


def test_cluster_access_is_api_only_without_creator_admin(stack_run):
    cluster = stack_run.one(CLUSTER)
    assert cluster.inputs["accessConfig"] == {
        "authenticationMode": "API",
        "bootstrapClusterCreatorAdminPermissions": False,
    }
    assert cluster.inputs["bootstrapSelfManagedAddons"] is False


def test_admin_access_entries_are_exactly_the_configured_admins(stack_run):
    expected = set(STAND_IN_ACCESS["triton-platform:cluster.adminPrincipalArns"])
    entries = stack_run.of_type("aws:eks/accessEntry:AccessEntry")
    assert {e.inputs["principalArn"] for e in entries} == expected
    associations = stack_run.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert {a.inputs["principalArn"] for a in associations} == expected
    for association in associations:
        assert association.inputs["policyArn"].endswith(":cluster-access-policy/AmazonEKSClusterAdminPolicy")
        assert association.inputs["accessScope"] == {"type": "cluster"}


def test_secrets_are_envelope_encrypted_with_a_rotating_key(stack_run):
    cluster = stack_run.one(CLUSTER)
    encryption = cluster.inputs["encryptionConfig"]
    assert encryption["resources"] == ["secrets"]
    key = next(k for k in stack_run.of_type("aws:kms/key:Key") if k.outputs["arn"] == encryption["provider"]["keyArn"])
    assert key.inputs["enableKeyRotation"] is True


def test_all_control_plane_logs_with_retention_from_settings(stack_run, stack_settings):
    cluster = stack_run.one(CLUSTER)
    assert sorted(cluster.inputs["enabledClusterLogTypes"]) == sorted(CONTROL_PLANE_LOG_TYPES)
    assert set(CONTROL_PLANE_LOG_TYPES) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    (log_group,) = [g for g in stack_run.of_type("aws:cloudwatch/logGroup:LogGroup") if "/aws/eks/" in g.inputs["name"]]
    assert log_group.inputs["name"] == f"/aws/eks/{cluster.inputs['name']}/cluster"
    assert log_group.inputs["retentionInDays"] == stack_settings.cluster.log_retention_days
    assert log_group.urn in cluster.dependencies, "the log group must exist before EKS creates its own"


def test_prod_api_endpoint_is_private(prod_stack):
    vpc = prod_stack.one(CLUSTER).inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is False
    assert not vpc.get("publicAccessCidrs")


def test_kubernetes_version_and_addons_are_pinned(stack_run, stack_settings):
    assert stack_run.one(CLUSTER).inputs["version"] == stack_settings.cluster.kubernetes_version
    addons = {a.inputs["addonName"]: a.inputs for a in stack_run.of_type(ADDON)}
    assert {name: a["addonVersion"] for name, a in addons.items()} == versions.EKS_ADDONS
    assert json.loads(addons["vpc-cni"]["configurationValues"]) == {"enableNetworkPolicy": "true"}
    assert addons["vpc-cni"]["podIdentityAssociations"][0]["serviceAccount"] == "aws-node"
    ebs = addons["aws-ebs-csi-driver"]
    assert ebs["podIdentityAssociations"][0]["serviceAccount"] == "ebs-csi-controller-sa"
    assert json.loads(ebs["configurationValues"]) == {"node": {"tolerateAllTaints": True}}


def test_pod_identity_roles_trust_only_the_pod_identity_service(stack_run):
    roles = {r.outputs["arn"]: r for r in stack_run.of_type("aws:iam/role:Role")}
    for addon in stack_run.of_type(ADDON):
        for association in addon.inputs.get("podIdentityAssociations") or []:
            trust = json.loads(roles[association["roleArn"]].inputs["assumeRolePolicy"])
            (statement,) = trust["Statement"]
            assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
            assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:TagSession"]


def test_dns_and_storage_addons_wait_for_nodes(stack_run):
    by_urn = _by_urn(stack_run)
    for addon in stack_run.of_type(ADDON):
        if addon.inputs["addonName"] in {"coredns", "aws-ebs-csi-driver"}:
            assert any(by_urn[d].type == NODE_GROUP for d in addon.dependencies), addon.name


def test_oidc_provider_matches_the_cluster_issuer(stack_run):
    oidc = stack_run.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert oidc.inputs["url"] == stack_run.outputs["oidcIssuerUrl"]
    assert oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    assert stack_run.outputs["oidcProviderArn"] == oidc.outputs["arn"]


# --- Kubernetes side --------------------------------------------------------------------------------


def test_one_explicit_kubernetes_provider_used_by_every_kubernetes_resource(stack_run):
    (provider,) = stack_run.of_type(K8S_PROVIDER)
    assert provider.secret_inputs >= {"kubeconfig"}
    k8s_resources = [r for r in stack_run.registrations if r.type.startswith("kubernetes:")]
    assert len(k8s_resources) >= 4
    for resource in k8s_resources:
        assert resource.provider_urn == provider.urn, f"{resource.type} {resource.name} uses {resource.provider!r}"


def test_kubernetes_provider_waits_for_the_deployer_access_entry(stack_run):
    provider = stack_run.one(K8S_PROVIDER)
    by_urn = _by_urn(stack_run)
    principals = {
        by_urn[d].inputs["principalArn"]
        for d in provider.dependencies
        if by_urn[d].type == "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
    }
    assert DEPLOYER_ROLE_ARN in principals


def test_device_plugin_chart_tolerates_gpu_taint_and_targets_gpu_nodes(stack_run, stack_settings):
    release = stack_run.one(RELEASE, f"{stack_run.outputs['clusterName']}-device-plugin")
    chart = versions.NVIDIA_DEVICE_PLUGIN_CHART
    assert (release.inputs["chart"], release.inputs["version"]) == (chart["archive"], chart["version"])
    assert "repositoryOpts" not in release.inputs  # the vendored archive, no chart repository at `up`
    assert release.inputs["namespace"] == NAMESPACE
    values = release.inputs["values"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in values["tolerations"]
    terms = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "platform.io/gpu-sku", "operator": "Exists"}]}]
    # The affinity label is one every GPU node group actually carries.
    for group in stack_run.of_type(NODE_GROUP):
        if group.inputs.get("taints"):
            assert "platform.io/gpu-sku" in group.inputs["labels"]


def test_dev_time_slices_gpus_and_prod_does_not(dev_stack, prod_stack):
    dev_values = dev_stack.one(RELEASE, "triton-platform-dev-device-plugin").inputs["values"]
    assert dev_values["config"]["default"] == "default"
    config = yaml.safe_load(dev_values["config"]["map"]["default"])
    assert config["version"] == "v1"
    assert config["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 2}]
    assert config["sharing"]["timeSlicing"]["failRequestsGreaterThanOne"] is True
    prod_values = prod_stack.one(RELEASE, "triton-platform-prod-device-plugin").inputs["values"]
    assert "config" not in prod_values


def test_dcgm_exporter_runs_on_gpu_nodes_without_its_own_service_monitor(stack_run):
    release = stack_run.one(RELEASE, f"{stack_run.outputs['clusterName']}-dcgm-exporter")
    chart = versions.DCGM_EXPORTER_CHART
    assert (release.inputs["chart"], release.inputs["version"]) == (chart["archive"], chart["version"])
    values = release.inputs["values"]
    assert values["serviceMonitor"] == {"enabled": False}
    assert scheduling.GPU_TOLERATION in values["tolerations"]
    assert values["affinity"] == scheduling.GPU_NODE_AFFINITY


# Namespaces every EKS cluster has; the program declares no Namespace for them.
BUILT_IN_NAMESPACES = {"kube-system"}


def test_helm_releases_wait_for_their_namespace(stack_run):
    """A release installed before its namespace exists fails ("namespaces ... not found"). Each release
    depends directly on the Namespace resource of the namespace it installs into (a direct edge, so the
    order is in the state, not only implied by a parent component's dependencies), or installs into a
    namespace every cluster has."""
    declared = stack_run.of_type("kubernetes:core/v1:Namespace")
    namespaces = {ns.inputs["metadata"]["name"]: ns for ns in declared}
    assert len(namespaces) == len(declared), "two Namespace resources declare the same namespace"
    releases = stack_run.of_type(RELEASE)
    assert releases
    for release in releases:
        target = release.inputs["namespace"]
        if target in namespaces:
            assert namespaces[target].urn in release.dependencies, f"{release.name} does not wait for {target}"
        else:
            assert target in BUILT_IN_NAMESPACES, f"{release.name} installs into {target!r}, which nothing creates"
    assert {r.inputs["namespace"] for r in releases} - BUILT_IN_NAMESPACES, "no release into a declared namespace"


def test_default_storage_class_is_encrypted_gp3(stack_run, stack_settings):
    (storage_class,) = stack_run.of_type("kubernetes:storage.k8s.io/v1:StorageClass")
    assert storage_class.inputs["metadata"]["name"] == "gp3"
    assert storage_class.inputs["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert storage_class.inputs["parameters"]["encrypted"] == "true"
    assert storage_class.inputs["reclaimPolicy"] == ("Retain" if stack_settings.protect else "Delete")
    assert stack_settings.monitoring.storage_class == "gp3", "monitoring's default class must exist"


# --- stores ---------------------------------------------------------------------------------------


def _stores_key(run):
    return run.one("aws:kms/key:Key", f"{run.outputs['clusterName']}-stores")


def test_ecr_repository_is_immutable_scanned_and_kms_encrypted(stack_run):
    repo = stack_run.one("aws:ecr/repository:Repository")
    assert repo.inputs["imageTagMutability"] == "IMMUTABLE"
    assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo.inputs["encryptionConfigurations"] == [
        {"encryptionType": "KMS", "kmsKey": _stores_key(stack_run).outputs["arn"]}
    ]
    policy = json.loads(stack_run.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"])
    rules = sorted(policy["rules"], key=lambda r: r["rulePriority"])
    assert rules[0]["selection"]["tagStatus"] == "untagged"
    # ECR rejects a policy whose "any" rule is not the last one evaluated.
    assert [r["selection"]["tagStatus"] for r in rules].index("any") == len(rules) - 1
    assert stack_run.outputs["ecrRepositoryUrl"] == repo.outputs["repositoryUrl"]


def test_model_store_is_versioned_kms_encrypted_private_and_tls_only(stack_run):
    bucket = stack_run.one("aws:s3/bucket:Bucket")
    bucket_id = bucket.id

    versioning = stack_run.one("aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs["bucket"] == bucket_id
    assert versioning.inputs["versioningConfiguration"] == {"status": "Enabled"}

    sse = stack_run.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration").inputs
    assert sse["bucket"] == bucket_id
    (rule,) = sse["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": _stores_key(stack_run).outputs["arn"],
    }
    assert rule["bucketKeyEnabled"] is True

    block = stack_run.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert block["bucket"] == bucket_id
    assert all(
        block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )

    ownership = stack_run.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}

    policy_resource = stack_run.one("aws:s3/bucketPolicy:BucketPolicy")
    policy = json.loads(policy_resource.inputs["policy"])
    arn = bucket.outputs["arn"]
    insecure = next(s for s in policy["Statement"] if s["Condition"].get("Bool"))
    assert insecure["Effect"] == "Deny" and insecure["Principal"] == "*" and insecure["Action"] == "s3:*"
    assert insecure["Condition"]["Bool"] == {"aws:SecureTransport": "false"}
    assert sorted(insecure["Resource"]) == sorted([arn, f"{arn}/*"])
    block_urn = stack_run.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").urn
    assert block_urn in policy_resource.dependencies
    assert stack_run.outputs["modelStoreBucket"] == bucket.outputs["bucket"]


def test_protect_follows_settings_on_stateful_resources(stack_run, stack_settings):
    protect = stack_settings.protect
    stateful = [
        *stack_run.of_type("aws:kms/key:Key"),
        stack_run.one("aws:ecr/repository:Repository"),
        stack_run.one("aws:s3/bucket:Bucket"),
    ]
    assert len(stateful) == 5  # three KMS keys (Secrets, stores, logs), the repository, the bucket
    for resource in stateful:
        assert resource.protect is protect, resource.name
    assert stack_run.one("aws:s3/bucket:Bucket").inputs["forceDestroy"] is (not protect)
    assert stack_run.one("aws:ecr/repository:Repository").inputs["forceDelete"] is (not protect)
    assert stack_run.one(CLUSTER).inputs["deletionProtection"] is protect
    # Nothing else is protected: a stack must stay destroyable apart from its data.
    others = [r for r in stack_run.registrations if r.protect and r not in stateful]
    assert others == []


def test_prod_is_protected(prod_stack):
    assert prod_stack.one("aws:s3/bucket:Bucket").protect is True


# --- network ----------------------------------------------------------------------------------------


def test_subnets_are_tagged_for_load_balancers_and_fit_the_vpc(stack_run, stack_settings):
    cluster = stack_run.outputs["clusterName"]
    vpc = ipaddress.ip_network(stack_run.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"])
    assert str(vpc) == stack_settings.network.vpc_cidr
    subnets = stack_run.of_type("aws:ec2/subnet:Subnet")
    public = [s for s in subnets if s.inputs["tags"].get("kubernetes.io/role/elb") == "1"]
    private = [s for s in subnets if s.inputs["tags"].get("kubernetes.io/role/internal-elb") == "1"]
    assert len(public) == len(private) == stack_settings.network.az_count
    assert len({s.inputs["availabilityZoneId"] for s in private}) == stack_settings.network.az_count
    networks = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in subnets]
    for index, net in enumerate(networks):
        assert net.subnet_of(vpc)
        assert not any(net.overlaps(other) for other in networks[index + 1 :])
    for subnet in subnets:
        assert subnet.inputs["tags"][f"kubernetes.io/cluster/{cluster}"] == "shared"


def test_nat_gateways_follow_settings(stack_run, stack_settings):
    nats = stack_run.of_type("aws:ec2/natGateway:NatGateway")
    expected = stack_settings.network.az_count if stack_settings.network.nat_gateways == "per-az" else 1
    assert len(nats) == expected
    public_by_id = {s.id: s for s in stack_run.of_type("aws:ec2/subnet:Subnet")}
    # subnets are named after the zone (name) and pinned to it by zone ID; compare by the subnet's name suffix
    nat_az = {n.id: public_by_id[n.inputs["subnetId"]].name.rsplit("-public-", 1)[1] for n in nats}
    private_tables = [t for t in stack_run.of_type("aws:ec2/routeTable:RouteTable") if "private" in t.name]
    assert len(private_tables) == stack_settings.network.az_count
    for table in private_tables:
        (route,) = table.inputs["routes"]
        assert route["cidrBlock"] == "0.0.0.0/0"
        if expected > 1:  # per-AZ egress: each AZ routes through the NAT gateway in that AZ
            assert table.name.endswith(nat_az[route["natGatewayId"]])


def test_prod_spans_three_azs_with_a_nat_gateway_each(prod_stack):
    assert len(prod_stack.of_type("aws:ec2/natGateway:NatGateway")) == 3
    azs = {s.inputs["availabilityZoneId"] for s in prod_stack.of_type("aws:ec2/subnet:Subnet")}
    assert len(azs) == 3


# --- whole-program properties ---------------------------------------------------------------------


def test_every_taggable_aws_resource_carries_the_stack_tags(stack_run, stack_settings):
    taggable = [r for r in stack_run.registrations if r.type.startswith("aws:") and is_taggable(r.type)]
    assert len(taggable) > 20
    for resource in taggable:
        tags = resource.inputs.get("tags") or {}
        for key, value in stack_settings.tags.items():
            assert tags.get(key) == value, f"{resource.type} {resource.name} lacks tag {key}"
        assert tags.get("platform.io/stack") == stack_run.outputs["clusterName"]


def test_components_follow_the_naming_convention(stack_run):
    components = [r for r in stack_run.registrations if not r.custom]
    assert {c.type for c in components} >= {
        "platform:network:Network",
        "platform:cluster:Cluster",
        "platform:nodes:NodeGroups",
        "platform:addons:ClusterAddons",
        "platform:gpu:GpuSoftware",
        "platform:stores:Stores",
    }
    for component in components:
        assert component.type.startswith("platform:")
        children = [r for r in stack_run.registrations if r.parent == component.urn]
        assert children, f"{component.type} declares nothing"
        for child in children:
            assert child.name.startswith(f"{component.name}-"), child.name


def test_stack_outputs_contract(stack_run, stack_settings):
    outputs = stack_run.outputs
    assert set(outputs) == OUTPUT_CONTRACT
    assert stack_run.secret_outputs == SECRET_OUTPUTS == {"kubeconfig"}
    cluster = stack_run.one(CLUSTER)
    assert outputs["clusterName"] == cluster.outputs["name"]
    assert outputs["clusterEndpoint"] == cluster.outputs["endpoint"]
    assert outputs["clusterEndpoint"].startswith("https://")
    assert outputs["region"] == stack_settings.region
    assert outputs["outputsVersion"] == OUTPUTS_VERSION
    assert outputs["vpcId"] == stack_run.one("aws:ec2/vpc:Vpc").id
    groups = {g.name: g.outputs["nodeGroupName"] for g in stack_run.of_type(NODE_GROUP)}
    assert outputs["nodeGroups"] == {
        p.name: groups[f"{outputs['clusterName']}-gpu-{p.name}"] for p in stack_settings.gpu_pools
    }


def test_serving_outputs_describe_what_the_stack_declares(stack_run, stack_settings):
    """The Triton, engine and monitoring outputs are read from the resources, not restated."""
    outputs = stack_run.outputs
    pools = {p.name for p in stack_settings.gpu_pools}
    for name in ("tritonEndpoints", "servedModels", "modelRepositoryUris"):
        assert set(outputs[name]) == pools, name
    for pool, uri in outputs["modelRepositoryUris"].items():
        assert uri.startswith(f"s3://{outputs['modelStoreBucket']}/") and uri.endswith(
            f"/{outputs['modelRepositoryVersion']}/{pool}"
        )
    images = {
        container["image"]
        for deployment in stack_run.of_type("kubernetes:apps/v1:Deployment")
        for container in deployment.inputs["spec"]["template"]["spec"]["containers"]
    }
    assert set(outputs["tritonImages"].values()) == images
    engines = stack_run.of_type("pulumi-python:dynamic/engines:Engine")
    assert outputs["engineKeys"] == {
        f"{engine.inputs['model']}@{engine.inputs['runner']['pool']}": engine.inputs["key"] for engine in engines
    }
    # The Secret's name, of the Secret the program declares and Grafana reads its admin login from.
    (secret,) = [s for s in stack_run.of_type("kubernetes:core/v1:Secret") if "grafana" in s.name]
    assert outputs["grafanaAdminSecret"] == secret.inputs["metadata"]["name"]
    grafana = stack_run.one(RELEASE, f"{outputs['clusterName']}-kube-prometheus-stack").inputs["values"]["grafana"]
    assert grafana["admin"]["existingSecret"] == outputs["grafanaAdminSecret"]
    monitoring_namespace = secret.inputs["metadata"]["namespace"]
    for name in ("grafanaUrl", "prometheusUrl", "alertmanagerUrl"):
        assert f".{monitoring_namespace}.svc.cluster.local:" in outputs[name], name
    assert outputs["grafanaExternalUrl"] is None  # neither stack sets monitoring.exposeGrafana
    assert not stack_settings.monitoring.expose_grafana


def test_kubeconfig_authenticates_through_aws_eks_get_token(stack_run, stack_settings):
    kubeconfig = json.loads(stack_run.outputs["kubeconfig"])
    (cluster,) = kubeconfig["clusters"]
    assert cluster["cluster"]["server"] == stack_run.outputs["clusterEndpoint"]
    assert cluster["cluster"]["certificate-authority-data"]
    (user,) = kubeconfig["users"]
    exec_ = user["user"]["exec"]
    assert exec_["command"] == "aws"
    assert exec_["args"][exec_["args"].index("get-token") - 1] == "eks"
    assert exec_["args"][exec_["args"].index("--cluster-name") + 1] == stack_run.outputs["clusterName"]
    assert exec_["args"][exec_["args"].index("--region") + 1] == stack_settings.region
    assert "token" not in json.dumps(user["user"]).replace("get-token", "")


def test_kubernetes_objects_reach_the_cluster_only_in_forms_the_checks_see(stack_run):
    """Every Kubernetes object is a typed resource (test_infra_k8s_schemas validates each against the API
    schema or its CRD's required fields; the policy rules read them) or a Helm v3 Release of a pinned chart.
    No Kubernetes component (yaml.ConfigFile / ConfigGroup, kustomize.Directory, helm Chart): those render
    their objects client-side or inside the provider, where no check here ever sees them. Whatever else
    talks to the cluster (the Engine provider runs builds as Jobs) gets the cluster's own kubeconfig, as a
    secret, never an ambient one; the provider itself is checked in
    test_one_explicit_kubernetes_provider_used_by_every_kubernetes_resource."""
    k8s_registrations = [r for r in stack_run.registrations if r.type.startswith("kubernetes:")]
    components = [f"{r.type} {r.name}" for r in k8s_registrations if not r.custom]
    assert components == [], "Kubernetes components hide their objects from the schema and policy checks"
    assert {r.type for r in k8s_registrations if r.type.startswith("kubernetes:helm.sh/")} == {RELEASE}
    cluster_clients = [r for r in stack_run.registrations if "kubeconfig" in r.inputs]
    assert {r.type for r in cluster_clients} == {K8S_PROVIDER, "pulumi-python:dynamic/engines:Engine"}
    for client in cluster_clients:
        assert client.inputs["kubeconfig"] == stack_run.outputs["kubeconfig"], client.name
        assert "kubeconfig" in client.secret_inputs, client.name
