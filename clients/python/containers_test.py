"""Scaleway's Python SDK (`scaleway` 2.12, pinned with hashes in requirements.lock), unchanged,
against a running nuage: ContainerV1Beta1API and ContainerV1API through a namespace's and a
container's whole lifecycle, with the SDK's own waiters, secrets, a cron and a token; through v1,
a domain and triggers (a cron, and a NATS subject on the tenant's own server, CLIENT_NATS_ADDRESS,
which this nuage lists in triggers.nats.tenant_servers). Run by
clients/run with the SCW_* variables of a tenant of its own, CLIENT_SERVER_BINARY (a static
server built from clients/containers) and CLIENT_REGISTRY_DIR (nuage's registry of OCI layouts,
where an image pushed to a namespace's `registry_endpoint` lands: the suite writes it there as a
push would)."""

import os
import sys
import time
import unittest

import requests
from scaleway import Client, Profile
from scaleway.container import v1, v1beta1
from scaleway_core.utils import WaitForOptions

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "containers"))
from push import push  # noqa: E402
from nats_publish import publish  # noqa: E402
from waiting import gone  # noqa: E402


class Containers(unittest.TestCase):
    def setUp(self):
        self.client = Client.from_profile(Profile.from_env())
        self.fast = WaitForOptions(timeout=120, min_delay=1, max_delay=2)

    def test_v1beta1_a_container_through_its_whole_lifecycle(self):
        api = v1beta1.ContainerV1Beta1API(self.client)
        namespace = api.create_namespace(name="sdk-boxes", environment_variables={"GREETING": "bonjour"})
        namespace = api.wait_for_namespace(namespace_id=namespace.id, options=self.fast)
        self.assertEqual(namespace.status, "ready")
        image = push(namespace.registry_endpoint, "web")

        container = api.create_container(
            namespace_id=namespace.id,
            name="web",
            registry_image=image,
            port=3000,
            args=["3000"],
            max_concurrency=10,
            health_check=v1beta1.ContainerHealthCheckSpec(
                failure_threshold=20, interval="0.5s", http=v1beta1.ContainerHealthCheckSpecHTTPProbe(path="/healthz")
            ),
            secret_environment_variables=[v1beta1.Secret(key="SECRET", value="beta-vault")],
            tags=["sdk"],
        )
        self.assertEqual((container.status, container.port, container.args), ("created", 3000, ["3000"]))
        self.assertEqual(container.health_check.http.path, "/healthz")
        self.assertEqual(container.scaling_option.concurrent_requests_threshold, 10)
        [secret] = container.secret_environment_variables
        self.assertTrue(secret.hashed_value.startswith("$argon2id$"))

        self.assertEqual(api.deploy_container(container_id=container.id).status, "pending")
        container = api.wait_for_container(container_id=container.id, options=self.fast)
        self.assertEqual(container.status, "ready", container.error_message)
        answer = requests.get(f"http://{container.domain_name}", timeout=30).json()
        self.assertEqual(answer, {"command": "/server 3000", "greeting": "bonjour", "secret": "beta-vault"})

        updated = api.update_container(container_id=container.id, description="changed", redeploy=False)
        self.assertEqual((updated.description, updated.port), ("changed", 3000))
        cron = api.create_cron(container_id=container.id, schedule="0 4 * * *", name="nightly")
        cron = api.wait_for_cron(cron_id=cron.id, options=self.fast)
        self.assertEqual((cron.status, cron.container_id), ("ready", container.id))
        token = api.create_token(container_id=container.id, description="ci")
        self.assertEqual(token.container_id, container.id)
        self.assertEqual([t.id for t in api.list_tokens(container_id=container.id).tokens], [token.id])
        self.assertEqual([c.id for c in api.list_containers(namespace_id=namespace.id).containers], [container.id])

        self.assertEqual(api.delete_container(container_id=container.id).status, "deleting")
        gone(lambda: api.get_container(container_id=container.id))
        api.delete_namespace(namespace_id=namespace.id)
        gone(lambda: api.get_namespace(namespace_id=namespace.id))

    def test_v1_a_container_through_its_whole_lifecycle(self):
        api = v1.ContainerV1API(self.client)
        beta = v1beta1.ContainerV1Beta1API(self.client)
        namespace = api.create_namespace(name="sdk-v1", secret_environment_variables={"SECRET": "v1-vault"})
        self.assertTrue(namespace.secret_environment_variables["SECRET"].startswith("$argon2id$"))
        namespace = api.wait_for_namespace(namespace_id=namespace.id, options=self.fast)
        self.assertEqual(namespace.status, "ready")
        # v1's namespace has no registry: the same namespace through v1beta1 names it.
        image = push(beta.get_namespace(namespace_id=namespace.id).registry_endpoint, "api")

        container = api.create_container(
            namespace_id=namespace.id,
            name="api",
            image=image,
            environment_variables={"GREETING": "hallo"},
            memory_limit_bytes=512 << 20,
            startup_probe=v1.ContainerProbe(
                failure_threshold=20, interval="0.5s", http=v1.ContainerProbeHTTPProbe(path="/healthz")
            ),
        )
        self.assertEqual((container.status, container.memory_limit_bytes), ("creating", 512 << 20))
        container = api.wait_for_container(container_id=container.id, options=self.fast)
        self.assertEqual(container.status, "ready", container.error_message)
        answer = requests.get(container.public_endpoint, timeout=30).json()
        self.assertEqual(answer, {"command": "/server", "greeting": "hallo", "secret": "v1-vault"})

        # An update sends every field; only the description was given.
        updated = api.update_container(container_id=container.id, description="v1 changed")
        self.assertEqual((updated.description, updated.memory_limit_bytes), ("v1 changed", 512 << 20))
        self.assertEqual(updated.environment_variables, {"GREETING": "hallo"})
        container = api.wait_for_container(container_id=container.id, options=self.fast)
        self.assertEqual(container.status, "ready", container.error_message)
        api.redeploy_container(container_id=container.id)
        self.assertEqual(api.wait_for_container(container_id=container.id, options=self.fast).status, "ready")
        self.assertEqual([c.id for c in api.list_containers(namespace_id=namespace.id).containers], [container.id])

        # A domain with tags (this installation checks none), changed and listed.
        domain = api.create_domain(container_id=container.id, hostname="Api.Example.test", tags=["prod"])
        self.assertEqual((domain.hostname, domain.tags), ("api.example.test", ["prod"]))
        domain = api.wait_for_domain(domain_id=domain.id, options=self.fast)
        self.assertEqual(domain.status, "ready", domain.error_message)
        self.assertEqual(api.update_domain(domain_id=domain.id, tags=["prod", "eu"]).tags, ["prod", "eu"])
        self.assertEqual([d.id for d in api.list_domains(namespace_id=namespace.id).domains], [domain.id])

        # Triggers: a cron, and a NATS subject on the tenant's own server, each to a path.
        cron = api.create_trigger(
            container_id=container.id,
            name="nightly",
            destination_config=v1.CreateTriggerRequestDestinationConfig(http_path="/nightly", http_method="post"),
            cron_config=v1.CreateTriggerRequestCronConfig(
                schedule="0 3 * * *", timezone="UTC", body='{"job":"report"}', headers={"X-Job": "report"}
            ),
        )
        self.assertEqual((cron.source_type, cron.cron_config.schedule), ("cron", "0 3 * * *"))
        cron = api.wait_for_trigger(trigger_id=cron.id, options=self.fast)
        self.assertEqual(cron.status, "ready", cron.error_message)
        changed = api.update_trigger(trigger_id=cron.id, cron_config=v1.UpdateTriggerRequestCronConfig(schedule="0 4 * * *"))
        self.assertEqual((changed.cron_config.schedule, changed.cron_config.headers), ("0 4 * * *", {"X-Job": "report"}))
        subject = f"sdk-v1.{container.id}"
        nats = api.create_trigger(
            container_id=container.id,
            name="orders",
            destination_config=v1.CreateTriggerRequestDestinationConfig(http_path="/orders", http_method="post"),
            nats_config=v1.CreateTriggerRequestNATSConfig(
                server_urls=[f"nats://{os.environ['CLIENT_NATS_ADDRESS']}"], subject=subject, credentials_file_content=""
            ),
        )
        nats = api.wait_for_trigger(trigger_id=nats.id, options=self.fast)
        self.assertEqual((nats.status, nats.source_type), ("ready", "nats"), nats.error_message)
        publish(subject, b"order-v1")
        logs = f"{self.client.api_url}/functions/v1alpha2/regions/fr-par/logs?application_id={container.id}&page_size=100"
        for _ in range(60):
            lines = requests.get(logs, headers={"X-Auth-Token": self.client.secret_key}, timeout=30).json()["logs"]
            if any("box called: POST /orders" in line["message"] for line in lines):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the NATS message did not reach /orders")
        listed = api.list_triggers(container_id=container.id, order_by="name_asc").triggers
        self.assertEqual([t.name for t in listed], ["nightly", "orders"])
        for trigger in (cron, nats):
            api.delete_trigger(trigger_id=trigger.id)
            gone(lambda: api.get_trigger(trigger_id=trigger.id))
        api.delete_domain(domain_id=domain.id)

        self.assertEqual(api.delete_container(container_id=container.id).status, "deleting")
        gone(lambda: api.get_container(container_id=container.id))
        api.delete_namespace(namespace_id=namespace.id)
        gone(lambda: api.get_namespace(namespace_id=namespace.id))


if __name__ == "__main__":
    unittest.main(verbosity=2)
