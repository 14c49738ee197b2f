//! v1beta1 `/crons`: a cron names its function `function_id` and has a `name`; made through
//! v1beta1 it fires, and it is the same cron through v1alpha2 (`application_id`), and the other
//! way round. Bad inputs name their argument; another tenant reaches none of it. Schedules use
//! the test-only seconds field (`crons.seconds_schedules`).

use nuage_tests::apps::{deployed_node, runtime};
use nuage_tests::conformance::Spec;
use nuage_tests::{Tenant, TestServer, eventually, ok, printed};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Prints the body it received as one JSON line (read back through `GET /logs`).
const RECORDER_JS: &[u8] = br#"
exports.handle = async (event) => {
  console.log(JSON.stringify({ received: event.body }));
  return { statusCode: 200, body: "done" };
};
"#;

fn beta(tenant: &Tenant) -> Tenant {
    tenant.speaking(Spec::FunctionsV1beta1, "fr-par")
}

/// Returns the bodies the recorder `function_id` received so far.
async fn received(alpha: &Tenant, function_id: &str) -> Vec<String> {
    printed(alpha, function_id)
        .await
        .iter()
        .filter_map(|printed| printed["received"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_made_through_v1beta1_fires_and_is_the_same_cron_through_v1alpha2() {
    let (server, alpha) = TestServer::start_with_tenant(|config| config.crons.seconds_schedules = true).await;
    let beta = beta(&alpha);
    let function = deployed_node(&alpha, "crons", json!({"name": "recorder"}), RECORDER_JS).await;
    let function_id = function["id"].as_str().unwrap().to_owned();

    // As the reference's real traffic has it: args values that are not objects.
    let created = beta
        .post(
            "/crons",
            json!({"function_id": function_id, "schedule": "* * * * * *", "args": {"test": "scw"},
                   "name": "every-second"}),
        )
        .await;
    let cron = ok(&created).clone();
    let cron_id = cron["id"].as_str().unwrap().to_owned();
    assert_eq!(cron["function_id"], function_id.as_str());
    assert_eq!(cron["name"], "every-second");
    assert_eq!(cron["args"], json!({"test": "scw"}));
    assert_eq!(cron["status"], "pending");
    assert!(cron.get("application_id").is_none(), "{cron}");

    // It fires, with its args as the body.
    let bodies = eventually(
        Duration::from_secs(20),
        || received(&alpha, &function_id),
        |bodies: &Vec<String>| !bodies.is_empty(),
    )
    .await;
    let first = bodies.first().unwrap_or_else(|| panic!("the cron never fired"));
    assert_eq!(serde_json::from_str::<Value>(first).unwrap(), json!({"test": "scw"}));
    let ready = beta
        .poll_until(&format!("/crons/{cron_id}"), Duration::from_secs(10), |a| {
            a.body["status"] == "ready"
        })
        .await;
    assert_eq!(ready.body["name"], "every-second");

    // The same cron through v1alpha2; changed there, seen here (its name kept), and back.
    let seen = alpha.get(&format!("/crons/{cron_id}")).await;
    assert_eq!(ok(&seen)["application_id"], function_id.as_str());
    assert_eq!(seen.body["args"], json!({"test": "scw"}));
    assert!(seen.body.get("name").is_none(), "{}", seen.body);
    let changed = alpha
        .patch(&format!("/crons/{cron_id}"), json!({"schedule": "0 0 1 1 *"}))
        .await;
    ok(&changed);
    let seen = beta.get(&format!("/crons/{cron_id}")).await;
    assert_eq!(ok(&seen)["schedule"], "0 0 1 1 *");
    assert_eq!(seen.body["name"], "every-second");
    let renamed = beta
        .patch(
            &format!("/crons/{cron_id}"),
            json!({"name": "yearly", "args": {"n": 1}}),
        )
        .await;
    assert_eq!(ok(&renamed)["name"], "yearly");
    assert_eq!(renamed.body["schedule"], "0 0 1 1 *");
    assert_eq!(
        alpha.get(&format!("/crons/{cron_id}")).await.body["args"],
        json!({"n": 1})
    );

    // Made through v1alpha2, or without a name: named as Scaleway does, `cron-` and 8 hex digits.
    let alpha_cron_id = alpha
        .create(
            "/crons",
            json!({"application_id": function_id, "schedule": "0 0 1 1 *"}),
        )
        .await;
    let unnamed = beta
        .post(
            "/crons",
            json!({"function_id": function_id, "schedule": "0 0 1 1 *", "name": null}),
        )
        .await;
    let unnamed_id = ok(&unnamed)["id"].as_str().unwrap().to_owned();
    for (id, body) in [
        (&alpha_cron_id, beta.get(&format!("/crons/{alpha_cron_id}")).await.body),
        (&unnamed_id, unnamed.body.clone()),
    ] {
        assert_eq!(body["name"], format!("cron-{}", &id[..8]), "{body}");
        assert_eq!(body["args"], json!({}), "{body}");
    }
    let listed = beta
        .get(&format!("/crons?function_id={function_id}&order_by=created_at_desc"))
        .await;
    let ids = nuage_tests::fields(&ok(&listed)["crons"], "id");
    assert_eq!(ids, [unnamed_id.as_str(), alpha_cron_id.as_str(), cron_id.as_str()]);
    assert_eq!(listed.body["total_count"], 3);

    // Deleted through v1beta1: `deleting`, then gone through both versions.
    let (deleted, _) = beta
        .delete_until_gone(&format!("/crons/{cron_id}"), Duration::from_secs(10))
        .await;
    ok(&deleted);
    assert_eq!(
        alpha.get(&format!("/crons/{cron_id}")).await.status,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cron_requests_name_their_argument_and_other_tenants_reach_nothing() {
    let (server, alpha) = TestServer::with_tenant().await;
    let beta = beta(&alpha);
    let node = runtime(&alpha, "node").await;
    let function = nuage_tests::apps::function(&alpha, "crons", json!({"name": "target", "runtime": node})).await;
    let function_id = function["id"].as_str().unwrap().to_owned();

    let long_name = "n".repeat(101);
    let cases = [
        (json!({"schedule": "0 0 * * *"}), "function_id"),
        (
            json!({"application_id": function_id, "schedule": "0 0 * * *"}),
            "function_id",
        ),
        (json!({"function_id": "x", "schedule": "0 0 * * *"}), "function_id"),
        (json!({"function_id": function_id}), "schedule"),
        (json!({"function_id": function_id, "schedule": "every day"}), "schedule"),
        (
            json!({"function_id": function_id, "schedule": "0 0 * * *", "args": [1]}),
            "args",
        ),
        (
            json!({"function_id": function_id, "schedule": "0 0 * * *", "name": long_name}),
            "name",
        ),
        (
            json!({"function_id": function_id, "schedule": "0 0 * * *", "name": 3}),
            "name",
        ),
    ];
    beta.assert_each_refused("/crons", cases).await;
    beta.assert_each_get_refused([
        ("/crons", "function_id"),
        (
            &format!("/crons?function_id={function_id}&order_by=name_asc"),
            "order_by",
        ),
        ("/crons/x", "cron_id"),
    ])
    .await;

    let cron = beta
        .post(
            "/crons",
            json!({"function_id": function_id, "schedule": "0 0 * * *", "name": "mine"}),
        )
        .await;
    let cron_id = ok(&cron)["id"].as_str().unwrap().to_owned();
    let renamed = beta
        .patch(&format!("/crons/{cron_id}"), json!({"name": "n".repeat(101)}))
        .await;
    assert_eq!(renamed.refused_argument(), "name");

    // Another tenant, as it would try: a cron on this function; read, list, change, delete.
    let stranger_tenant = server.tenant().await;
    let stranger = stranger_tenant.speaking(Spec::FunctionsV1beta1, "fr-par");
    let refused = stranger
        .post("/crons", json!({"function_id": function_id, "schedule": "0 0 * * *"}))
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
    let path = format!("/crons/{cron_id}");
    assert_eq!(stranger.get(&path).await.status, StatusCode::NOT_FOUND);
    let listed = stranger.get(&format!("/crons?function_id={function_id}")).await;
    assert_eq!(ok(&listed)["total_count"], 0, "{}", listed.body);
    stranger.assert_kept_from_me(&beta, &path, "mine").await;
    // Its own cron, moved onto this function: refused, and it stays where it was.
    let own_function =
        nuage_tests::apps::function(&stranger_tenant, "own", json!({"name": "own", "runtime": node})).await;
    let own_cron = stranger
        .post(
            "/crons",
            json!({"function_id": own_function["id"], "schedule": "0 0 * * *"}),
        )
        .await;
    let own_path = format!("/crons/{}", ok(&own_cron)["id"].as_str().unwrap());
    let moved = stranger.patch(&own_path, json!({"function_id": function_id})).await;
    assert_eq!(moved.status, StatusCode::NOT_FOUND, "{}", moved.body);
    assert_eq!(ok(&stranger.get(&own_path).await)["function_id"], own_function["id"]);
    // The owner's own cron and function, asked for in another region: not there.
    let amsterdam = alpha.speaking(Spec::FunctionsV1beta1, "nl-ams");
    assert_eq!(amsterdam.get(&path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        amsterdam.get(&format!("/functions/{function_id}")).await.status,
        StatusCode::NOT_FOUND
    );
    let listed = amsterdam.get(&format!("/crons?function_id={function_id}")).await;
    assert_eq!(listed.body, json!({"crons": [], "total_count": 0}));
    server.stop().await;
}
