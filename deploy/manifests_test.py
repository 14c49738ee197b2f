"""What the Kubernetes schemas cannot say of deploy/kubernetes, checked on an overlay rendered by
`kubectl kustomize` (deploy/validate passes its path):

- every nuage pod runs hardened (non-root, read-only root, no capabilities, RuntimeDefault
  seccomp), is probed, has CPU and memory limits, gets no service link variables (nuage reads
  NUAGE_* as settings) and no Kubernetes API token unless it is the runner's;
- every Service, PodDisruptionBudget and NetworkPolicy selects pods that exist;
- the runner's RBAC grants exactly the calls the kubernetes backend makes (CALLS): no Secret
  read but the pull secret, nothing read cluster-wide but its namespaces' list, no role bound
  but nuage-runner-tenant, no write outside its own namespaces but namespaces themselves;
- the admission policies, evaluated with cel-python on the requests the runner could make,
  admit what the kubernetes backend does and refuse the rest: a namespace not named and
  labelled as nuage's, or made or changed to be less than `restricted`, a RoleBinding in
  another namespace, of another name, to another role or to another subject;
- given directories of the objects the backend generated (tests/kubernetes_objects.rs), that
  the policies admit its Namespaces and RoleBindings and its roles let it apply every kind.
"""

import pathlib
import sys
import tomllib
import unittest

import celpy
import yaml
from celpy import celtypes

RUNNER = "system:serviceaccount:nuage:nuage-runner"
MANAGED = {"app.kubernetes.io/managed-by": "nuage"}


def load(path):
    return [o for o in yaml.safe_load_all(open(path, encoding="utf-8")) if o]


OBJECTS = []


def of_kind(kind):
    return [o for o in OBJECTS if o["kind"] == kind]


def named(kind, name):
    found = [o for o in of_kind(kind) if o["metadata"]["name"] == name]
    assert found, f"no {kind} {name}"
    return found[0]


def selects(selector, labels):
    expressions = selector.get("matchExpressions", [])
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items()) and all(
        (labels.get(e["key"]) in e.get("values", [])) == (e["operator"] == "In") for e in expressions
    )


# The port of health_listen in the pods' nuage.toml, which every pod names `health`.
HEALTH_PORT = 8090


