//! Containers v1 `/triggers` against a real container and the real NATS server
//! (`NUAGE_TEST_NATS_URL`, default `nats://127.0.0.1:4222`, which the operator lists in
//! `triggers.nats.tenant_servers`): a cron trigger sends its body and headers to its path with
//! its method on schedule; a NATS trigger on the tenant's own server delivers each message to
//! its path; both are listed, changed and deleted as v1 says, and a cron made through v1beta1
//! is the cron trigger it is. Credentials are sealed at rest; servers the operator does not
//! allow are refused; bad inputs name their argument; another tenant reaches none of it.

use nuage_tests::apps::push_server_image;
use nuage_tests::conformance::Spec;
use nuage_tests::{Answer, Tenant, TestServer, eventually, ok, printed};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Prints each request it receives as one JSON line: method, path, body and two headers.
const RECORDER_GO: &str = r#"package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		line, _ := json.Marshal(map[string]string{
			"method": r.Method, "path": r.URL.Path, "body": string(body),
			"trigger": r.Header.Get("X-Trigger"), "type": r.Header.Get("Content-Type"),
			"subject": r.Header.Get("X-Nats-Subject"),
		})
		fmt.Println(string(line))
		w.Write([]byte("recorded"))
	})
	if err := http.ListenAndServe(":"+os.Getenv("PORT"), nil); err != nil {
		panic(err)
	}
}
"#;

