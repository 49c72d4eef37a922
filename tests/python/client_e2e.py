"""The official Kubernetes Python client against skiff: create, list with selectors, watch from a
resourceVersion, merge, JSON and strategic-merge patches, replace with conflicts, and deletion with
propagation policies. Run by tests/tests/python_client.rs; exits non-zero on the first failure."""

import sys
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config()
core = client.CoreV1Api()
apps = client.AppsV1Api()
NS = "pyclient"


def step(msg):
    print(f"--- {msg}", flush=True)


def expect_api_error(code, reason, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ApiException as e:
        assert e.status == code, f"expected {code}, got {e.status}: {e.body}"
        assert f'"reason":"{reason}"' in e.body.replace(" ", ""), e.body
        return
    raise AssertionError(f"expected an ApiException {code} {reason}")


def wait(what, check, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


step("create a namespace and configmaps")
core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
for name, labels in [
    ("front", {"app": "web", "tier": "front"}),
    ("back", {"app": "web", "tier": "back"}),
    ("old", {"app": "web", "tier": "front", "legacy": "yes"}),
    ("db", {"app": "db"}),
]:
    cm = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels), data={"k": name}
    )
    created = core.create_namespaced_config_map(NS, cm)
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None
expect_api_error(
    409, "AlreadyExists", core.create_namespaced_config_map, NS,
    client.V1ConfigMap(metadata=client.V1ObjectMeta(name="db")),
)
expect_api_error(404, "NotFound", core.read_namespaced_config_map, "nope", NS)
expect_api_error(
    422, "Invalid", core.create_namespaced_config_map, NS,
    client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Bad_Name")),
)

step("list with label selectors")


def names(selector):
    items = core.list_namespaced_config_map(NS, label_selector=selector).items
    return sorted(i.metadata.name for i in items)


assert names("app=web") == ["back", "front", "old"], names("app=web")
assert names("app=web,tier in (front)") == ["front", "old"]
assert names("app=web,!legacy") == ["back", "front"]
assert names("tier notin (front),app") == ["back", "db"]
assert names("app!=web") == ["db"]
page = core.list_namespaced_config_map(NS, limit=2)
assert len(page.items) == 2 and page.metadata._continue
rest = core.list_namespaced_config_map(NS, limit=10, _continue=page.metadata._continue)
assert len(page.items) + len(rest.items) >= 4

step("watch from a resourceVersion")
rv = core.list_namespaced_config_map(NS).metadata.resource_version
core.create_namespaced_config_map(
    NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="later"), data={"k": "v"})
)
core.patch_namespaced_config_map("front", NS, {"data": {"k": "changed"}})
seen = []
w = watch.Watch()
for event in w.stream(
    core.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=5
):
    seen.append((event["type"], event["object"].metadata.name))
    if len(seen) == 2:
        w.stop()
assert seen == [("ADDED", "later"), ("MODIFIED", "front")], seen

step("deployments: create, merge patch, strategic merge patch, replace")
deployment = client.V1Deployment(
    metadata=client.V1ObjectMeta(name="web", labels={"app": "web"}),
    spec=client.V1DeploymentSpec(
        replicas=2,
        selector=client.V1LabelSelector(match_labels={"app": "web"}),
        template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels={"app": "web"}),
            spec=client.V1PodSpec(
                containers=[
                    client.V1Container(
                        name="c",
                        image="busybox",
                        env=[client.V1EnvVar(name="A", value="1")],
                    ),
                    client.V1Container(name="side", image="busybox"),
                ]
            ),
        ),
    ),
)
d = apps.create_namespaced_deployment(NS, deployment)
assert d.spec.strategy.type == "RollingUpdate", "defaulted strategy"
assert d.spec.template.spec.restart_policy == "Always", "defaulted restartPolicy"

# The client sends a dict as a strategic merge patch and a list as a JSON patch; a merge patch
# takes a client whose default Content-Type overrides that.
merge_client = client.ApiClient()
merge_client.set_default_header("Content-Type", "application/merge-patch+json")
d = client.AppsV1Api(merge_client).patch_namespaced_deployment(
    "web", NS, {"metadata": {"annotations": {"owner": "py"}}, "spec": {"replicas": 3}}
)
assert d.spec.replicas == 3 and d.metadata.annotations["owner"] == "py"
d = apps.patch_namespaced_deployment(
    "web", NS, [{"op": "replace", "path": "/spec/replicas", "value": 4},
                {"op": "test", "path": "/metadata/annotations/owner", "value": "py"}]
)
assert d.spec.replicas == 4

# Strategic merge: containers merge by name and env by name, so the other container and the
# other variable stay.
d = apps.patch_namespaced_deployment(
    "web", NS,
    {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "env": [{"name": "B", "value": "2"}]}
    ]}}}},
)
containers = {c.name: c for c in d.spec.template.spec.containers}
assert sorted(containers) == ["c", "side"], sorted(containers)
env = sorted((e.name, e.value) for e in containers["c"].env)
assert env == [("A", "1"), ("B", "2")], env

stale = apps.read_namespaced_deployment("web", NS)


def replace_replicas(n):
    # The controller writes status concurrently; a client retries read-modify-replace on 409.
    for _ in range(20):
        fresh = apps.read_namespaced_deployment("web", NS)
        fresh.spec.replicas = n
        try:
            return apps.replace_namespaced_deployment("web", NS, fresh)
        except ApiException as e:
            if e.status != 409:
                raise
    raise AssertionError("replace kept conflicting")


replace_replicas(1)
stale.spec.replicas = 5
expect_api_error(409, "Conflict", apps.replace_namespaced_deployment, "web", NS, stale)
assert apps.read_namespaced_deployment("web", NS).spec.replicas == 1

step("the deployment controller makes a ReplicaSet")
rs = wait(
    "a ReplicaSet of web",
    lambda: apps.list_namespaced_replica_set(NS, label_selector="app=web").items,
)
assert rs[0].metadata.owner_references[0].name == "web"

step("delete with propagationPolicy=Orphan keeps the ReplicaSet, ownerless")
apps.delete_namespaced_deployment(
    "web", NS, body=client.V1DeleteOptions(propagation_policy="Orphan")
)
wait("web to be gone", lambda: not apps.list_namespaced_deployment(NS).items)


def orphaned():
    items = apps.list_namespaced_replica_set(NS, label_selector="app=web").items
    return items and all(not i.metadata.owner_references for i in items)


wait("the ReplicaSet to lose its owner", orphaned)

step("delete with propagationPolicy=Background removes dependents")
d = apps.create_namespaced_deployment(
    NS, client.V1Deployment(metadata=client.V1ObjectMeta(name="bg"), spec=client.V1DeploymentSpec(
        replicas=0,
        selector=client.V1LabelSelector(match_labels={"app": "bg"}),
        template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels={"app": "bg"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
        ),
    )),
)
wait("a ReplicaSet of bg",
     lambda: apps.list_namespaced_replica_set(NS, label_selector="app=bg").items)
apps.delete_namespaced_deployment(
    "bg", NS, body=client.V1DeleteOptions(propagation_policy="Background")
)
wait("bg's ReplicaSet to be collected",
     lambda: not apps.list_namespaced_replica_set(NS, label_selector="app=bg").items)

step("delete a configmap collection by selector")
core.delete_collection_namespaced_config_map(NS, label_selector="app=web")
assert names("") == ["db", "later"], names("")

print("python client: all checks passed", flush=True)
sys.exit(0)
