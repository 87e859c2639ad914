"""Every pod the platform runs has a node group it fits, as the scheduler would decide it: the program's own
workloads, every workload the charts render with the program's values, and the engine-build Jobs the provider
submits at run time. A pod may land on a group whose labels satisfy its nodeSelector and required node
affinity and whose taints it tolerates; there its requests must fit the allocatable of every instance type
of the group (platform_spec.gpus) after the DaemonSets that run on it. GPU DaemonSets must tolerate the GPU
taint; GPU workloads must request nvidia.com/gpu; dev's time-slicing config must reach the device plugin."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from infra import scheduling
from platform_spec import gpus
from platform_spec.quantities import quantity
from platform_spec.settings import settings_from_pulumi_config
from tests.platform_objects import stack_objects
from tests.pulumi_harness import stack_config

WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet", "Job")


@dataclass(frozen=True)
class Group:
    name: str
    labels: dict
    taints: tuple
    nodes: tuple  # NodeCapacity per instance type


@dataclass(frozen=True)
class Pod:
    where: str
    kind: str
    spec: dict

    def requests(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for container in self.spec.get("containers", []):
            for name, value in ((container.get("resources") or {}).get("requests") or {}).items():
                total[name] = total.get(name, 0.0) + quantity(value)
        return total


# Labels the kubelet puts on every node of these (Linux, x86_64) node groups, beside the platform's own.
WELL_KNOWN = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}


def _groups(settings) -> list[Group]:
    system = settings.system_node_group
    groups = [Group("system", {**WELL_KNOWN, **scheduling.system_node_labels()}, (),
                    tuple(gpus.allocatable(t, system.disk_size_gib) for t in system.instance_types))]  # fmt: skip
    for pool in settings.gpu_pools:
        nodes = tuple(gpus.allocatable(t, pool.disk_size_gib) for t in pool.instance_types)
        groups.append(Group(pool.name, {**WELL_KNOWN, **scheduling.gpu_node_labels(pool)}, ("nvidia.com/gpu",), nodes))
    return groups


def _selects(pod: Pod, group: Group) -> bool:
    spec = pod.spec
    if any(group.labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})  # fmt: skip
    terms = required.get("nodeSelectorTerms") or []
    if terms and not any(all(_matches(e, group.labels) for e in t.get("matchExpressions", [])) for t in terms):
        return False
    tolerated = {t.get("key") for t in spec.get("tolerations") or [] if t.get("operator") == "Exists" or t.get("key")}
    tolerates_all = any(t.get("operator") == "Exists" and not t.get("key") for t in spec.get("tolerations") or [])
    return tolerates_all or all(taint in tolerated for taint in group.taints)


def _matches(expression: dict, labels: dict) -> bool:
    key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    raise AssertionError(f"operator {operator} not handled")


def _pod_spec(obj: dict) -> dict | None:
    if obj.get("kind") not in WORKLOADS:
        return None
    return ((obj.get("spec") or {}).get("template") or {}).get("spec")


@pytest.fixture(scope="module", params=["dev", "prod"])
def cluster(request):
    stack = request.param
    objects = stack_objects(stack)
    settings = settings_from_pulumi_config(stack_config(stack))
    pods: list[Pod] = []
    for source, obj in objects.everything():
        spec = _pod_spec(obj)
        if spec is not None:
            pods.append(Pod(f"{source} {obj['kind']} {obj['metadata']['name']}", obj["kind"], spec))
    return settings, _groups(settings), pods, objects.charts


def test_every_pod_template_has_a_node_group_it_fits(cluster):
    _, groups, pods, _ = cluster
    daemonsets = [p for p in pods if p.kind == "DaemonSet"]
    assert len(pods) > 20 and daemonsets
    for pod in pods:
        if "mps-control-daemon" in pod.where:
            continue  # selects nvidia.com/mps.capable nodes on purpose: inert (tests/infra/test_chart_rendering.py)
        candidates = [g for g in groups if _selects(pod, g)]
        assert candidates, f"{pod.where}: no node group matches its selector, affinity and tolerations"
        need = pod.requests()
        fits = []
        for group in candidates:
            # What the DaemonSets on this group already take from every node.
            taken: dict[str, float] = {}
            if pod.kind != "DaemonSet":
                for daemon in (d for d in daemonsets if _selects(d, group)):
                    for name, value in daemon.requests().items():
                        taken[name] = taken.get(name, 0.0) + value
            fits.append(all(
                need.get("cpu", 0) + taken.get("cpu", 0) <= node.cpu_millicores / 1000 + 1e-9
                and need.get("memory", 0) + taken.get("memory", 0) <= node.memory_mib * 2**20
                and need.get("ephemeral-storage", 0) <= node.ephemeral_gib * 2**30
                and need.get("nvidia.com/gpu", 0) <= node.gpus
                for node in group.nodes
            ))  # fmt: skip
        assert any(fits), f"{pod.where} requests {need}; fits no node of {[g.name for g in candidates]}"


def test_gpu_daemonsets_tolerate_the_gpu_taint(cluster):
    _, groups, pods, _ = cluster
    gpu_groups = [g for g in groups if g.taints]
    for pod in pods:
        if pod.kind == "DaemonSet" and any(w in pod.where for w in ("nvidia-device-plugin ", "dcgm", "node-exporter")):
            if "mps-control-daemon" in pod.where:
                continue  # inert by design (tests/infra/test_chart_rendering.py)
            assert all(_selects(pod, g) for g in gpu_groups), f"{pod.where} does not run on every GPU node"


def test_gpu_workloads_request_gpus_and_run_only_on_gpu_nodes(cluster):
    _, groups, pods, _ = cluster
    gpu_pods = [p for p in pods if p.where.startswith("build ") or "-deployment" in p.where and "triton" in p.where]
    assert gpu_pods
    for pod in gpu_pods:
        assert pod.requests().get("nvidia.com/gpu", 0) >= 1, pod.where
        assert all(g.taints for g in groups if _selects(pod, g)), pod.where


def test_dev_time_slicing_reaches_the_device_plugin(cluster):
    settings, _, _, rendered = cluster
    configs = [o for o in rendered["nvidia-device-plugin"] if o["kind"] == "ConfigMap"]
    if settings.device_plugin.sharing != "time-slicing":
        assert not configs
        return
    (config,) = configs
    text = "\n".join(config["data"].values())
    assert "timeSlicing" in text and f"replicas: {settings.device_plugin.replicas}" in text
    plugin = next(o for o in rendered["nvidia-device-plugin"]
                  if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "nvidia-device-plugin")  # fmt: skip
    volumes = plugin["spec"]["template"]["spec"]["volumes"]
    assert any((v.get("configMap") or {}).get("name") == config["metadata"]["name"] for v in volumes)