fn nats_url() -> String {
    std::env::var("NUAGE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

fn v1(tenant: &Tenant) -> Tenant {
    tenant.speaking(Spec::ContainersV1, "fr-par")
}

/// Returns the requests the recorder `container_id` printed so far.
async fn recorded(tenant: &Tenant, container_id: &str) -> Vec<Value> {
    let mut lines = printed(tenant, container_id).await;
    lines.retain(|line| line.get("method").is_some());
    lines
}

/// Waits until the recorder has printed a request matching `wanted`; returns it.
async fn received(tenant: &Tenant, container_id: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let seen = eventually(
        Duration::from_secs(30),
        || recorded(tenant, container_id),
        |seen: &Vec<Value>| seen.iter().any(&wanted),
    )
    .await;
    seen.into_iter()
        .find(|line| wanted(line))
        .unwrap_or_else(|| panic!("no such request was received"))
}

/// Makes a namespace, pushes the recorder as `<its repository>/recorder:latest`,
/// and deploys a container of it; returns the container's and the namespace's ids.
async fn recorder(server: &TestServer, alpha: &Tenant, binary: &[u8]) -> (String, String) {
    let beta = alpha.speaking(Spec::ContainersV1beta1, "fr-par");
    let namespace = beta.ready_namespace("hooks").await;
    let namespace_id = namespace["id"].as_str().unwrap().to_owned();
    let image = push_server_image(
        server,
        namespace["registry_endpoint"].as_str().unwrap(),
        "recorder",
        binary,
    );
    let id = beta
        .create(
            "/containers",
            json!({"namespace_id": namespace_id, "name": "recorder", "min_scale": 1,
                   "registry_image": image}),
        )
        .await;
    ok(&beta.post(&format!("/containers/{id}/deploy"), json!({})).await);
    let ready = beta
        .poll_until(&format!("/containers/{id}"), Duration::from_secs(60), |answer| {
            answer.body["status"] != "pending"
        })
        .await;
    assert_eq!(ready.body["status"], "ready", "{}", ready.body);
    (id, namespace_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_and_nats_triggers_reach_their_container_as_v1_says_and_no_one_else_reaches_them() {
    let binary = nuage_tests::go_server_or_skip!(RECORDER_GO);
    let nats_address = nats_url().trim_start_matches("nats://").to_owned();
    let (server, alpha) = TestServer::start_with_tenant(|config| {
        config.crons.seconds_schedules = true;
        config.triggers.nats.tenant_servers = vec![nats_address.clone()];
    })
    .await;
    let api = v1(&alpha);
    let (container_id, namespace_id) = recorder(&server, &alpha, &binary).await;

    // A cron trigger: its body and headers, to its path, with its method, every second.
    let made = api
        .post(
            "/triggers",
            json!({"container_id": container_id, "name": "ticker", "description": "every second", "tags": ["cron"],
                   "destination_config": {"http_path": "/hooks/cron", "http_method": "put"},
                   "cron_config": {"schedule": "* * * * * *", "timezone": "UTC", "body": "tick",
                                   "headers": {"X-Trigger": "cron", "Content-Type": "text/plain"}}}),
        )
        .await;
    let cron = ok(&made).clone();
    let cron_id = cron["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            &cron["source_type"],
            &cron["container_id"],
            &cron["tags"],
            &cron["description"]
        ),
        (
            &json!("cron"),
            &json!(container_id),
            &json!(["cron"]),
            &json!("every second")
        )
    );
    assert_eq!(
        cron["destination_config"],
        json!({"http_path": "/hooks/cron", "http_method": "put"})
    );
    assert_eq!(cron["cron_config"]["body"], "tick");
    assert!(cron.get("nats_config").is_none(), "{cron}");
    let tick = received(&alpha, &container_id, |line| line["body"] == "tick").await;
    assert_eq!(
        (&tick["method"], &tick["path"], &tick["trigger"], &tick["type"]),
        (
            &json!("PUT"),
            &json!("/hooks/cron"),
            &json!("cron"),
            &json!("text/plain")
        ),
        "{tick}"
    );

    // A NATS trigger on the tenant's own server: each message to its path, as a POST.
    let subject = format!("hooks.{}", uuid::Uuid::new_v4().simple());
    let made = api
        .post(
            "/triggers",
            json!({"container_id": container_id, "name": "orders",
                   "destination_config": {"http_path": "/hooks/nats", "http_method": "post"},
                   "nats_config": {"server_urls": [nats_url()], "subject": subject, "credentials_file_content": ""}}),
        )
        .await;
    let nats = ok(&made).clone();
    let nats_id = nats["id"].as_str().unwrap().to_owned();
    assert_eq!(nats["source_type"], "nats");
    assert_eq!(
        nats["nats_config"],
        json!({"server_urls": [nats_url()], "subject": subject})
    );
    let ready = api
        .poll_until(&format!("/triggers/{nats_id}"), Duration::from_secs(20), |answer| {
            answer.body["status"] != "creating"
        })
        .await;
    assert_eq!(ready.body["status"], "ready", "{}", ready.body);
    let client = async_nats::connect(nats_url()).await.expect("the NATS server answers");
    client.publish(subject.clone(), "order-7".into()).await.unwrap();
    client.flush().await.unwrap();
    let order = received(&alpha, &container_id, |line| line["body"] == "order-7").await;
    assert_eq!(
        (&order["method"], &order["path"], &order["subject"]),
        (&json!("POST"), &json!("/hooks/nats"), &json!(subject)),
        "{order}"
    );

    // Listed together, by container, namespace and project, in the order asked.
    let names = |answer: &Answer| -> Vec<String> {
        ok(answer)["triggers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|trigger| trigger["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for query in [
        String::new(),
        format!("container_id={container_id}"),
        format!("namespace_id={namespace_id}"),
        format!("project_id={}", alpha.project_id),
    ] {
        let listed = api.get(&format!("/triggers?order_by=name_asc&{query}")).await;
        assert_eq!(names(&listed), ["orders", "ticker"], "{query}");
        assert_eq!(listed.body["total_count"], 2);
    }
    let second = api.get("/triggers?order_by=created_at_desc&page=2&page_size=1").await;
    assert_eq!(names(&second), ["ticker"]);

    // Changed as v1 says: only what is given; the source type stays.
    let changed = api
        .patch(
            &format!("/triggers/{cron_id}"),
            json!({"cron_config": {"body": "tock"}, "tags": []}),
        )
        .await;
    assert_eq!(ok(&changed)["cron_config"]["body"], "tock");
    assert_eq!(changed.body["cron_config"]["schedule"], "* * * * * *");
    assert_eq!(changed.body["tags"], json!([]));
    assert_eq!(changed.body["destination_config"]["http_method"], "put");
    let tock = received(&alpha, &container_id, |line| line["body"] == "tock").await;
    assert_eq!(tock["path"], "/hooks/cron");
    let renamed = api
        .patch(
            &format!("/triggers/{nats_id}"),
            json!({"name": "invoices", "destination_config": {"http_path": "/hooks/invoices"}}),
        )
        .await;
    assert_eq!(ok(&renamed)["name"], "invoices");
    assert_eq!(
        renamed.body["destination_config"],
        json!({"http_path": "/hooks/invoices", "http_method": "post"})
    );
    let switched = api
        .patch(
            &format!("/triggers/{nats_id}"),
            json!({"cron_config": {"schedule": "* * * * *"}}),
        )
        .await;
    assert_eq!(switched.refused_argument(), "cron_config", "{}", switched.body);

    // A cron made through v1beta1 is the cron trigger it is.
    let beta = alpha.speaking(Spec::ContainersV1beta1, "fr-par");
    let old_id = beta
        .create(
            "/crons",
            json!({"container_id": container_id, "schedule": "0 0 * * *", "args": {"a": 1}, "name": "nightly"}),
        )
        .await;
    let seen = api.get(&format!("/triggers/{old_id}")).await;
    assert_eq!(ok(&seen)["source_type"], "cron");
    assert_eq!(seen.body["cron_config"]["body"], r#"{"a":1}"#);
    assert_eq!(
        seen.body["destination_config"],
        json!({"http_path": "/", "http_method": "post"})
    );

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_v1_triggers_name_their_argument_credentials_are_sealed_and_other_tenants_reach_nothing() {
    let nats_address = nats_url().trim_start_matches("nats://").to_owned();
    let (server, alpha) = TestServer::start_with_tenant(|config| {
        config.triggers.nats.tenant_servers = vec![nats_address.clone()];
    })
    .await;
    let api = v1(&alpha);
    let beta = alpha.speaking(Spec::ContainersV1beta1, "fr-par");
    let namespace_id = api.ready_namespace_id("strict").await;
    let container_id = beta
        .create(
            "/containers",
            json!({"namespace_id": namespace_id, "name": "web", "registry_image": "registry.example.com/team/app:1"}),
        )
        .await;
    let cron = |extra: Value| {
        let mut body = json!({"container_id": container_id, "name": "t",
                              "destination_config": {"http_path": "/", "http_method": "post"},
                              "cron_config": {"schedule": "* * * * *", "timezone": "UTC"}});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let nats = |config: Value| json!({"container_id": container_id, "name": "t", "nats_config": config});
    let good_nats = json!({"server_urls": [nats_url()], "subject": "a", "credentials_file_content": ""});
    for (body, argument) in [
        (json!({"container_id": container_id, "name": "t"}), "cron_config"),
        (cron(json!({"nats_config": good_nats})), "nats_config"),
        (cron(json!({"sqs_config": {"queue_url": "q"}})), "sqs_config"),
        (cron(json!({"container_id": null})), "container_id"),
        (cron(json!({"container_id": "x"})), "container_id"),
        (cron(json!({"name": ""})), "name"),
        (
            cron(json!({"cron_config": {"schedule": "every day", "timezone": "UTC"}})),
            "cron_config.schedule",
        ),
        (
            cron(json!({"cron_config": {"schedule": "* * * * *", "timezone": "Europe/Paris"}})),
            "cron_config.timezone",
        ),
        (
            cron(json!({"cron_config": {"schedule": "* * * * *", "timezone": "UTC", "headers": {"Host": "x"}}})),
            "cron_config.headers.Host",
        ),
        (
            cron(json!({"destination_config": {"http_path": "/", "http_method": "unknown_http_method"}})),
            "destination_config.http_method",
        ),
        (
            cron(json!({"destination_config": {"http_path": "hooks", "http_method": "post"}})),
            "destination_config.http_path",
        ),
        (
            nats(json!({"server_urls": [nats_url()], "subject": "a"}))
                .as_object()
                .cloned()
                .map(|mut body| {
                    body.insert(
                        "destination_config".into(),
                        json!({"http_path": "/a#b", "http_method": "post"}),
                    );
                    Value::Object(body)
                })
                .unwrap(),
            "destination_config.http_path",
        ),
        (cron(json!({"tags": [""]})), "tags.0"),
        (
            nats(json!({"server_urls": ["nats://127.0.0.1:5432"], "subject": "a"})),
            "nats_config.server_urls.0",
        ),
        (
            nats(json!({"server_urls": ["nats://10.0.0.1:4222"], "subject": "a"})),
            "nats_config.server_urls.0",
        ),
        (
            nats(json!({"server_urls": [], "subject": "a"})),
            "nats_config.server_urls",
        ),
        (
            nats(json!({"server_urls": [nats_url()], "subject": "a b"})),
            "nats_config.subject",
        ),
        (
            nats(json!({"server_urls": [nats_url()], "subject": "a", "credentials_file_content": "password"})),
            "nats_config.credentials_file_content",
        ),
    ] {
        let refused = api.post("/triggers", body.clone()).await;
        assert_eq!(refused.refused_argument(), argument, "{body}: {}", refused.body);
    }
    let sqs = api
        .post(
            "/triggers",
            json!({"container_id": container_id, "name": "t", "sqs_config": {}}),
        )
        .await;
    assert!(sqs.body.to_string().contains("no SQS endpoint"), "{}", sqs.body);
    let listed = api.get("/triggers").await;
    assert_eq!(ok(&listed)["total_count"], 0, "{}", listed.body);

    // Credentials are write-only and sealed at rest; ones that do not parse put the trigger
    // in error saying so.
    let creds = "-----BEGIN NATS USER JWT-----\nnot-a-real-jwt-4f1d\n------END NATS USER JWT------\n";
    let made = api
        .post(
            "/triggers",
            nats(json!({"server_urls": [nats_url()], "subject": "sealed", "credentials_file_content": creds})),
        )
        .await;
    let id = ok(&made)["id"].as_str().unwrap().to_owned();
    assert!(!made.body.to_string().contains("not-a-real-jwt"), "{}", made.body);
    let failed = api
        .poll_until(&format!("/triggers/{id}"), Duration::from_secs(20), |answer| {
            answer.body["status"] != "creating"
        })
        .await;
    assert_eq!(failed.body["status"], "error", "{}", failed.body);
    assert!(
        failed.body["error_message"].as_str().unwrap().contains("credentials"),
        "{}",
        failed.body
    );
    let found = nuage_tests::rows_containing(&server.database_url(), "triggers", "not-a-real-jwt").await;
    assert!(found.is_empty(), "credentials stored in clear: {found:?}");

    // Another tenant, as it would try.
    let stranger = v1(&server.tenant().await);
    let path = format!("/triggers/{id}");
    for answer in [
        stranger.get(&path).await,
        stranger.patch(&path, json!({"name": "theirs"})).await,
        stranger.delete(&path).await,
        stranger.post("/triggers", cron(json!({}))).await,
        stranger.post("/triggers", nats(good_nats.clone())).await,
    ] {
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    }
    stranger
        .assert_lists_nothing([
            "/triggers?".to_owned(),
            format!("/triggers?container_id={container_id}"),
            format!("/triggers?namespace_id={namespace_id}"),
            format!("/triggers?organization_id={}", alpha.organization_id),
        ])
        .await;
    assert_eq!(ok(&api.get(&path).await)["name"], "t");
    let (deleted, _) = api.delete_until_gone(&path, Duration::from_secs(20)).await;
    ok(&deleted);
    server.stop().await;
}
