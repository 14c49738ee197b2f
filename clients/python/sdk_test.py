"""Scaleway's Python SDK (`scaleway` 2.12, pinned with hashes in requirements.lock), unchanged,
against a running nuage: FunctionV1Beta1API through a namespace's and a function's whole
lifecycle, with the SDK's own waiters, secrets, a cron and tokens, then a custom domain and a NATS
trigger. Run by clients/run with SCW_API_URL, SCW_ACCESS_KEY, SCW_SECRET_KEY and
SCW_DEFAULT_PROJECT_ID set for a tenant of its own, and CLIENT_NATS_ADDRESS (host:port of the
NATS server nuage's triggers subscribe on)."""

import datetime
import io
import os
import time
import unittest
import urllib.request
import uuid
import zipfile

import requests
from scaleway import Client, Profile, ScalewayException
from scaleway.function.v1beta1 import CreateTriggerRequestMnqNatsClientConfig, FunctionV1Beta1API, Secret
from scaleway_core.utils import WaitForOptions

from nats_publish import publish
from waiting import gone

HANDLER = b"""import os

def handle(event, context):
    return {"statusCode": 200, "body": "sdk says " + os.environ["GREETING"] + " " + os.environ["NS_SECRET"]
            + " " + os.environ["FN_SECRET"]}
"""


# Keeps what it is POSTed (a trigger's messages) and answers a GET with all of it.
RECORDER = b"""import base64

received = []

def handle(event, context):
    if event.get("httpMethod") == "POST":
        body = event.get("body") or ""
        if event.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        received.append(body)
        return {"statusCode": 200, "body": "kept"}
    return {"statusCode": 200, "body": "|".join(received) or "nothing yet"}
"""


def archive(handler=HANDLER):
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as bundle:
        bundle.writestr("handler.py", handler)
    return data.getvalue()


