"""The Kubernetes manifests in deploy/k8s: schema-valid, and consistent with the server.

Every YAML file parses; every resource validates strictly (unknown fields are errors)
against the Kubernetes JSON schemas that ``kubernetes-validate`` ships, for the oldest
version we support (1.30: the preStop ``sleep`` action) and the newest it knows. The
overlays are rendered with ``kubectl kustomize`` (the kustomize built into kubectl) and the
results checked for what a rollout relies on: probes on routes the server has, a grace
period longer than preStop + drain, selectors that select, an HPA aimed at the Deployment,
the API key from a Secret, a locked-down security context, and a GPU variant that asks for
a GPU, scales on queue depth and lands only on nodes whose driver runs its CUDA.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from server.app import ROUTES
from server.metrics import Metrics
from server.settings import Settings, from_sources
from tests.deploy.dockerfile import parse

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OLDEST, NEWEST = "1.30", kubernetes_validate.latest_version()
KUSTOMIZE_KINDS = {"Kustomization", "Component"}
SECRET_WORDS = ("KEY", "TOKEN", "PASSWORD", "SECRET")
# NVIDIA GPU Feature Discovery's driver-major labels: current, and the deprecated older name.
GFD_DRIVER_MAJOR = ("nvidia.com/cuda.driver-version.major", "nvidia.com/cuda.driver.major")
# The oldest NVIDIA driver branch each CUDA base image admits (its NVIDIA_REQUIRE_CUDA).
MIN_DRIVER = {12: 535, 13: 580}

Doc = dict[str, Any]
Render = Callable[..., list[Doc]]


def yaml_files() -> list[Path]:
    return sorted(p for p in (ROOT / "deploy").rglob("*") if p.suffix in {".yaml", ".yml"})


def load(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def is_resource(doc: Any) -> bool:
    return isinstance(doc, dict) and "apiVersion" in doc and doc.get("kind") not in KUSTOMIZE_KINDS


def validate(doc: Doc) -> None:
    for version in (OLDEST, NEWEST):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} against {version}: {where}: {exc.message}")


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory) -> Render:
    """Render an overlay of ``resources`` and ``components`` (paths under deploy/k8s), once each."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed; the overlays were not rendered")
    rendered: dict[tuple[tuple[str, ...], tuple[str, ...]], list[Doc]] = {}

    def run(*resources: str, components: tuple[str, ...] = ()) -> list[Doc]:
        key = (resources, components)
        if key not in rendered:
            overlay = tmp_path_factory.mktemp("overlay")
            # kustomize refuses absolute paths: point at deploy/k8s relative to the overlay.
            up = os.path.relpath(K8S, overlay)
            spec = {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"{up}/{r}" for r in resources],
                "components": [f"{up}/{c}" for c in components],
            }
            (overlay / "kustomization.yaml").write_text(yaml.safe_dump(spec))
            result = subprocess.run(
                [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False
            )
            assert result.returncode == 0, result.stderr
            rendered[key] = [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]
        # Tests may modify what they get: hand out a fresh copy.
        return copy.deepcopy(rendered[key])

    return run


def one(docs: list[Doc], kind: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(docs: list[Doc]) -> Doc:
    containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: Doc = containers[0]
    return result


def env_of(c: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in c.get("env", [])}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def node_terms(docs: list[Doc]) -> list[list[Doc]]:
    """The required node-affinity terms of the pods (ORed), each a list of ANDed expressions."""
    affinity = one(docs, "Deployment")["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    terms = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    return [term["matchExpressions"] for term in terms]


def driver_floor(term: list[Doc]) -> int:
    """The lowest driver major a node-affinity term admits: 0 when it does not look at the driver."""
    floors = [
        int(e["values"][0]) + (1 if e["operator"] == "Gt" else 0)
        for e in term
        if e["key"] in GFD_DRIVER_MAJOR and e["operator"] in {"Gt", "In"} and len(e["values"]) == 1
    ]
    return max(floors, default=0)


def default_cuda_major() -> int:
    """The CUDA major of Dockerfile.gpu's default base image."""
    match = re.search(r"nvidia/cuda:(\d+)\.", parse(ROOT / "Dockerfile.gpu").global_args["CUDA_IMAGE"])
    assert match is not None
    return int(match.group(1))


OVERLAYS = {
    "cpu": (("base",), ()),
    "gpu": (("gpu",), ()),
    "cpu+queue": (("base",), ("components/queue-autoscaling",)),
    "gpu+cuda13": (("gpu",), ("components/cuda13-driver",)),
}


@pytest.fixture(params=sorted(OVERLAYS))
def rendered(request: pytest.FixtureRequest, render: Render) -> list[Doc]:
    resources, components = OVERLAYS[request.param]
    return render(*resources, components=components)


# -- files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_file_parses_and_every_resource_validates(path: Path) -> None:
    docs = load(path)
    assert docs, f"{path} is empty"
    for doc in docs:
        if is_resource(doc):
            validate(doc)


def test_strict_validation_rejects_an_unknown_field() -> None:
    deployment = load(K8S / "base" / "deployment.yaml")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {
        "httpGet": {"path": "/", "port": 1}
    }
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(deployment, OLDEST, strict=True)


def test_every_kustomization_lists_files_that_exist() -> None:
    for path in K8S.rglob("kustomization.yaml"):
        spec = load(path)[0]
        for entry in spec.get("resources", []) + spec.get("components", []):
            assert (path.parent / entry).exists(), f"{path}: {entry} does not exist"
        for patch in spec.get("patches", []):
            assert (path.parent / patch["path"]).is_file(), f"{path}: {patch['path']} does not exist"


def test_no_secret_values_in_manifests() -> None:
    for path in yaml_files():
        for doc in load(path):
            if is_resource(doc):
                assert doc["kind"] != "Secret", f"{path}: create the Secret at deploy time, never commit one"


# -- rendered overlays -----------------------------------------------------------------------


def test_rendered_resources_validate(rendered: list[Doc]) -> None:
    kinds = sorted(d["kind"] for d in rendered)
    assert kinds == sorted(
        [
            "Namespace",
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "NetworkPolicy",
        ]
    )
    for doc in rendered:
        validate(doc)


def test_selectors_select_the_pods(rendered: list[Doc]) -> None:
    deployment = one(rendered, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"]["matchLabels"], labels)
    assert selects(one(rendered, "Service")["spec"]["selector"], labels)
    assert selects(one(rendered, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
    assert selects(one(rendered, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"], labels)
    namespaces = {d["metadata"].get("namespace") for d in rendered if d["kind"] != "Namespace"}
    assert namespaces == {one(rendered, "Namespace")["metadata"]["name"]}


def test_hpa_targets_the_deployment_which_leaves_replicas_to_it(rendered: list[Doc]) -> None:
    deployment, hpa = one(rendered, "Deployment"), one(rendered, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"], deployment["kind"], deployment["metadata"]["name"]
    )  # fmt: skip
    assert "replicas" not in deployment["spec"], "kubectl apply would reset the HPA's replica count"
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])
    # One replica may be down at a time and two stay: a drain never empties the service.
    assert one(rendered, "PodDisruptionBudget")["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]


def test_probes_hit_server_routes_on_the_server_port(rendered: list[Doc]) -> None:
    c = container(rendered)
    routes = {route.path for route in ROUTES}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    env = env_of(c)
    port = int(env["EMBED_PORT"]["value"]) if "EMBED_PORT" in env else Settings().port
    assert ports == {"http": port}
    assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert "startupProbe" in c, "without it the liveness probe kills a replica still loading its model"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] in routes
        assert ports.get(get["port"], get["port"]) == port
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, "model load + warm-up need minutes"
    assert c["readinessProbe"]["httpGet"]["path"] != c["livenessProbe"]["httpGet"]["path"]
    assert env["EMBED_HOST"]["value"] == "0.0.0.0"
    service_port = one(rendered, "Service")["spec"]["ports"][0]
    assert service_port["targetPort"] in ports and service_port["port"] == port


def test_probes_leave_room_for_a_busy_replica(rendered: list[Doc]) -> None:
    """A saturated replica answers its probes late, not never: it must stay alive and ready.

    Readiness failing under load would pull capacity exactly when it is needed; liveness
    failing would restart a healthy replica and drop its queue.
    """
    c = container(rendered)
    live, ready = c["livenessProbe"], c["readinessProbe"]
    assert live["timeoutSeconds"] >= 5 and ready["timeoutSeconds"] >= 5
    assert live["periodSeconds"] * live["failureThreshold"] >= 60, "restart only after a minute of silence"
    assert ready["periodSeconds"] * ready["failureThreshold"] >= 15
    assert live.get("successThreshold", 1) == 1


def test_prometheus_scrapes_metrics_without_the_api_key(rendered: list[Doc]) -> None:
    """The pods carry Prometheus' scrape annotations, which cannot send a key: /metrics is open."""
    pod = one(rendered, "Deployment")["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    env = {name: e["value"] for name, e in env_of(container(rendered)).items() if "value" in e}
    settings = from_sources([], {**env, "EMBED_API_KEY": "k" * 32})
    assert settings.public_metrics, "with an API key set, /metrics needs it unless EMBED_PUBLIC_METRICS"


def test_grace_period_outlasts_prestop_plus_drain(rendered: list[Doc]) -> None:
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    c = container(rendered)
    env = env_of(c)
    drain = (
        float(env["EMBED_DRAIN_TIMEOUT"]["value"])
        if "EMBED_DRAIN_TIMEOUT" in env
        else Settings().drain_timeout
    )
    delay = float(env["EMBED_DRAIN_DELAY"]["value"]) if "EMBED_DRAIN_DELAY" in env else Settings().drain_delay
    pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop > 0, "endpoint removal is asynchronous: keep serving a moment after being unlisted"
    assert pod["terminationGracePeriodSeconds"] > pre_stop + delay + drain


def test_rolling_update_never_drops_below_the_current_capacity(rendered: list[Doc]) -> None:
    deployment = one(rendered, "Deployment")["spec"]
    assert deployment["strategy"]["type"] == "RollingUpdate"
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert deployment["strategy"]["rollingUpdate"]["maxSurge"] >= 1
    assert deployment["minReadySeconds"] > 0


def test_api_key_comes_from_a_secret(rendered: list[Doc]) -> None:
    env = env_of(container(rendered))
    assert env["EMBED_API_KEY"]["valueFrom"]["secretKeyRef"]["name"]
    for name, entry in env.items():
        if any(word in name for word in SECRET_WORDS):
            assert "value" not in entry, f"{name} has a literal value; use a secretKeyRef"


def test_pod_runs_locked_down_as_the_image_user(rendered: list[Doc]) -> None:
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    c = container(rendered)
    users = [parse(ROOT / name).final.last("USER") for name in ("Dockerfile.cpu", "Dockerfile.gpu")]
    image_users = {user.text for user in users if user is not None}
    assert image_users == {f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    # A read-only root needs a writable /tmp for Python and ONNX Runtime scratch files.
    assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}


def test_resources_are_bounded_and_threads_follow_the_cpu_limit(rendered: list[Doc]) -> None:
    c = container(rendered)
    requests, limits = c["resources"]["requests"], c["resources"]["limits"]
    assert {"cpu", "memory"} <= set(requests) and {"cpu", "memory"} <= set(limits)
    threads = env_of(c)["EMBED_INTRA_OP_THREADS"]["valueFrom"]["resourceFieldRef"]
    assert (threads["resource"], threads["containerName"]) == ("limits.cpu", c["name"])


def test_network_policy_admits_only_the_server_port_and_denies_egress(rendered: list[Doc]) -> None:
    policy = one(rendered, "NetworkPolicy")["spec"]
    port = container(rendered)["ports"][0]["containerPort"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert not policy.get("egress"), "the server calls nothing; egress stays closed"
    for rule in policy["ingress"]:
        assert rule["from"], "an empty `from` would admit every client"
        assert [p["port"] for p in rule["ports"]] == [port]
    peers = [
        peer.get("podSelector", {}).get("matchLabels", {})
        for rule in policy["ingress"]
        for peer in rule["from"]
    ]
    assert {"common.k8s.elastic.co/type": "elasticsearch"} in peers
    assert {"app.kubernetes.io/name": "rag"} in peers


def test_gpu_overlay_asks_for_a_gpu_and_serves_fp16(render: Render) -> None:
    cpu, gpu = render("base"), render("gpu")
    c = container(gpu)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == c["resources"]["requests"]["nvidia.com/gpu"] == "1"
    env = env_of(c)
    assert env["EMBED_DEVICE"]["value"] == "cuda", "explicit: a missing GPU fails the start, no silent CPU"
    assert env["EMBED_VARIANT"]["value"] == "fp16"
    assert env["EMBED_TRT_CACHE_DIR"]["value"] in {m["mountPath"] for m in c["volumeMounts"]}
    assert set(env_of(container(cpu))) < set(env), "the GPU patch must keep every base variable"
    assert c["image"].endswith("-gpu") and container(cpu)["image"].endswith("-cpu")
    pod = one(gpu, "Deployment")["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms[0]["matchExpressions"][0]["key"] == "aliyun.accelerator/nvidia_name"
    assert "nvidia.com/gpu" not in container(cpu)["resources"]["limits"]


def test_gpu_hpa_scales_on_queue_depth_by_default(render: Render) -> None:
    hpa = one(render("gpu"), "HorizontalPodAutoscaler")["spec"]
    pods = [m["pods"] for m in hpa["metrics"] if m["type"] == "Pods"]
    assert [p["metric"]["name"] for p in pods] == ["embed_queue_requests"]
    target = float(pods[0]["target"]["averageValue"])
    cpu_hpa = one(render("base", components=("components/queue-autoscaling",)), "HorizontalPodAutoscaler")
    cpu_target = next(
        float(m["pods"]["target"]["averageValue"]) for m in cpu_hpa["spec"]["metrics"] if "pods" in m
    )
    assert cpu_target <= target < 0.5 * Settings().max_queue_requests, "scale out well before 429s"
    assert any(m["type"] == "Resource" for m in hpa["metrics"]), (
        "CPU: the fallback while the metric is missing"
    )


def test_gpu_overlay_lands_only_where_the_default_image_runs(render: Render) -> None:
    """CUDA 12 (the default) runs on drivers from 535: any GPU node pool. CUDA 13 needs >= 580."""
    cuda = default_cuda_major()
    assert cuda in MIN_DRIVER
    terms = node_terms(render("gpu"))
    if cuda == 12:
        assert terms == [[{"key": "aliyun.accelerator/nvidia_name", "operator": "Exists"}]]
    else:
        assert all(driver_floor(term) >= MIN_DRIVER[cuda] for term in terms)


def test_cuda13_component_requires_a_580_driver_by_either_gfd_label(render: Render) -> None:
    docs = render("gpu", components=("components/cuda13-driver",))
    terms = node_terms(docs)
    assert [driver_floor(term) for term in terms] == [MIN_DRIVER[13]] * len(GFD_DRIVER_MAJOR)
    assert sorted(e["key"] for term in terms for e in term) == sorted(GFD_DRIVER_MAJOR)
    assert container(docs) == container(render("gpu")), "only where the pods run changes"


def test_queue_component_scales_on_a_metric_the_server_exports(render: Render) -> None:
    hpa = one(render("base", components=("components/queue-autoscaling",)), "HorizontalPodAutoscaler")
    pods = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert [p["metric"]["name"] for p in pods] == ["embed_queue_requests"]
    gauges = {family.name for family in Metrics.create().registry.collect() if family.type == "gauge"}
    assert "embed_queue_requests" in gauges
    values = load(K8S / "components" / "queue-autoscaling" / "prometheus-adapter-values.yaml")[0]
    rule = values["rules"]["custom"][0]
    assert rule["name"]["as"] == "embed_queue_requests"
    assert rule["seriesQuery"].startswith("embed_queue_requests{")
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
    assert "queue" not in str(one(render("base"), "HorizontalPodAutoscaler")["spec"]["metrics"])
