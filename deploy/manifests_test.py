"""What the Kubernetes schemas cannot say of deploy/kubernetes, checked on an overlay rendered by
`kubectl kustomize` (deploy/validate passes its path):

- every nuage pod runs hardened (non-root, read-only root, no capabilities, RuntimeDefault
  seccomp), is probed, has CPU and memory limits, gets no service link variables (nuage reads
  NUAGE_* as settings) and no Kubernetes API token unless it is the runner's;
- every Service, PodDisruptionBudget and NetworkPolicy selects pods that exist;
- the runner's RBAC is what rbac.yaml says: no Secret read but the pull secret, no role bound
  but nuage-runner-tenant, no write outside its own namespaces but namespaces themselves;
- the admission policies, evaluated with cel-python on the requests the runner could make,
  admit what the kubernetes backend does and refuse the rest: a namespace not labelled as
  nuage's, a RoleBinding in another namespace, to another role or to another subject.
"""

import sys
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


class Pods(unittest.TestCase):
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

    def test_every_pod_is_probed_on_a_port_it_has_and_is_limited(self):
        for deployment in self.deployments():
            name = deployment["metadata"]["name"]
            for container in deployment["spec"]["template"]["spec"]["containers"]:
                ports = {port["name"] for port in container.get("ports", [])}
                with self.subTest(name):
                    for probe in ("readinessProbe", "livenessProbe"):
                        action = container[probe].get("httpGet") or container[probe].get("tcpSocket")
                        self.assertIn(action["port"], ports)
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


class Rbac(unittest.TestCase):
    def rules(self, kind, name):
        return named(kind, name)["rules"]

    def verbs(self, rules, resource):
        return {verb for rule in rules if resource in rule["resources"] for verb in rule["verbs"]}

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
        bind = [rule for rule in rules if "bind" in rule["verbs"]]
        self.assertEqual([rule.get("resourceNames") for rule in bind], [["nuage-runner-tenant"]])
        self.assertFalse(any("*" in rule["verbs"] or "*" in rule["resources"] for rule in rules))
        # The tenant role is bound by the runner inside its namespaces only: never cluster-wide.
        for binding in of_kind("ClusterRoleBinding"):
            self.assertNotEqual(binding["roleRef"]["name"], "nuage-runner-tenant")


def evaluate(policy, request, new=None, old=None, namespace=None):
    """Returns "not matched", "allowed", or "denied: <messages>", as the API server would."""
    environment = celpy.Environment()

    def run(expression, activation):
        return environment.program(environment.compile(expression)).evaluate(activation)

    activation = {
        "request": celpy.json_to_cel(request),
        "object": celpy.json_to_cel(new),
        "oldObject": celpy.json_to_cel(old),
        "namespaceObject": celpy.json_to_cel(namespace),
    }
    spec = policy["spec"]
    if not all(bool(run(c["expression"], activation)) for c in spec.get("matchConditions", [])):
        return "not matched"
    variables = {}
    for variable in spec.get("variables", []):
        activation["variables"] = celtypes.MapType(variables)
        variables[celtypes.StringType(variable["name"])] = run(variable["expression"], activation)
    activation["variables"] = celtypes.MapType(variables)
    failed = [v["message"] for v in spec["validations"] if not bool(run(v["expression"], activation))]
    return "denied: " + "; ".join(failed) if failed else "allowed"


class Admission(unittest.TestCase):
    OURS = {"metadata": {"name": "nuage-0c8e2a44", "labels": {**MANAGED, "nuage.dev/namespace": "x"}}}
    SYSTEM = {"metadata": {"name": "kube-system", "labels": {"kubernetes.io/metadata.name": "kube-system"}}}
    BARE = {"metadata": {"name": "default"}}
    HELMS = {"metadata": {"name": "shop", "labels": {"app.kubernetes.io/managed-by": "Helm"}}}
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

    def test_the_runner_makes_and_deletes_only_its_own_namespaces(self):
        policy = self.policy("nuage-runner-namespaces")
        self.assertEqual(evaluate(policy, self.request("CREATE"), new=self.OURS), "allowed")
        self.assertEqual(evaluate(policy, self.request("DELETE"), old=self.OURS), "allowed")
        for other in (self.SYSTEM, self.BARE, self.HELMS):
            self.assertTrue(evaluate(policy, self.request("CREATE"), new=other).startswith("denied"))
            self.assertTrue(evaluate(policy, self.request("DELETE"), old=other).startswith("denied"))
        # Anyone else is not the policy's business.
        self.assertEqual(evaluate(policy, self.request("DELETE", "kubernetes-admin"), old=self.SYSTEM), "not matched")

    def test_the_runner_binds_only_its_tenant_role_to_itself_in_its_own_namespaces(self):
        policy = self.policy("nuage-runner-rolebindings")
        create = self.request("CREATE")
        self.assertEqual(evaluate(policy, create, new=self.BINDING, namespace=self.OURS), "allowed")
        for other in (self.SYSTEM, self.BARE, self.HELMS):
            self.assertTrue(evaluate(policy, create, new=self.BINDING, namespace=other).startswith("denied"))
        attempts = [
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


if __name__ == "__main__":
    OBJECTS.extend(load(sys.argv[1]))
    result = unittest.main(argv=[sys.argv[0], "-q"], exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)