class FunctionV1Beta1(unittest.TestCase):
    def setUp(self):
        # The SCW_* variables, as a tenant's shell would set them.
        self.client = Client.from_profile(Profile.from_env())
        self.api = FunctionV1Beta1API(self.client)
        self.fast = WaitForOptions(timeout=120, min_delay=1, max_delay=2)

    def test_a_function_through_its_whole_lifecycle(self):
        api = self.api
        runtimes = api.list_function_runtimes().runtimes
        python = next(r for r in runtimes if r.name.startswith("python3") and r.version)
        self.assertEqual(python.default_handler, "handler.handle")
        self.assertEqual(python.extension, "py")

        namespace = api.create_namespace(
            name="sdk-ns",
            environment_variables={"GREETING": "hello"},
            tags=["sdk", "blue"],
            secret_environment_variables=[Secret(key="NS_SECRET", value="from-the-vault")],
        )
        [hashed] = namespace.secret_environment_variables
        self.assertEqual(hashed.key, "NS_SECRET")
        self.assertTrue(hashed.hashed_value.startswith("$argon2id$"), hashed.hashed_value)
        self.assertEqual(namespace.project_id, self.client.default_project_id)
        self.assertIsInstance(namespace.created_at, datetime.datetime)
        namespace = api.wait_for_namespace(namespace_id=namespace.id, options=self.fast)
        self.assertEqual(namespace.status, "ready")
        self.assertEqual(namespace.tags, ["sdk", "blue"])
        self.assertTrue(namespace.registry_endpoint)
        listed = api.list_namespaces(name="sdk-ns")
        self.assertEqual([n.id for n in listed.namespaces], [namespace.id])
        self.assertEqual(listed.total_count, 1)

        function = api.create_function(
            namespace_id=namespace.id,
            name="hello",
            runtime=python.name,
            handler="handler.handle",
            memory_limit=256,
            timeout="30s",
            tags=["fn"],
            secret_environment_variables=[Secret(key="FN_SECRET", value="and-its-own")],
        )
        self.assertEqual([s.key for s in function.secret_environment_variables], ["FN_SECRET"])
        self.assertEqual(function.status, "created")
        self.assertEqual(function.timeout, "30s")
        self.assertIsNone(function.ready_at)
        # A function never deployed is terminal for the waiter: `created`.
        self.assertEqual(api.wait_for_function(function_id=function.id, options=self.fast).status, "created")

        data = archive()
        upload = api.get_function_upload_url(function_id=function.id, content_length=len(data))
        headers = {"Content-Type": "application/octet-stream"}
        requests.put(upload.url, data=data, headers=headers, timeout=30).raise_for_status()
        deployed = api.deploy_function(function_id=function.id)
        self.assertEqual(deployed.status, "pending")
        function = api.wait_for_function(function_id=function.id, options=self.fast)
        self.assertEqual(function.status, "ready", function.error_message)
        self.assertIsInstance(function.ready_at, datetime.datetime)
        with urllib.request.urlopen(f"http://{function.domain_name}", timeout=30) as answer:
            self.assertEqual(answer.read().decode(), "sdk says hello from-the-vault and-its-own")

        changed = api.update_function(function_id=function.id, description="changed", redeploy=False)
        self.assertEqual(changed.description, "changed")
        self.assertEqual(changed.tags, ["fn"])

        # A cron on it, through its waiter and lists.
        cron = api.create_cron(function_id=function.id, schedule="0 4 * * *", args={"from": "sdk"}, name="nightly")
        cron = api.wait_for_cron(cron_id=cron.id, options=self.fast)
        self.assertEqual((cron.status, cron.name, cron.args), ("ready", "nightly", {"from": "sdk"}))
        self.assertEqual([c.id for c in api.list_crons(function_id=function.id).crons], [cron.id])
        self.assertEqual(api.delete_cron(cron_id=cron.id).status, "deleting")
        gone(lambda: api.get_cron(cron_id=cron.id))

        # Made private, it opens only with a token, and a deleted token stops opening it.
        api.update_function(function_id=function.id, privacy="private")
        api.deploy_function(function_id=function.id)
        function = api.wait_for_function(function_id=function.id, options=self.fast)
        self.assertEqual((function.status, function.privacy), ("ready", "private"))
        url = f"http://{function.domain_name}"
        # Without a token a private function is not there (nuage does not say it exists).
        self.assertEqual(requests.get(url, timeout=30).status_code, 404)
        token = api.create_token(function_id=function.id, description="sdk token")
        self.assertTrue(token.token)
        opened = requests.get(url, headers={"X-Auth-Token": token.token}, timeout=30)
        self.assertEqual((opened.status_code, opened.text), (200, "sdk says hello from-the-vault and-its-own"))
        self.assertEqual([t.id for t in api.list_tokens(function_id=function.id).tokens], [token.id])
        api.delete_token(token_id=token.id)
        deleted_at = time.monotonic()
        while requests.get(url, headers={"X-Auth-Token": token.token}, timeout=30).status_code == 200:
            self.assertLess(time.monotonic() - deleted_at, 5, "a deleted token still opens the function")
            time.sleep(0.1)
        listed = api.list_functions(namespace_id=namespace.id)
        self.assertEqual([f.id for f in listed.functions], [function.id])
        download = api.get_function_download_url(function_id=function.id)
        self.assertEqual(requests.get(download.url, timeout=30).content, data)

        self.assertEqual(api.delete_function(function_id=function.id).status, "deleting")
        gone(lambda: api.get_function(function_id=function.id))
        self.assertEqual(api.delete_namespace(namespace_id=namespace.id).status, "deleting")
        gone(lambda: api.get_namespace(namespace_id=namespace.id))

    def test_a_domain_and_a_nats_trigger(self):
        api = self.api
        runtimes = api.list_function_runtimes().runtimes
        python = next(r for r in runtimes if r.name.startswith("python3") and r.version)
        namespace = api.wait_for_namespace(namespace_id=api.create_namespace(name="sdk-events").id, options=self.fast)
        function = api.create_function(
            namespace_id=namespace.id, name="recorder", runtime=python.name, handler="handler.handle", max_scale=1
        )
        data = archive(RECORDER)
        upload = api.get_function_upload_url(function_id=function.id, content_length=len(data))
        requests.put(upload.url, data=data, headers={"Content-Type": "application/octet-stream"}, timeout=30).raise_for_status()
        api.deploy_function(function_id=function.id)
        function = api.wait_for_function(function_id=function.id, options=self.fast)
        self.assertEqual(function.status, "ready", function.error_message)

        # A host name of the tenant's own routes to the function (this installation checks none).
        domain = api.create_domain(hostname="Recorder.Example.test", function_id=function.id)
        self.assertEqual((domain.hostname, domain.status), ("recorder.example.test", "pending"))
        domain = api.wait_for_domain(domain_id=domain.id, options=self.fast)
        self.assertEqual(domain.status, "ready", domain.error_message)
        self.assertEqual([d.id for d in api.list_domains(function_id=function.id).domains], [domain.id])
        router = function.domain_name.split("/", 1)[0]
        through_domain = requests.get(f"http://{router}/", headers={"Host": "recorder.example.test"}, timeout=30)
        self.assertEqual((through_domain.status_code, through_domain.text), (200, "nothing yet"))

        # A NATS trigger delivers what is published on its subject.
        subject = f"sdk.{function.id}"
        trigger = api.create_trigger(
            name="orders",
            function_id=function.id,
            scw_nats_config=CreateTriggerRequestMnqNatsClientConfig(
                subject=subject,
                mnq_nats_account_id="A" * 56,
                mnq_project_id=self.client.default_project_id,
                mnq_region="fr-par",
            ),
        )
        trigger = api.wait_for_trigger(trigger_id=trigger.id, options=self.fast)
        self.assertEqual((trigger.status, trigger.input_type), ("ready", "scw_nats"), trigger.error_message)
        self.assertEqual(trigger.scw_nats_config.subject, subject)
        # On the installation's shared NATS server, the tenant's subjects are under its own
        # organization's prefix (triggers.nats.subject_prefix): publishers publish there.
        publish(f"tenants.{self.client.default_organization_id}.{subject}", b"order-42")
        for _ in range(60):
            seen = requests.get(f"http://{router}/", headers={"Host": "recorder.example.test"}, timeout=30).text
            if "order-42" in seen:
                break
            time.sleep(0.5)
        self.assertEqual(seen, "order-42")

        self.assertEqual(api.delete_trigger(trigger_id=trigger.id).status, "deleting")
        gone(lambda: api.get_trigger(trigger_id=trigger.id))
        api.delete_domain(domain_id=domain.id)
        gone(lambda: api.get_domain(domain_id=domain.id))
        api.delete_namespace(namespace_id=namespace.id)
        gone(lambda: api.get_namespace(namespace_id=namespace.id))

    def test_errors_reach_the_caller_as_the_sdk_raises_them(self):
        missing = gone(lambda: self.api.get_function(function_id=str(uuid.uuid4())))
        self.assertEqual(missing.response.json()["type"], "not_found")
        with self.assertRaises(ScalewayException) as refused:
            self.api.list_functions(namespace_id="not-a-uuid")
        self.assertEqual(refused.exception.status_code, 400)
        body = refused.exception.response.json()
        self.assertEqual(body["details"][0]["argument_name"], "namespace_id")


if __name__ == "__main__":
    unittest.main(verbosity=2)