class Pods(unittest.TestCase):
    def test_every_process_serves_its_health_listener_on_the_health_port(self):
        configs = [o for o in of_kind("ConfigMap") if o["metadata"]["name"].startswith("nuage-config")]
        self.assertTrue(configs)
        for config in configs:
            settings = tomllib.loads(config["data"]["nuage.toml"])
            self.assertEqual(settings["health_listen"], f"0.0.0.0:{HEALTH_PORT}")

    def deployments(self):
        deployments = of_kind("Deployment")
        self.assertTrue(deployments)
        return deployments

    def test_every_pod_is_hardened(self):
        for deployment in self.deployments():
            name = deployment["metadata"]["name"]
            spec = deployment["spec"]["template"]["spec"]
            with self.subTest(name):
                self.assertIs(spec["securityContext"]["runAsNonRoot"], True)
                self.assertEqual(spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault")
                for container in spec["containers"]:
                    security = container["securityContext"]
                    self.assertIs(security["readOnlyRootFilesystem"], True)
                    self.assertIs(security["allowPrivilegeEscalation"], False)
                    self.assertEqual(security["capabilities"]["drop"], ["ALL"])

    def test_no_pod_gets_service_links_and_only_the_runner_gets_a_token(self):
        for deployment in self.deployments():
            name = deployment["metadata"]["name"]
            spec = deployment["spec"]["template"]["spec"]
            with self.subTest(name):
                self.assertIs(spec.get("enableServiceLinks"), False)
                if name == "nuage-runner":
                    self.assertEqual(spec["serviceAccountName"], "nuage-runner")
                else:
                    self.assertEqual(spec["serviceAccountName"], "nuage")
                    self.assertIs(spec["automountServiceAccountToken"], False)

    def test_every_pod_is_probed_over_http_on_a_port_it_has_and_is_limited(self):
        for deployment in self.deployments():
            name = deployment["metadata"]["name"]
            for container in deployment["spec"]["template"]["spec"]["containers"]:
                ports = {port["name"]: port["containerPort"] for port in container.get("ports", [])}
                with self.subTest(name):
                    # health_listen (nuage.toml) on every pod: /livez alive, /healthz ready
                    # (the gateway's API /healthz, which checks every service it calls).
                    self.assertEqual(ports.get("health"), HEALTH_PORT)
                    self.assertEqual(container["livenessProbe"]["httpGet"], {"path": "/livez", "port": "health"})
                    ready = container["readinessProbe"]["httpGet"]
                    self.assertEqual(ready["path"], "/healthz")
                    self.assertEqual(ready["port"], "http" if name == "nuage-gateway" else "health")
                    resources = container["resources"]
                    self.assertIn("cpu", resources["requests"])
                    self.assertIn("cpu", resources["limits"])
                    self.assertIn("memory", resources["limits"])

    def test_every_selector_selects_a_nuage_pod(self):
        pods = [d["spec"]["template"]["metadata"]["labels"] for d in self.deployments()]
        for o in of_kind("Service") + of_kind("PodDisruptionBudget") + of_kind("NetworkPolicy"):
            selector = {
                "Service": lambda: {"matchLabels": o["spec"]["selector"]},
                "PodDisruptionBudget": lambda: o["spec"]["selector"],
                "NetworkPolicy": lambda: o["spec"]["podSelector"],
            }[o["kind"]]()
            with self.subTest(f"{o['kind']} {o['metadata']['name']}"):
                self.assertTrue(any(selects(selector, labels) for labels in pods))


# Every request the kubernetes backend makes (services/runner/src/kubernetes/backend.rs), by
# the role that must allow it: "cluster" the ClusterRole nuage-runner (bound cluster-wide),
# "tenant" the ClusterRole nuage-runner-tenant (bound by the runner in each tenant namespace),
# "system" the Role nuage-runner-pull-secret (in nuage's own namespace). Server-side apply is a
# patch, and a create too when the object is new. The runner's roles grant these and nothing
# else: a call added to the backend without its right here fails on a cluster with a 403, and
# fails this test first.
CALLS = [
    ("cluster", "", "namespaces", "patch", "applying a tenant namespace"),
    ("cluster", "", "namespaces", "create", "applying a tenant namespace that is new"),
    ("cluster", "", "namespaces", "list", "finding its namespaces by label, to recover or remove versions"),
    ("cluster", "", "namespaces", "delete", "removing a tenant namespace left with no version"),
    ("cluster", "rbac.authorization.k8s.io", "rolebindings", "create", "binding its tenant role in a namespace"),
    ("cluster", "rbac.authorization.k8s.io", "clusterroles", "bind", "... that role, nuage-runner-tenant, only"),
    ("tenant", "networking.k8s.io", "networkpolicies", "patch", "applying the namespace's NetworkPolicy"),
    ("tenant", "networking.k8s.io", "networkpolicies", "create", "... when new"),
    ("tenant", "", "secrets", "patch", "applying the pull secret's copy and each version's secret variables"),
    ("tenant", "", "secrets", "create", "... when new"),
    ("tenant", "", "secrets", "delete", "removing a version"),
    ("tenant", "", "services", "patch", "applying a version's headless Service"),
    ("tenant", "", "services", "create", "... when new"),
    ("tenant", "", "services", "delete", "removing a version"),
    ("tenant", "apps", "deployments", "patch", "applying a version's Deployment"),
    ("tenant", "apps", "deployments", "create", "... when new"),
    ("tenant", "apps", "deployments", "delete", "removing a version"),
    ("tenant", "apps", "deployments", "list", "finding versions in a namespace, to recover or remove them"),
    ("tenant", "apps", "deployments/scale", "patch", "scaling a version to the instances held"),
    ("tenant", "discovery.k8s.io", "endpointslices", "list", "finding a version's ready pods"),
    ("tenant", "", "pods", "list", "watching a version's pods end, and saying why none is ready"),
    ("tenant", "", "pods", "patch", "annotating the instance holding a pod, and a pod given up"),
    ("tenant", "", "pods/log", "get", "following an instance's output"),
    ("system", "", "secrets", "get", "reading the registry pull secret"),
]
ROLES = {
    "cluster": ("ClusterRole", "nuage-runner"),
    "tenant": ("ClusterRole", "nuage-runner-tenant"),
    "system": ("Role", "nuage-runner-pull-secret"),
}


def granted(rules):
    """Returns the (API group, resource, verb) a role's rules grant."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


class Rbac(unittest.TestCase):
    def rules(self, kind, name):
        return named(kind, name)["rules"]

    def verbs(self, rules, resource):
        return {verb for rule in rules if resource in rule["resources"] for verb in rule["verbs"]}

    def test_the_runner_may_make_exactly_the_calls_the_backend_makes(self):
        for scope, (kind, name) in ROLES.items():
            needed = {(group, resource, verb) for where, group, resource, verb, _ in CALLS if where == scope}
            with self.subTest(name):
                self.assertEqual(granted(self.rules(kind, name)), needed)
        # Each role is bound to the runner where its calls are: cluster-wide, in nuage's
        # namespace, and (by the runner itself) in tenant namespaces only.
        runner = [{"kind": "ServiceAccount", "name": "nuage-runner", "namespace": "nuage"}]
        cluster = named("ClusterRoleBinding", "nuage-runner")
        self.assertEqual((cluster["roleRef"]["name"], cluster["subjects"]), ("nuage-runner", runner))
        system = named("RoleBinding", "nuage-runner-pull-secret")
        self.assertEqual((system["roleRef"]["name"], system["subjects"]), ("nuage-runner-pull-secret", runner))
        self.assertEqual(system["metadata"]["namespace"], "nuage")
        for binding in of_kind("ClusterRoleBinding") + of_kind("RoleBinding"):
            self.assertNotEqual(binding["roleRef"]["name"], "nuage-runner-tenant")

    def test_cluster_wide_the_runner_reads_nothing_but_its_namespaces_list(self):
        rules = self.rules("ClusterRole", "nuage-runner")
        reads = {"get", "list", "watch"}
        read = {resource for rule in rules if set(rule["verbs"]) & reads for resource in rule["resources"]}
        self.assertEqual(read, {"namespaces"})
        self.assertEqual(self.verbs(rules, "namespaces"), {"list", "create", "patch", "delete"})
        for resource in ("pods", "deployments", "endpointslices", "secrets", "services"):
            self.assertFalse(self.verbs(rules, resource), resource)

    def test_the_runner_reads_no_secret_but_the_pull_secret(self):
        for kind, name in [("ClusterRole", "nuage-runner"), ("ClusterRole", "nuage-runner-tenant")]:
            verbs = self.verbs(self.rules(kind, name), "secrets")
            self.assertFalse(verbs & {"get", "list", "watch"}, name)
        pull = self.rules("Role", "nuage-runner-pull-secret")
        self.assertEqual(pull, [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["nuage-registry-pull"]}])

    def test_the_runner_binds_one_role_and_writes_cluster_wide_only_namespaces_and_bindings(self):
        rules = self.rules("ClusterRole", "nuage-runner")
        writes = {"create", "update", "patch", "delete", "deletecollection", "bind", "escalate", "impersonate"}
        written = {resource for rule in rules if set(rule["verbs"]) & writes for resource in rule["resources"]}
        self.assertEqual(written, {"namespaces", "rolebindings", "clusterroles"})
        self.assertEqual(self.verbs(rules, "rolebindings"), {"create"})
        bind = [rule for rule in rules if "bind" in rule["verbs"]]
        self.assertEqual([rule.get("resourceNames") for rule in bind], [["nuage-runner-tenant"]])
        for role in ("nuage-runner", "nuage-runner-tenant"):
            self.assertFalse(any("*" in rule["verbs"] or "*" in rule["resources"] for rule in self.rules("ClusterRole", role)))


def evaluate(policy, request, new=None, old=None, namespace=None):
    """Returns "not matched", "allowed", or "denied: <messages>", as the API server would: a
    policy applies only to the operations its matchConstraints name, and (failurePolicy Fail)
    an expression that does not evaluate to true, an error among them, denies."""
    environment = celpy.Environment()

    def run(expression, activation):
        try:
            return environment.program(environment.compile(expression)).evaluate(activation)
        except celpy.CELEvalError as error:
            return error

    def holds(expression, activation):
        answer = run(expression, activation)
        return isinstance(answer, celtypes.BoolType) and bool(answer)

    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail", "a policy that fails open admits what it cannot evaluate"
    operations = {o for rule in spec["matchConstraints"]["resourceRules"] for o in rule["operations"]}
    if request["operation"] not in operations and "*" not in operations:
        return "not matched"
    activation = {
        "request": celpy.json_to_cel(request),
        "object": celpy.json_to_cel(new),
        "oldObject": celpy.json_to_cel(old),
        "namespaceObject": celpy.json_to_cel(namespace),
    }
    if not all(holds(c["expression"], activation) for c in spec.get("matchConditions", [])):
        return "not matched"
    variables = {}
    for variable in spec.get("variables", []):
        activation["variables"] = celtypes.MapType(variables)
        variables[celtypes.StringType(variable["name"])] = run(variable["expression"], activation)
    activation["variables"] = celtypes.MapType(variables)
    failed = [v["message"] for v in spec["validations"] if not holds(v["expression"], activation)]
    return "denied: " + "; ".join(failed) if failed else "allowed"


RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}


class Policies(unittest.TestCase):
    """What the admission tests share: namespaces and a binding, and the policies' answers."""

    OURS = {"metadata": {"name": "nuage-0c8e2a44", "labels": {**MANAGED, **RESTRICTED, "nuage.dev/namespace": "x"}}}
    SYSTEM = {"metadata": {"name": "kube-system", "labels": {"kubernetes.io/metadata.name": "kube-system"}}}
    BARE = {"metadata": {"name": "default"}}
    HELMS = {"metadata": {"name": "shop", "labels": {"app.kubernetes.io/managed-by": "Helm"}}}
    # Labelled as nuage's, restricted, but not named with its prefix.
    MISNAMED = {"metadata": {"name": "shop", "labels": {**MANAGED, **RESTRICTED}}}
    BINDING = {
        "metadata": {"name": "nuage-runner"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "nuage-runner-tenant"},
        "subjects": [{"kind": "ServiceAccount", "name": "nuage-runner", "namespace": "nuage"}],
    }

    def policy(self, name):
        policy = named("ValidatingAdmissionPolicy", name)
        bindings = [b for b in of_kind("ValidatingAdmissionPolicyBinding") if b["spec"]["policyName"] == name]
        self.assertEqual([b["spec"]["validationActions"] for b in bindings], [["Deny"]])
        return policy

    def request(self, operation, user=RUNNER):
        return {"operation": operation, "userInfo": {"username": user}}

    def labelled(self, namespace, labels):
        """`namespace` with `labels` set, a value of None removing the label."""
        merged = {**namespace["metadata"].get("labels", {}), **labels}
        return {"metadata": {**namespace["metadata"], "labels": {k: v for k, v in merged.items() if v is not None}}}

    def denied(self, policy, operation, **objects):
        answer = evaluate(policy, self.request(operation), **objects)
        self.assertTrue(answer.startswith("denied"), f"{operation} {objects}: {answer}")


class Admission(Policies):
    def test_the_runner_makes_changes_and_deletes_only_its_own_namespaces(self):
        policy = self.policy("nuage-runner-namespaces")
        # Made, applied again (server-side apply: a patch, admitted as an update), deleted.
        self.assertEqual(evaluate(policy, self.request("CREATE"), new=self.OURS), "allowed")
        self.assertEqual(evaluate(policy, self.request("UPDATE"), new=self.OURS, old=self.OURS), "allowed")
        self.assertEqual(evaluate(policy, self.request("DELETE"), old=self.OURS), "allowed")
        for other in (self.SYSTEM, self.BARE, self.HELMS, self.MISNAMED):
            with self.subTest(other["metadata"]["name"]):
                self.denied(policy, "CREATE", new=other)
                self.denied(policy, "DELETE", old=other)
                # Nor may it make another's namespace its own by labelling it as nuage's.
                taken = self.labelled(other, {**MANAGED, **RESTRICTED})
                self.denied(policy, "UPDATE", new=taken, old=other)
                self.denied(policy, "UPDATE", new=other, old=other)
        # Its own namespaces stay its own and restricted: made or changed otherwise, refused.
        for loosened in (
            {"pod-security.kubernetes.io/enforce": None},
            {"pod-security.kubernetes.io/enforce": "privileged"},
            {"pod-security.kubernetes.io/enforce": "baseline"},
            {"pod-security.kubernetes.io/enforce-version": "v1.22"},
            {"app.kubernetes.io/managed-by": None},
            {"app.kubernetes.io/managed-by": "Helm"},
        ):
            with self.subTest(loosened):
                self.denied(policy, "CREATE", new=self.labelled(self.OURS, loosened))
                self.denied(policy, "UPDATE", new=self.labelled(self.OURS, loosened), old=self.OURS)
        self.denied(policy, "CREATE", new={"metadata": {"name": "nuage-0c8e2a44"}})
        # Anyone else is not the policy's business.
        self.assertEqual(evaluate(policy, self.request("DELETE", "kubernetes-admin"), old=self.SYSTEM), "not matched")
        self.assertEqual(evaluate(policy, self.request("UPDATE", "kubernetes-admin"), new=self.SYSTEM, old=self.SYSTEM), "not matched")

    def test_the_runner_binds_only_its_tenant_role_to_itself_in_its_own_namespaces(self):
        policy = self.policy("nuage-runner-rolebindings")
        create = self.request("CREATE")
        self.assertEqual(evaluate(policy, create, new=self.BINDING, namespace=self.OURS), "allowed")
        for other in (self.SYSTEM, self.BARE, self.HELMS, self.MISNAMED):
            self.assertTrue(evaluate(policy, create, new=self.BINDING, namespace=other).startswith("denied"))
        attempts = [
            {**self.BINDING, "metadata": {"name": "admin"}},
            {**self.BINDING, "roleRef": {**self.BINDING["roleRef"], "name": "cluster-admin"}},
            {**self.BINDING, "roleRef": {**self.BINDING["roleRef"], "kind": "Role", "name": "nuage-runner-tenant"}},
            {**self.BINDING, "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "nuage-0c8e2a44"}]},
            {**self.BINDING, "subjects": [{"kind": "ServiceAccount", "name": "nuage", "namespace": "nuage"}]},
            {**self.BINDING, "subjects": [{"kind": "Group", "name": "system:authenticated"}]},
            {**self.BINDING, "subjects": self.BINDING["subjects"] + [{"kind": "User", "name": "mallory"}]},
        ]
        for attempt in attempts:
            with self.subTest(attempt):
                self.assertTrue(evaluate(policy, create, new=attempt, namespace=self.OURS).startswith("denied"))
                update = self.request("UPDATE")
                self.assertTrue(evaluate(policy, update, new=attempt, old=self.BINDING, namespace=self.OURS).startswith("denied"))


# The directories of objects the kubernetes backend generated (tests/kubernetes_objects.rs),
# when deploy/validate is given some.
GENERATED = []
# The resource of each kind the backend applies, and the role that must let it.
APPLIED = {
    "Namespace": ("cluster", "", "namespaces"),
    "RoleBinding": ("cluster", "rbac.authorization.k8s.io", "rolebindings"),
    "NetworkPolicy": ("tenant", "networking.k8s.io", "networkpolicies"),
    "Secret": ("tenant", "", "secrets"),
    "Service": ("tenant", "", "services"),
    "Deployment": ("tenant", "apps", "deployments"),
}


class Generated(Policies):
    """The objects the kubernetes backend makes, as it makes them: admitted, and allowed."""

    def setUp(self):
        if not GENERATED:
            self.skipTest("no directory of generated objects given")

    def test_the_namespaces_and_role_bindings_the_backend_makes_are_admitted(self):
        namespaces = {o["metadata"]["name"]: o for o in GENERATED if o["kind"] == "Namespace"}
        bindings = [o for o in GENERATED if o["kind"] == "RoleBinding"]
        self.assertTrue(namespaces and bindings, "the generated objects hold Namespaces and RoleBindings")
        policy = self.policy("nuage-runner-namespaces")
        for name, namespace in namespaces.items():
            with self.subTest(name):
                self.assertEqual(evaluate(policy, self.request("CREATE"), new=namespace), "allowed")
                self.assertEqual(evaluate(policy, self.request("UPDATE"), new=namespace, old=namespace), "allowed")
        policy = self.policy("nuage-runner-rolebindings")
        for binding in bindings:
            namespace = namespaces[binding["metadata"]["namespace"]]
            with self.subTest(binding["metadata"]["namespace"]):
                self.assertEqual(evaluate(policy, self.request("CREATE"), new=binding, namespace=namespace), "allowed")
                # In any namespace but its own, the same binding is refused.
                for other in (self.SYSTEM, self.HELMS, self.MISNAMED):
                    self.assertTrue(evaluate(policy, self.request("CREATE"), new=binding, namespace=other).startswith("denied"))

    def test_the_runner_may_apply_every_object_the_backend_makes(self):
        rights = {scope: granted(named(*role)["rules"]) for scope, role in ROLES.items()}
        kinds = {o["kind"] for o in GENERATED}
        self.assertEqual(kinds - set(APPLIED), set(), "a kind the backend makes has no right listed here")
        for kind in sorted(kinds):
            scope, group, resource = APPLIED[kind]
            # A RoleBinding is created, never applied; the rest are applied server-side.
            verbs = {"create"} if kind == "RoleBinding" else {"create", "patch"}
            for verb in verbs:
                self.assertIn((group, resource, verb), rights[scope], kind)


if __name__ == "__main__":
    OBJECTS.extend(load(sys.argv[1]))
    for directory in sys.argv[2:]:
        for path in sorted(pathlib.Path(directory).rglob("*")):
            if path.suffix in (".yaml", ".yml", ".json"):
                GENERATED.extend(load(path))
    result = unittest.main(argv=[sys.argv[0], "-q"], exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)
