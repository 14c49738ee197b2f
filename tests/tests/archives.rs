//! Source archives: presigned upload and download URLs against the embedded S3 endpoint (or
//! the external store `NUAGE_TEST_S3_ENDPOINT` names), with real HTTP PUTs and GETs.

use nuage_tests::{Tenant, TestServer, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

async fn function(tenant: &Tenant, namespace: &str, name: &str) -> String {
    let namespace_id = tenant.ready_namespace_id(namespace).await;
    let runtimes = tenant.get("/runtimes").await.body;
    let runtime = runtimes["runtimes"][0].as_str().expect("a runtime").to_owned();
    tenant
        .create(
            "/functions",
            json!({"namespace_id": namespace_id, "name": name, "runtime": runtime}),
        )
        .await
}

async fn upload_url(tenant: &Tenant, function_id: &str, length: usize) -> Value {
    let answer = tenant
        .get(&format!("/functions/{function_id}/upload-url?content_length={length}"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body
}

/// PUTs `body` to `url` as an archive and returns the status and the store's answer.
async fn put(url: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, String) {
    let response = reqwest::Client::new()
        .put(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("the store answers");
    (response.status(), response.text().await.unwrap_or_default())
}

/// Returns when the presigned `url` expires: its `X-Amz-Date` plus `X-Amz-Expires` seconds.
fn expiry(url: &str) -> time::OffsetDateTime {
    let parameter = |name: &str| {
        url.split(['?', '&'])
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in {url}"))
            .to_owned()
    };
    let format = time::format_description::parse_borrowed::<2>("[year][month][day]T[hour][minute][second]Z").unwrap();
    let signed = time::PrimitiveDateTime::parse(&parameter("X-Amz-Date"), &format)
        .unwrap()
        .assume_utc();
    signed + time::Duration::seconds(parameter("X-Amz-Expires").parse().unwrap())
}

async fn download(tenant: &Tenant, function_id: &str) -> Vec<u8> {
    let answer = tenant.get(&format!("/functions/{function_id}/download-url")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["headers"], json!({}));
    let response = reqwest::get(answer.body["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.bytes().await.unwrap().to_vec()
}

fn archive(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_goes_up_through_a_presigned_url_and_comes_back_byte_for_byte() {
    let (server, tenant) = TestServer::with_tenant().await;
    let function_id = function(&tenant, "uploads", "hello").await;
    let bytes = archive(70_000);
    let upload = upload_url(&tenant, &function_id, bytes.len()).await;
    assert_eq!(
        upload["headers"],
        json!({"content-length": [bytes.len().to_string()], "content-type": ["application/octet-stream"]})
    );
    let url = upload["url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert!(url.contains(&format!("functions/{function_id}.zip")), "{url}");
    assert!(url.contains("X-Amz-Expires=3600"), "{url}");
    // Without an external store, URLs point at the embedded endpoint named in endpoints.json.
    if std::env::var(nuage_tests::S3_ENDPOINT_VARIABLE).is_err() {
        let s3 = server.server().endpoints().s3.expect("an embedded S3 endpoint");
        assert!(url.starts_with(&format!("http://{s3}/")), "{url}");
        let written: Value =
            serde_json::from_slice(&std::fs::read(server.config.data_dir.join("endpoints.json")).unwrap()).unwrap();
        assert_eq!(written["s3"], s3.to_string());
    }
    let (status, text) = put(url, "application/octet-stream", bytes.clone()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(download(&tenant, &function_id).await, bytes);

    // The Serverless plugin's PUT: a non-standard `content_length` header and no auth header.
    let second = archive(1234);
    let upload = upload_url(&tenant, &function_id, second.len()).await;
    let response = reqwest::Client::new()
        .put(upload["url"].as_str().unwrap())
        .header("content-type", "application/octet-stream")
        .header("content_length", second.len().to_string())
        .body(second.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(download(&tenant, &function_id).await, second);

    // curl --upload-file with the returned headers.
    let third = archive(4321);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &third).unwrap();
    let upload = upload_url(&tenant, &function_id, third.len()).await;
    let mut curl = std::process::Command::new("curl");
    curl.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--upload-file"])
        .arg(file.path());
    for (name, values) in upload["headers"].as_object().unwrap() {
        curl.arg("-H").arg(format!("{name}: {}", values[0].as_str().unwrap()));
    }
    let output = curl.arg(upload["url"].as_str().unwrap()).output().expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "200", "{output:?}");
    assert_eq!(download(&tenant, &function_id).await, third);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_refuses_what_the_signature_does_not_cover() {
    let (server, tenant) = TestServer::start_with_tenant(|config| config.storage.url_ttl_seconds = 2).await;
    let function_id = function(&tenant, "strict", "a").await;
    let other_id = function(&tenant, "strict-b", "b").await;
    let bytes = archive(1000);
    let url = upload_url(&tenant, &function_id, bytes.len()).await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = |(status, text): (StatusCode, String), what: &str| {
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {text}");
        assert!(text.contains("<Error>"), "{what}: not S3's XML error: {text}");
    };
    refused(
        put(&url, "application/octet-stream", archive(999)).await,
        "wrong length",
    );
    refused(put(&url, "text/plain", bytes.clone()).await, "wrong type");
    let signature_at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut tampered = url.clone();
    let flipped = if &url[signature_at..=signature_at] == "0" {
        "1"
    } else {
        "0"
    };
    tampered.replace_range(signature_at..=signature_at, flipped);
    refused(
        put(&tampered, "application/octet-stream", bytes.clone()).await,
        "tampered",
    );
    let elsewhere = url.replace(&function_id, &other_id);
    refused(
        put(&elsewhere, "application/octet-stream", bytes.clone()).await,
        "other key",
    );
    // Nothing was stored by the refused attempts.
    let answer = tenant.get(&format!("/functions/{function_id}/download-url")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    // The right upload works until the URL expires, and is refused from then on: tried until
    // it is refused, which must not be before the time the URL names.
    let expires_at = expiry(&url);
    let attempt = || async {
        let answer = put(&url, "application/octet-stream", bytes.clone()).await;
        (answer, time::OffsetDateTime::now_utc())
    };
    let ((status, text), refused_at) = eventually(Duration::from_secs(10), attempt, |((status, _), _)| {
        *status != StatusCode::OK
    })
    .await;
    assert!(refused_at >= expires_at, "refused at {refused_at}, before {expires_at}");
    refused((status, text), "expired");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_url_arguments_and_missing_archives_are_clear_errors() {
    let (server, tenant) = TestServer::start_with_tenant(|config| config.storage.max_upload_bytes = 1000).await;
    let function_id = function(&tenant, "limits", "f").await;
    for (query, reason) in [
        ("", "required"),
        ("?content_length=", "required"),
        ("?content_length=abc", "format"),
        ("?content_length=-5", "format"),
        ("?content_length=0", "constraint"),
        ("?content_length=1001", "constraint"),
    ] {
        let answer = tenant.get(&format!("/functions/{function_id}/upload-url{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}: {}", answer.body);
        assert_eq!(answer.body["details"][0]["argument_name"], "content_length");
        assert_eq!(answer.body["details"][0]["reason"], reason, "{query}");
    }
    let over = tenant
        .get(&format!("/functions/{function_id}/upload-url?content_length=5000"))
        .await;
    let help = over.body["details"][0]["help_message"].as_str().unwrap();
    assert!(help.contains("1000"), "the limit is named: {help}");
    upload_url(&tenant, &function_id, 1000).await;
    let none = tenant.get(&format!("/functions/{function_id}/download-url")).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND, "{}", none.body);
    assert_eq!(none.body["resource"], "archive");
    // Another tenant gets no URL for this function, either way.
    let other = server.tenant().await;
    for path in [
        format!("/functions/{function_id}/upload-url?content_length=10"),
        format!("/functions/{function_id}/download-url"),
    ] {
        let answer = other.get(&path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {}", answer.body);
        assert_eq!(answer.body["resource"], "function");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_function_or_its_namespace_deletes_its_archive() {
    let (server, tenant) = TestServer::with_tenant().await;
    let mut kept = Vec::new();
    for (namespace, name) in [("arch-one", "f"), ("arch-two", "g")] {
        let function_id = function(&tenant, namespace, name).await;
        let bytes = archive(100);
        let url = upload_url(&tenant, &function_id, bytes.len()).await["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, text) = put(&url, "application/octet-stream", bytes).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let download = tenant.get(&format!("/functions/{function_id}/download-url")).await;
        kept.push((function_id, download.body["url"].as_str().unwrap().to_owned()));
    }
    // One goes with its function, the other with its namespace.
    tenant.delete(&format!("/functions/{}", kept[0].0)).await;
    let namespace_id = tenant.get(&format!("/functions/{}", kept[1].0)).await.body["namespace_id"]
        .as_str()
        .unwrap()
        .to_owned();
    tenant.delete(&format!("/namespaces/{namespace_id}")).await;
    for (function_id, url) in &kept {
        tenant
            .wait_gone(&format!("/functions/{function_id}"), Duration::from_secs(15))
            .await;
        let response = reqwest::get(url).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "archive of {function_id} survived"
        );
    }
    server.stop().await;
}

/// An upload URL outlives its function (it is valid for `url_ttl_seconds`, an hour by
/// default). A tenant that PUTs with it once the function is deleted, and its archive removed,
/// must not leave an archive that no function owns: nothing would ever delete it and no quota
/// counts it, so one tenant could fill the store all tenants share (the data dir's disk, with
/// the embedded endpoint), a function created and deleted per 100 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_url_used_after_its_function_is_deleted_leaves_no_archive() {
    let (server, tenant) = TestServer::with_tenant().await;
    let function_id = function(&tenant, "orphans", "f").await;
    let first = archive(100);
    let url = upload_url(&tenant, &function_id, first.len()).await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, text) = put(&url, "application/octet-stream", first).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let download = tenant.get(&format!("/functions/{function_id}/download-url")).await.body["url"]
        .as_str()
        .unwrap()
        .to_owned();
    // Kept for later, as a tenant would.
    let bytes = archive(5000);
    let later = upload_url(&tenant, &function_id, bytes.len()).await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    tenant.delete(&format!("/functions/{function_id}")).await;
    tenant
        .wait_gone(&format!("/functions/{function_id}"), Duration::from_secs(15))
        .await;
    let gone = eventually(
        Duration::from_secs(15),
        || async { reqwest::get(&download).await.unwrap().status() },
        |status| *status == StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(gone, StatusCode::NOT_FOUND, "the archive went with its function");

    let (status, text) = put(&later, "application/octet-stream", bytes).await;
    // Refused, or removed soon after.
    let left = eventually(
        Duration::from_secs(20),
        || async { reqwest::get(&download).await.unwrap().status() },
        |status| *status == StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        left,
        StatusCode::NOT_FOUND,
        "the PUT after the delete answered {status} ({text}) and left an archive of the deleted function {function_id} in the store"
    );
    server.stop().await;
}

/// A presigned upload URL signs its key, length and type, not every header: a tenant that adds
/// `x-amz-copy-source` naming another tenant's archive turns its PUT into a copy, into its own
/// key, of what it must never read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_url_does_not_copy_another_tenants_archive() {
    let (server, victim) = TestServer::with_tenant().await;
    let victims_id = function(&victim, "copied", "secret").await;
    let secret = archive(3000);
    let url = upload_url(&victim, &victims_id, secret.len()).await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, text) = put(&url, "application/octet-stream", secret.clone()).await;
    assert_eq!(status, StatusCode::OK, "{text}");

    let attacker = server.tenant().await;
    let own_id = function(&attacker, "copies", "mine").await;
    let filler = vec![b'x'; 10];
    let upload = upload_url(&attacker, &own_id, filler.len()).await;
    let bucket = server.config.storage.bucket.clone();
    let response = reqwest::Client::new()
        .put(upload["url"].as_str().unwrap())
        .header("content-type", "application/octet-stream")
        .header("x-amz-copy-source", format!("{bucket}/functions/{victims_id}.zip"))
        .body(filler)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let answer = attacker.get(&format!("/functions/{own_id}/download-url")).await;
    if answer.status == StatusCode::OK {
        let got = reqwest::get(answer.body["url"].as_str().unwrap())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        assert_ne!(
            got, secret,
            "the copy PUT answered {status} ({text}) and the attacker downloads the victim's archive as its own"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_object_store_gets_a_503_naming_it_within_its_deadline_and_holds_up_no_other_deletion() {
    let (store, _hung) = nuage_tests::hung_listener().await;
    let (server, tenant) = TestServer::start_with_tenant(|config| {
        config.storage.endpoint = Some(format!("http://{store}"));
        config.storage.access_key = Some("hung".into());
        config.storage.secret_key = Some(nuage_core::Secret::new("hung-secret"));
        config.storage.timeout_ms = 1000;
        config.functions.reconcile_interval_seconds = 1;
    })
    .await;
    let had_code = function(&tenant, "hung-store", "had-code").await;
    let no_code = function(&tenant, "hung-store-2", "no-code").await;
    // An upload URL is signed here, with no call to the store.
    upload_url(&tenant, &had_code, 10).await;

    // Deploying checks that the archive exists, and a download URL that it does: each call to
    // the store is cut at its deadline (1 s, retries included), and the answer names the store.
    for (method, path) in [
        (reqwest::Method::POST, format!("/functions/{had_code}/deploy")),
        (reqwest::Method::GET, format!("/functions/{had_code}/download-url")),
    ] {
        let started = std::time::Instant::now();
        let body = (method == reqwest::Method::POST).then(|| json!({}));
        let refused = tenant.send(method, &path, body).await;
        let took = started.elapsed();
        assert_eq!(
            refused.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            refused.body
        );
        assert_eq!(refused.body["type"], "service_unavailable", "{}", refused.body);
        let help = refused.body["help_message"].as_str().unwrap_or_default();
        assert!(
            help.starts_with("the object store did not answer"),
            "{path}: {}",
            refused.body
        );
        assert!(took < Duration::from_secs(5), "{path} answered after {took:?}");
        // The platform's own addresses are no tenant's business.
        let text = refused.body.to_string();
        assert!(!text.contains(&store.to_string()), "{path}: {text}");
    }
    // Nothing was lost: the function that failed to deploy is as it was.
    let kept = tenant.get(&format!("/functions/{had_code}")).await.body;
    assert_eq!(kept["status"], "created", "{kept}");

    // Deleting both: the one that never had code needs no store and is gone; the other waits
    // for the store, retried with a growing wait, and holds up nothing.
    for id in [&had_code, &no_code] {
        let deleting = tenant.delete(&format!("/functions/{id}")).await;
        assert_eq!(deleting.status, StatusCode::OK, "{}", deleting.body);
    }
    let gone = tenant
        .wait_gone(&format!("/functions/{no_code}"), Duration::from_secs(15))
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.body);
    let waiting = tenant.get(&format!("/functions/{had_code}")).await.body;
    assert_eq!(waiting["status"], "deleting", "{waiting}");
    server.stop().await;
}
