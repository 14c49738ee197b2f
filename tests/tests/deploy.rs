//! Deploys: from an uploaded zip to an OCI image through the builder's durable queue, with
//! statuses, archive checks, recovery of a build whose worker died, and redeploys.

use nuage_tests::apps::{
    deploy, function, node_function, redeployed, runtime, settled, settled_within, upload, upload_and_deploy, uploaded,
    zip,
};
use nuage_tests::{TestServer, eventually_every};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// Returns the index of the image layout at `layout`.
fn image_index(layout: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap()
}

/// Returns the paths in each layer of the newest image of the layout at `layout`.
fn layer_paths(layout: &Path) -> Vec<Vec<String>> {
    let blob =
        |digest: &str| std::fs::read(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap();
    let index = image_index(layout);
    let newest = index["manifests"].as_array().unwrap().last().unwrap();
    let manifest: Value = serde_json::from_slice(&blob(newest["digest"].as_str().unwrap())).unwrap();
    let config: Value = serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(config["config"]["User"], "1000");
    assert_eq!(config["config"]["WorkingDir"], "/code");
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&blob(layer["digest"].as_str().unwrap())[..])
                .read_to_end(&mut plain)
                .unwrap();
            let mut archive = tar::Archive::new(&plain[..]);
            archive
                .entries()
                .unwrap()
                .map(|entry| entry.unwrap().path().unwrap().display().to_string())
                .collect()
        })
        .collect()
}

/// Returns the namespace of `function` and the image layout its images are written to.
async fn namespace_and_layout(
    server: &TestServer,
    tenant: &nuage_tests::Tenant,
    function: &Value,
) -> (Value, std::path::PathBuf) {
    let namespace = tenant
        .get(&format!("/namespaces/{}", function["namespace_id"].as_str().unwrap()))
        .await
        .body;
    let endpoint = namespace["registry_endpoint"].as_str().unwrap();
    let repository = endpoint.split_once('/').unwrap().1;
    let layout = server
        .config
        .data_dir
        .join("registry")
        .join(repository)
        .join(function["name"].as_str().unwrap());
    (namespace, layout)
}

/// The code of a node function that answers 1.
const NODE_ONE: &[u8] = b"exports.handle = () => 1;";

/// The code of a python function that answers 1.
const PYTHON_ONE: &[u8] = b"def handle(event, context):\n    return 1\n";

/// Starts a server with a tenant that has function `f` on the node runtime in a new namespace
/// `namespace`, not deployed yet; returns them and the function's id.
async fn with_node_function(namespace: &str) -> (TestServer, nuage_tests::Tenant, Value, String) {
    let (server, tenant) = TestServer::with_tenant().await;
    let function = node_function(&tenant, namespace).await;
    let id = function["id"].as_str().unwrap().to_owned();
    (server, tenant, function, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_and_python_functions_build_to_images_of_wrapper_and_code() {
    let (server, tenant) = TestServer::with_tenant().await;
    let node = runtime(&tenant, "node").await;
    let python = runtime(&tenant, "python3").await;
    for (namespace, body, files) in [
        (
            "build-node",
            json!({"name": "hello", "runtime": node}),
            vec![("handler.js", &b"exports.handle = (event, context) => 'hello';"[..])],
        ),
        (
            "build-python",
            json!({"name": "hello", "runtime": python, "handler": "src/app.main"}),
            vec![
                (
                    "src/app.py",
                    &b"def main(event, context):\n    return {'hello': 'world'}\n"[..],
                ),
                ("package/dep.py", &b"X = 1\n"[..]),
            ],
        ),
    ] {
        let function = function(&tenant, namespace, body).await;
        let id = function["id"].as_str().unwrap();
        redeployed(&tenant, id, &files).await;
        let (namespace, layout) = namespace_and_layout(&server, &tenant, &function).await;
        let layers = layer_paths(&layout);
        assert_eq!(layers.len(), 2);
        assert!(
            layers[0].iter().any(|path| path.starts_with("opt/nuage/wrapper/")),
            "{layers:?}"
        );
        for (name, _) in &files {
            assert!(layers[1].contains(&format!("code/{name}")), "{name} not in {layers:?}");
        }
        // The build's output is kept, for the logs: what was checked, what was written, how long.
        let mut db = server.database().await;
        let log: String = sqlx::query_scalar("select log from build_jobs where function_id = $1")
            .bind(id)
            .fetch_one(&mut db)
            .await
            .unwrap();
        for says in [
            "fetched the archive",
            &format!("checked {} entries", files.len()),
            "image ",
            "took ",
        ] {
            assert!(log.contains(says), "`{says}` not in the build log:\n{log}");
        }
        // With a registry configured, the same image is there: skopeo can inspect it.
        if let Ok(registry) = std::env::var(nuage_tests::REGISTRY_VARIABLE) {
            let index = image_index(&layout);
            let newest = index["manifests"].as_array().unwrap().last().unwrap().clone();
            let tag = newest["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap();
            // The namespace's registry_endpoint names its repository in that registry.
            let endpoint = namespace["registry_endpoint"].as_str().unwrap();
            assert!(endpoint.starts_with(&format!("{registry}/")), "{endpoint}");
            let image = format!("{endpoint}/{}:{tag}", function["name"].as_str().unwrap());
            let layers = registry_layers(&image);
            assert_eq!(layers.len(), 2, "{layers:?}");
            let inspected = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{image}")]);
            let inspected: Value = serde_json::from_slice(&inspected).unwrap();
            assert_eq!(
                inspected["Digest"], newest["digest"],
                "the registry holds the image that was built"
            );
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_archives_end_in_error_naming_the_rule() {
    let (server, tenant, _, id) = with_node_function("bad-archives").await;
    // No archive yet: a clear error at once, not a hang.
    let answer = tenant.post(&format!("/functions/{id}/deploy"), json!({})).await;
    assert_eq!(answer.status, StatusCode::PRECONDITION_FAILED, "{}", answer.body);
    assert!(answer.body["help_message"].as_str().unwrap().contains("upload-url"));
    for (archive, says) in [
        (b"this is not a zip".to_vec(), "the archive is not a zip file"),
        (zip(&[("../escape.js", b"x")]), "`..`"),
        (zip(&[("/abs.js", b"x")]), "absolute path"),
        (
            zip(&[("other.js", b"exports.handle = 1")]),
            "handler file `handler.js` not found in the archive",
        ),
        (
            zip(&[("handler.js", b"exports.other = 1")]),
            "does not define the handler function `handle`",
        ),
        (zip(&[("handler.js", &vec![0u8; 8 * 1024 * 1024][..])]), "zip bomb"),
    ] {
        let done = upload_and_deploy(&tenant, &id, archive, Duration::from_secs(20)).await;
        assert_eq!(done["status"], "error", "{done}");
        let message = done["error_message"].as_str().unwrap();
        assert!(message.contains(says), "expected `{says}` in `{message}`");
    }
    // A good archive recovers the function.
    redeployed(&tenant, &id, &[("handler.js", NODE_ONE)]).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_whose_worker_died_is_retried_then_given_up() {
    let (server, tenant) = TestServer::start_with_tenant(|config| config.builder.poll_interval_ms = 50).await;
    let node = runtime(&tenant, "node").await;
    let id = uploaded(&tenant, "crashes", "node", &[("handler.js", NODE_ONE)]).await;
    let mut db = server.database().await;
    // As a worker killed with -9 mid-build leaves things: the deployment queued, the job
    // `running` under a lease that has run out, the function `pending`.
    let url = server.database_url();
    let organization_id = tenant.organization_id.to_string();
    let deployment = crashed(&url, &id, &organization_id, &node, 1).await;
    let done = settled(&tenant, &id).await;
    assert_eq!(done["status"], "ready", "{done}");
    let (status, attempts) = build_job_state(&mut db, "id", &deployment).await;
    assert_eq!((status.as_str(), attempts), ("done", 2));
    // A job that has used up its attempts stops with a clear error.
    crashed(&url, &id, &organization_id, &node, 3).await;
    let done = settled(&tenant, &id).await;
    assert_eq!(done["status"], "error", "{done}");
    assert!(
        done["error_message"].as_str().unwrap().contains("after 3 attempts"),
        "{done}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_deployed_function_redeploys_it_unless_told_not_to() {
    let (server, tenant, _, id) = with_node_function("redeploys").await;
    redeployed(&tenant, &id, &[("handler.js", NODE_ONE)]).await;
    let held = tenant
        .patch(
            &format!("/functions/{id}"),
            json!({"memory_limit": 512, "redeploy": false}),
        )
        .await;
    assert_eq!(held.body["status"], "ready", "{}", held.body);
    let changed = tenant
        .patch(&format!("/functions/{id}"), json!({"memory_limit": 1024}))
        .await;
    assert_eq!(changed.body["status"], "pending", "{}", changed.body);
    let done = settled(&tenant, &id).await;
    assert_eq!(done["status"], "ready", "{done}");
    // Two deploys in a row: the newest wins and the function settles.
    deploy(&tenant, &id).await;
    deploy(&tenant, &id).await;
    let done = settled(&tenant, &id).await;
    assert_eq!(done["status"], "ready", "{done}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_whose_process_died_before_it_queued_the_build_is_built_all_the_same() {
    let (server, tenant) = TestServer::start_with_tenant(|config| {
        config.builder.poll_interval_ms = 50;
        config.functions.reconcile_interval_seconds = 1;
    })
    .await;
    let id = uploaded(&tenant, "never-queued", "node", &[("handler.js", NODE_ONE)]).await;
    // As a process killed between recording a deployment and queuing its build leaves things,
    // a while ago: the deployment queued, the function pending, no build job.
    let mut db = server.database().await;
    let deployment = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "insert into deployments (id, application_id, organization_id, status, error_message, archive_digest, \
         image_reference, image_digest, created_at, finished_at) values ($1, $2, $3, 'queued', '', '', '', '', $4, 0)",
    )
    .bind(&deployment)
    .bind(&id)
    .bind(tenant.organization_id.to_string())
    .bind(nuage_core::clock::now_micros() - 120_000_000)
    .execute(&mut db)
    .await
    .unwrap();
    sqlx::query("update functions set status = 'pending' where id = $1")
        .bind(&id)
        .execute(&mut db)
        .await
        .unwrap();
    let done = settled_within(&tenant, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "ready", "{done}");
    let (status,): (String,) = sqlx::query_as("select status from build_jobs where id = $1")
        .bind(&deployment)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(status, "done");
    server.stop().await;
}

/// Returns the status and attempts of the build job whose `column` is `value`.
async fn build_job_state(db: &mut sqlx::AnyConnection, column: &str, value: &str) -> (String, i64) {
    sqlx::query_as(&format!("select status, attempts from build_jobs where {column} = $1"))
        .bind(value)
        .fetch_one(db)
        .await
        .unwrap()
}

/// Leaves the rows a builder killed mid-build would leave; returns the deployment id.
async fn crashed(url: &str, function_id: &str, organization_id: &str, runtime: &str, attempts: i64) -> String {
    let deployment = uuid::Uuid::new_v4().to_string();
    let mut db = nuage_tests::connect(url).await;
    sqlx::query(
        "insert into deployments (id, application_id, organization_id, status, error_message, archive_digest, \
         image_reference, image_digest, created_at, finished_at) values ($1, $2, $3, 'queued', '', '', '', '', $4, 0)",
    )
    .bind(&deployment)
    .bind(function_id)
    .bind(organization_id)
    .bind(nuage_core::clock::now_micros())
    .execute(&mut db)
    .await
    .unwrap();
    sqlx::query("update functions set status = 'pending' where id = $1")
        .bind(function_id)
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query(
        "insert into build_jobs (id, function_id, organization_id, namespace_id, runtime, handler, archive_key, \
         repository, status, attempts, lease_until, log, created_at, updated_at) \
         values ($1, $2, $3, '', $4, 'handler.handle', $5, 'crashes/f', 'running', $6, 1, '', 1, 1)",
    )
    .bind(&deployment)
    .bind(function_id)
    .bind(organization_id)
    .bind(runtime)
    .bind(format!("functions/{function_id}.zip"))
    .bind(attempts)
    .execute(&mut db)
    .await
    .unwrap();
    deployment
}

/// Starts a server without the builder role (it migrates the database) and returns it with the
/// build queue in its database, for a test that claims jobs itself.
async fn server_without_builder(secret: &str) -> (TestServer, nuage_builder::JobStore) {
    let server = TestServer::start_with(|config| {
        config.roles = vec![nuage::Role::Iam];
        config.internal_secret = Some(nuage_core::Secret::new(secret));
    })
    .await;
    let database = nuage_core::Database::connect(&server.database_url()).await.unwrap();
    (server, nuage_builder::JobStore::new(database))
}

/// Returns a node build job of `organization` for function `function`, never tried.
fn job(organization: &str, function: String) -> nuage_builder::Job {
    nuage_builder::Job {
        id: uuid::Uuid::new_v4().to_string(),
        function_id: function,
        organization_id: organization.to_owned(),
        namespace_id: String::new(),
        runtime: "node20".to_owned(),
        handler: "handler.handle".to_owned(),
        archive_key: String::new(),
        repository: String::new(),
        attempts: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builder_replicas_never_claim_the_same_job() {
    // Only this test's claimers take jobs.
    let (server, jobs) = server_without_builder("replicas").await;
    let count = 40;
    for index in 0..count {
        jobs.submit(&job("", format!("function-{index}")), u32::MAX)
            .await
            .unwrap();
    }
    // Four replicas claim as fast as they can, all at once.
    let claimers: Vec<_> = (0..4)
        .map(|_| {
            let jobs = jobs.clone();
            tokio::spawn(async move {
                let mut claimed = Vec::new();
                while let Some(job) = jobs.claim(60_000_000).await.unwrap() {
                    claimed.push(job.id);
                }
                claimed
            })
        })
        .collect();
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), count, "every job claimed once");
    assert_eq!(unique.len(), count, "no job claimed twice");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_functions_are_compiled_where_a_go_toolchain_is_installed() {
    let (server, tenant) = TestServer::with_tenant().await;
    let runtimes = tenant.get("/runtimes").await.body;
    let offered = runtimes["runtimes"].as_array().unwrap().contains(&json!("golang"));
    let installed = std::process::Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert_eq!(offered, installed, "golang is offered exactly when Go is installed");
    if !installed {
        server.stop().await;
        return;
    }
    let function = function(&tenant, "build-go", json!({"name": "hello", "runtime": "golang"})).await;
    assert_eq!(function["handler"], ".");
    let id = function["id"].as_str().unwrap();
    let go_mod = b"module example.com/hello\n\ngo 1.19\n";
    let handler = b"package hello\n\nimport \"net/http\"\n\nfunc Handle(w http.ResponseWriter, r *http.Request) {\n\tw.Write([]byte(\"hello\"))\n}\n";
    // The first build on a machine also compiles Go's standard library into the build cache.
    let archive = zip(&[("go.mod", go_mod), ("handler.go", handler)]);
    let done = upload_and_deploy(&tenant, id, archive, Duration::from_secs(300)).await;
    assert_eq!(done["status"], "ready", "{done}");
    let (_, layout) = namespace_and_layout(&server, &tenant, &function).await;
    let layers = layer_paths(&layout);
    assert!(
        layers[0].contains(&"opt/nuage/wrapper/handler".to_owned()),
        "{layers:?}"
    );
    // A compile error is the function's error, with the compiler's first lines.
    let archive = zip(&[("go.mod", go_mod), ("handler.go", b"package hello\n\nfunc Handle( {\n")]);
    let done = upload_and_deploy(&tenant, id, archive, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "error", "{done}");
    let message = done["error_message"].as_str().unwrap();
    assert!(
        message.starts_with("`go build` failed:") && message.contains("handler.go"),
        "{message}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_recent_images_are_kept() {
    let (server, tenant, function, id) = with_node_function("retention").await;
    for version in 0..7 {
        let source = format!("exports.handle = () => {version};");
        redeployed(&tenant, &id, &[("handler.js", source.as_bytes())]).await;
    }
    let (_, layout) = namespace_and_layout(&server, &tenant, &function).await;
    let index = image_index(&layout);
    assert_eq!(
        index["manifests"].as_array().unwrap().len(),
        5,
        "the newest 5 images are kept"
    );
    // Blobs: the shared wrapper layer, then a code layer, a config and a manifest per image.
    let blobs = std::fs::read_dir(layout.join("blobs/sha256")).unwrap().count();
    assert_eq!(blobs, 1 + 5 * 3, "older images' blobs are removed");
    server.stop().await;
}

/// Bytes that do not compress, so that building them takes a while.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A server running every role but the builder, which it reaches over gRPC on `builder_port`,
/// and the settings and arguments of a `nuage serve --roles builder` process that serves there.
async fn server_with_remote_builder(
    builder_port: u16,
    secret: &str,
) -> (TestServer, Vec<(String, String)>, Vec<String>) {
    let server = TestServer::start_with(|config| {
        let url = format!("http://127.0.0.1:{builder_port}");
        nuage_tests::serve_all_but(config, &[nuage::Role::Builder], &url, secret);
    })
    .await;
    let storage = server.server().storage_access().unwrap().clone();
    let env: Vec<(String, String)> = [
        ("NUAGE_DATABASE_URL", server.database_url()),
        ("NUAGE_INTERNAL_SECRET", secret.to_owned()),
        (
            "NUAGE_SERVICES__FUNCTIONS",
            format!("http://{}", server.server().endpoints().grpc.unwrap()),
        ),
        ("NUAGE_STORAGE__ENDPOINT", storage.endpoint.clone()),
        ("NUAGE_STORAGE__ACCESS_KEY", storage.access_key.clone()),
        ("NUAGE_STORAGE__SECRET_KEY", storage.secret_key.expose().to_owned()),
        ("NUAGE_STORAGE__BUCKET", server.config.storage.bucket.clone()),
        // Images go where the runner of the server finds them (a shared registry in production).
        (
            "NUAGE_BUILDER__REGISTRY_DIR",
            server.config.data_dir.join("registry").display().to_string(),
        ),
        ("NUAGE_BUILDER__LEASE_SECONDS", "2".to_owned()),
        ("NUAGE_BUILDER__POLL_INTERVAL_MS", "50".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let args = [
        "--roles",
        "builder",
        "--grpc-listen",
        &format!("127.0.0.1:{builder_port}"),
    ]
    .map(str::to_owned)
    .to_vec();
    (server, env, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_builder_process_killed_mid_build_loses_nothing() {
    // The builder runs as its own `nuage serve --roles builder` process, so it can be killed
    // with -9; this server runs every other role and reaches it over gRPC.
    let builder_port = nuage_tests::free_port();
    let (server, env, args) = server_with_remote_builder(builder_port, "killed-builder").await;
    let builder_dir = tempfile::tempdir().unwrap();
    let mut first = nuage_tests::Process::serve(env!("CARGO_BIN_EXE_nuage"), builder_dir.path(), &args, &env);
    // The deploy queues its build with the builder: it must be listening (seen in CI: a deploy
    // sent while it was still starting failed).
    first.wait_listening(builder_port).await;

    let tenant = server.tenant().await;
    let big = noise(12 << 20);
    let id = uploaded(
        &tenant,
        "killed",
        "python",
        &[("handler.py", PYTHON_ONE), ("data.bin", &big)],
    )
    .await;
    deploy(&tenant, &id).await;
    // Kill the builder the moment it holds the job.
    let mut db = server.database().await;
    let watch = sqlx::AnyPool::connect(&server.database_url()).await.unwrap();
    let running = || async {
        let running: Option<(i64,)> =
            sqlx::query_as("select attempts from build_jobs where function_id = $1 and status = 'running'")
                .bind(&id)
                .fetch_optional(&watch)
                .await
                .unwrap();
        running
    };
    let running = eventually_every(
        Duration::from_millis(2),
        Duration::from_secs(30),
        running,
        Option::is_some,
    )
    .await;
    if running.is_some() {
        first.kill();
    }
    assert!(
        running.is_some(),
        "the builder process never claimed the job: {}",
        std::fs::read_to_string(builder_dir.path().join("stderr.log")).unwrap_or_default()
    );
    // Killed mid-build: the job is still leased to the dead worker and nothing was reported.
    // What it sent before it died may still be on its way: that it never lands is what is
    // tested, and an absence shows no sign to wait for, so it is given time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, attempts) = build_job_state(&mut db, "function_id", &id).await;
    assert_eq!((status.as_str(), attempts), ("running", 1));
    assert_eq!(tenant.get(&format!("/functions/{id}")).await.body["status"], "pending");

    // A new builder process takes the job over once the dead one's lease runs out.
    let second_dir = tempfile::tempdir().unwrap();
    let _second = nuage_tests::Process::serve(env!("CARGO_BIN_EXE_nuage"), second_dir.path(), &args, &env);
    let done = settled_within(&tenant, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "ready", "{done}");
    let (status, attempts) = build_job_state(&mut db, "function_id", &id).await;
    assert_eq!((status.as_str(), attempts), ("done", 2));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_while_the_builder_hangs_answers_503_naming_it_within_the_deadline() {
    // The builder's address accepts connections and never answers.
    let (address, _hung) = nuage_tests::hung_listener().await;
    let (server, tenant) = TestServer::start_with_tenant(|config| {
        nuage_tests::serve_all_but(
            config,
            &[nuage::Role::Builder],
            &format!("http://{address}"),
            "hung-builder",
        );
        config.services.deadline_ms = 5000;
    })
    .await;
    let id = uploaded(&tenant, "hung-builder", "python", &[("handler.py", PYTHON_ONE)]).await;
    let started = std::time::Instant::now();
    let (refused, help) = refused_deploy(&tenant, &id, StatusCode::SERVICE_UNAVAILABLE).await;
    let took = started.elapsed();
    assert!(help.starts_with("the builder service did not answer"), "{refused}");
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    let failed = tenant.get(&format!("/functions/{id}")).await.body;
    assert_eq!(
        failed["error_message"], "the build could not be queued; deploy again",
        "{failed}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_while_the_builder_is_down_answers_503_naming_it_and_can_be_retried() {
    // Nothing listens on the builder's port yet.
    let builder_port = nuage_tests::free_port();
    let (server, env, args) = server_with_remote_builder(builder_port, "absent-builder").await;
    let tenant = server.tenant().await;
    let id = uploaded(&tenant, "no-builder", "python", &[("handler.py", PYTHON_ONE)]).await;

    let (refused, help) = refused_deploy(&tenant, &id, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(refused["type"], "service_unavailable", "{refused}");
    assert!(help.contains("builder service"), "{refused}");
    let failed = tenant.get(&format!("/functions/{id}")).await.body;
    assert_eq!(failed["status"], "error", "{failed}");
    assert_eq!(failed["error_message"], "the build could not be queued; deploy again");

    // Once the builder is back, deploying again builds the archive that was kept.
    let builder_dir = tempfile::tempdir().unwrap();
    let mut builder = nuage_tests::Process::serve(env!("CARGO_BIN_EXE_nuage"), builder_dir.path(), &args, &env);
    builder.wait_listening(builder_port).await;
    deploy(&tenant, &id).await;
    let done = settled_within(&tenant, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "ready", "{done}");
    server.stop().await;
}

/// Deploys function `id`, asserting the deploy is refused with `status`; returns the refusal's
/// body and its help message.
async fn refused_deploy(tenant: &nuage_tests::Tenant, id: &str, status: StatusCode) -> (Value, String) {
    let refused = tenant.post(&format!("/functions/{id}/deploy"), json!({})).await;
    assert_eq!(refused.status, status, "{}", refused.body);
    let help = refused.body["help_message"].as_str().unwrap_or_default().to_owned();
    (refused.body, help)
}

/// A server running every role but `remote`, which it reaches over gRPC on `port`, and the
/// settings of the `nuage serve --roles <remote>` processes that serve there (with the embedded
/// object store and building into the server's registry directory), holding each roll-out's
/// lease for a second.
async fn server_with_remote(remote: &[nuage::Role], port: u16, secret: &str) -> (TestServer, Vec<(String, String)>) {
    let url = format!("http://127.0.0.1:{port}");
    let server = TestServer::start_with(|config| nuage_tests::serve_all_but(config, remote, &url, secret)).await;
    let grpc = format!("http://{}", server.server().endpoints().grpc.unwrap());
    // The remote processes reach every other gRPC service in the server (the router's URL is
    // HTTP, and the gateway has none).
    let mut env: Vec<(String, String)> = nuage::Role::ALL
        .into_iter()
        .filter(|role| !remote.contains(role) && ![nuage::Role::Gateway, nuage::Role::Router].contains(role))
        .map(|role| (format!("NUAGE_SERVICES__{}", role.name().to_uppercase()), grpc.clone()))
        .collect();
    env.extend(
        [
            ("NUAGE_DATABASE_URL", server.database_url()),
            ("NUAGE_INTERNAL_SECRET", secret.to_owned()),
            ("NUAGE_APPLICATIONS__ENDPOINT_BASE_URL", server.functions_url.clone()),
            ("NUAGE_APPLICATIONS__ROLLOUT_LEASE_SECONDS", "1".to_owned()),
            (
                "NUAGE_BUILDER__REGISTRY_DIR",
                server.config.data_dir.join("registry").display().to_string(),
            ),
            ("NUAGE_BUILDER__POLL_INTERVAL_MS", "50".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value)),
    );
    (server, env)
}

/// Kills (-9) the `nuage serve --roles <remote>` process that runs the roll-out of an
/// application of kind `noun` (`function`, `container`), after its deploy (made by `deploy`,
/// which returns the application's id) and before its new version started; then restarts it
/// beside a second replica and checks that one of them resumes the roll-out, once, and that
/// the application ends `ready` and answers with a body holding `answers`.
async fn a_killed_roll_out_is_resumed_once<Deploy, Deployed>(
    remote: &[nuage::Role],
    noun: &str,
    deploy: Deploy,
    answers: &str,
) where
    Deploy: FnOnce(nuage_tests::Tenant, std::path::PathBuf) -> Deployed,
    Deployed: Future<Output = String>,
{
    let port = nuage_tests::free_port();
    let (server, env) = server_with_remote(remote, port, "killed-roll-out").await;
    let binary = env!("CARGO_BIN_EXE_nuage");
    let roles = remote.iter().map(|role| role.name()).collect::<Vec<_>>().join(",");
    let args = |listen: u16| {
        ["--roles", &roles, "--grpc-listen", &format!("127.0.0.1:{listen}")]
            .map(str::to_owned)
            .to_vec()
    };
    // The first process holds every roll-out it starts for a minute (test-only), so that it
    // is killed holding one: after the build, before the new version started.
    let dir = tempfile::tempdir().unwrap();
    let mut holding = env.clone();
    holding.push(("NUAGE_APPLICATIONS__HOLD_BEFORE_ROLLOUT_MS".into(), "60000".into()));
    let mut first = nuage_tests::Process::serve(binary, dir.path(), &args(port), &holding);
    first.wait_listening(port).await;

    let tenant = server.tenant().await;
    let id = deploy(tenant.clone(), server.config.data_dir.join("registry")).await;
    let path = format!("/{noun}s/{id}");
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&server.database_url()).await.unwrap();
    let rollout = || async {
        let row: Option<(String, i64)> =
            sqlx::query_as("select version, attempts from rollouts where application_id = $1")
                .bind(&id)
                .fetch_optional(&db)
                .await
                .unwrap();
        row
    };
    let held = nuage_tests::eventually(Duration::from_secs(60), rollout, Option::is_some).await;
    let status = tenant.get(&path).await.body;
    let (version, attempts) = held.unwrap_or_else(|| {
        panic!(
            "the deploy never reached its roll-out: {status}\n{}",
            std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
        )
    });
    assert_eq!(attempts, 1);
    first.kill();
    // Its process is gone, and so is its API until it restarts: the row tells.
    let (status,): (String,) = sqlx::query_as(&format!("select status from {noun}s where id = $1"))
        .bind(&id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(status, "pending");

    // Restarted on its data dir, beside a second replica: one of them resumes the roll-out
    // once the dead process's lease ran out, and the application ends ready and answers.
    let mut second = nuage_tests::Process::serve(binary, dir.path(), &args(port), &env);
    second.wait_listening(port).await;
    let other_dir = tempfile::tempdir().unwrap();
    let _other = nuage_tests::Process::serve(binary, other_dir.path(), &args(nuage_tests::free_port()), &env);
    let done = tenant
        .poll_until(&path, Duration::from_secs(60), |answer| {
            answer.body["status"] == "ready" || answer.body["status"] == "error"
        })
        .await
        .body;
    assert_eq!(done["status"], "ready", "{done}");
    let answer = reqwest::get(done["endpoint"].as_str().unwrap()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let body = answer.text().await.unwrap();
    assert!(body.contains(answers), "{body}");
    assert_eq!(rollout().await, None, "an ended roll-out is forgotten");
    // Resumed once, by one replica: each logs the roll-outs it takes over.
    let logs = [dir.path(), other_dir.path()].map(|dir| std::fs::read_to_string(dir.join("stderr.log")).unwrap());
    let resumed = logs
        .iter()
        .flat_map(|log| log.lines())
        .filter(|line| line.contains(&format!("resuming an interrupted {noun} roll-out")) && line.contains(&version))
        .count();
    assert_eq!(resumed, 1, "{logs:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roll_out_whose_process_was_killed_is_resumed_once_and_ends_ready() {
    let deploy_function = |tenant: nuage_tests::Tenant, _registry| async move {
        let handler = b"def handle(event, context):\n    return {'statusCode': 200, 'body': 'resumed'}\n";
        let id = uploaded(&tenant, "roll-out", "python", &[("handler.py", handler)]).await;
        deploy(&tenant, &id).await;
        id
    };
    a_killed_roll_out_is_resumed_once(
        &[nuage::Role::Functions, nuage::Role::Builder],
        "function",
        deploy_function,
        "resumed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_roll_out_whose_process_was_killed_is_resumed_once_and_ends_ready() {
    let binary = nuage_tests::go_server_or_skip!();
    let deploy_container = |tenant: nuage_tests::Tenant, registry: std::path::PathBuf| async move {
        let namespace = tenant.ready_namespace("roll-out").await;
        nuage_tests::apps::deploy_app_container(&tenant, &registry, &namespace, &binary, json!({"GREETING": "resumed"}))
            .await
    };
    a_killed_roll_out_is_resumed_once(
        &[nuage::Role::Containers],
        "container",
        deploy_container,
        r#""greeting":"resumed""#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_redeployed_after_a_push_under_its_tag_runs_the_new_image() {
    a_container_redeployed_after_a_push_runs_it(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_redeployed_after_a_push_to_a_registry_under_its_tag_runs_the_new_image() {
    let Ok(registry) = std::env::var(nuage_tests::REGISTRY_VARIABLE) else {
        eprintln!("skipped: no registry (NUAGE_TEST_REGISTRY) to push to");
        return;
    };
    a_container_redeployed_after_a_push_runs_it(Some(registry)).await;
}

/// Pushes an image answering `v1` under a tag, deploys a container of it, pushes one answering
/// `v2` under the same tag, redeploys: the container answers `v2`, and the first image's
/// unpacked copy goes once its instance ended. Pushes go to `registry` (pulled by the runner)
/// or, without one, to the namespace's repository (an OCI layout of the embedded registry).
async fn a_container_redeployed_after_a_push_runs_it(registry: Option<String>) {
    let binary = nuage_tests::go_server_or_skip!();
    let (server, tenant) = TestServer::start_with_tenant(|config| config.runner.registry_insecure = true).await;
    let namespace = tenant.ready_namespace("retagged").await;
    let namespace_id = namespace["id"].as_str().unwrap().to_owned();
    let staging = tempfile::tempdir().unwrap();
    // The namespace's own repository (on the registry, whose host its endpoint names, or in
    // the embedded one): images of the installation's registry elsewhere are not its to run.
    let endpoint = namespace["registry_endpoint"].as_str().unwrap();
    let image = format!("{endpoint}/app:latest");
    let layout = match &registry {
        Some(registry) => {
            assert!(endpoint.starts_with(&format!("{registry}/")), "{endpoint}");
            staging.path().join("app")
        }
        None => {
            let repository = endpoint.split_once('/').unwrap().1;
            server.config.data_dir.join("registry").join(repository).join("app")
        }
    };
    let push = |version: &str| {
        let files = [
            ("server", binary.as_slice(), 0o755),
            ("version", version.as_bytes(), 0o644),
        ];
        nuage_tests::apps::write_image_layout(&layout, "latest", &files, &["/server"]);
        if registry.is_some() {
            let (source, destination) = (format!("oci:{}:latest", layout.display()), format!("docker://{image}"));
            skopeo(&["copy", "--quiet", "--dest-tls-verify=false", &source, &destination]);
        }
    };
    let id = tenant
        .create(
            "/containers",
            json!({"name": "app", "namespace_id": namespace_id, "registry_image": image}),
        )
        .await;
    let deployed = |expected: &'static str| {
        let tenant = tenant.clone();
        let id = id.clone();
        async move {
            let answer = nuage_tests::apps::deploy_and_call_container(&tenant, &id, Duration::from_secs(30)).await;
            assert_eq!(answer["version"], expected, "{answer}");
        }
    };
    let copies = || {
        let images = server.config.data_dir.join("runner/images");
        std::fs::read_dir(images)
            .map(|entries| entries.flatten().map(|entry| entry.path()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    push("v1");
    deployed("v1").await;
    let first = copies();
    assert_eq!(first.len(), 1, "{first:?}");
    // The same tag, pushed again, then deployed: the new image runs...
    push("v2");
    deployed("v2").await;
    // ...and the first one's copy goes once its instance ended.
    let left = eventually_every(
        Duration::from_millis(100),
        Duration::from_secs(20),
        || async { copies() },
        |copies| copies.len() == 1,
    )
    .await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left, first);
    server.stop().await;
}

/// The attack: a tenant names another tenant's image on the installation's registry by
/// another name for the registry's host, so that the check that a repository is the tenant's
/// own (made for the registry's own name) does not apply, and the runner pulls it over the
/// network as anyone's. Named as another host on this machine, the runner refuses to pull from
/// it, as from any loopback or private address a tenant names (the registry's own name in
/// capitals is refused at once: containers_v1beta1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_image_is_never_run_through_another_name_of_the_installations_registry() {
    let Ok(registry) = std::env::var(nuage_tests::REGISTRY_VARIABLE) else {
        eprintln!("skipped: no registry (NUAGE_TEST_REGISTRY) to push to");
        return;
    };
    let binary = nuage_tests::go_server_or_skip!();
    let (server, owner) = TestServer::start_with_tenant(|config| config.runner.registry_insecure = true).await;
    let theirs = owner.ready_namespace("private-img").await;
    let endpoint = theirs["registry_endpoint"].as_str().unwrap().to_owned();
    let (host, path) = endpoint.split_once('/').unwrap();
    assert_eq!(host, registry);
    let staging = tempfile::tempdir().unwrap();
    let layout = staging.path().join("app");
    nuage_tests::apps::write_image_layout(&layout, "latest", &[("server", binary.as_slice(), 0o755)], &["/server"]);
    let image = format!("{endpoint}/app:latest");
    let source = format!("oci:{}:latest", layout.display());
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &source,
        &format!("docker://{image}"),
    ]);
    // The image runs, for its owner.
    let own = owner
        .create(
            "/containers",
            json!({"name": "app", "namespace_id": theirs["id"], "registry_image": image}),
        )
        .await;
    nuage_tests::apps::deploy_and_call_container(&owner, &own, Duration::from_secs(30)).await;

    let stranger = server.tenant().await;
    let namespace_id = stranger.ready_namespace_id("mine").await;
    let port = registry.rsplit_once(':').map_or("443", |(_, port)| port);
    // Other names of this machine: the container is made, but its image is never pulled.
    for other in ["localhost", "0.0.0.0", "2130706433"] {
        let named = format!("{other}:{port}");
        let id = stranger
            .create(
                "/containers",
                json!({"name": format!("thief-{}", other.replace('.', "-")), "namespace_id": namespace_id,
                       "registry_image": format!("{named}/{path}/app:latest")}),
            )
            .await;
        let deploying = stranger.post(&format!("/containers/{id}/deploy"), json!({})).await;
        assert_eq!(deploying.status, StatusCode::OK, "{}", deploying.body);
        let ended = nuage_tests::apps::container_settled(&stranger, &id, Duration::from_secs(30)).await;
        assert_eq!(ended["status"], "error", "{named}: {ended}");
        let message = ended["error_message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "`{named}` is not a registry this installation pulls images from"
            )),
            "{message}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_are_taken_in_turn_between_tenants() {
    // Only this test claims jobs.
    let (server, jobs) = server_without_builder("turns").await;
    // Tenant a queues a burst of six, then b one, then c two.
    let mut queued = Vec::new();
    for (organization, count) in [("a", 6), ("b", 1), ("c", 2)] {
        for n in 0..count {
            let job = job(organization, format!("{organization}{n}"));
            jobs.submit(&job, 20).await.unwrap();
            queued.push(job);
            // Distinct creation times, so that "oldest" is well defined.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let organization_of = |id: &str| {
        queued
            .iter()
            .find(|job| job.id == id)
            .map(|job| job.organization_id.clone())
            .unwrap()
    };
    // One builder, one job at a time: a, b, c, a, c, a, a, a, a (oldest first among equals).
    let mut order = String::new();
    while let Some(claimed) = jobs.claim(60_000_000).await.unwrap() {
        order.push_str(&organization_of(&claimed.id));
        assert!(jobs.finish(&claimed, true, "").await.unwrap());
    }
    assert_eq!(order, "abcacaaaa");
    // While a holds one job in progress, b's next job goes before a's next one.
    jobs.submit(&job("a", "a-late-0".into()), 20).await.unwrap();
    jobs.submit(&job("a", "a-late-1".into()), 20).await.unwrap();
    let building = jobs.claim(60_000_000).await.unwrap().unwrap();
    assert_eq!(building.organization_id, "a");
    jobs.submit(&job("b", "b-late".into()), 20).await.unwrap();
    let next = jobs.claim(60_000_000).await.unwrap().unwrap();
    assert_eq!(next.organization_id, "b", "b waits behind a's job in progress only");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_beyond_the_tenants_build_backlog_gets_429_and_changes_nothing() {
    let (server, tenant) = TestServer::start_with_tenant(|config| config.builder.max_queued_per_organization = 2).await;
    let id = uploaded(&tenant, "backlog", "python", &[("handler.py", PYTHON_ONE)]).await;
    // Two builds of the tenant wait in the queue (to be retried in an hour).
    let mut db = server.database().await;
    let organization_id = tenant.organization_id.to_string();
    for _ in 0..2 {
        sqlx::query(
            "insert into build_jobs (id, function_id, organization_id, namespace_id, runtime, handler, archive_key, \
             repository, status, attempts, lease_until, log, created_at, updated_at) \
             values ($1, $2, $3, '', 'python3', 'handler.handle', 'none', 'backlog/g', 'queued', 1, $4, '', 1, 1)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&organization_id)
        .bind(nuage_core::clock::now_micros() + 3_600_000_000)
        .execute(&mut db)
        .await
        .unwrap();
    }
    let (refused, help) = refused_deploy(&tenant, &id, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(
        help.contains("2 builds of this organization are already queued"),
        "{refused}"
    );
    let unchanged = tenant.get(&format!("/functions/{id}")).await.body;
    assert_eq!(unchanged["status"], "created", "{unchanged}");
    assert_eq!(unchanged["error_message"], "", "{unchanged}");
    // Once the queue has room, the same deploy builds.
    sqlx::query("delete from build_jobs where organization_id = $1 and archive_key = 'none'")
        .bind(&organization_id)
        .execute(&mut db)
        .await
        .unwrap();
    deploy(&tenant, &id).await;
    let done = settled(&tenant, &id).await;
    assert_eq!(done["status"], "ready", "{done}");
    server.stop().await;
}

/// A handler that says which node runs it and what `/usr/bin` holds where it runs.
const WHERE_JS: &[u8] = br#"
const fs = require('fs');
exports.handle = () => ({
  statusCode: 200,
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ node: process.execPath, bin: fs.readdirSync('/usr/bin').sort() }),
});
"#;

/// Returns a tar of the host's `node` at `/usr/bin/node` with the libraries `ldd` says it
/// loads, each at the path `ldd` names: a runtime base image made of nothing else.
fn node_base_layer() -> Vec<u8> {
    let node = std::process::Command::new("node")
        .args(["-e", "process.stdout.write(process.execPath)"])
        .output()
        .expect("node runs");
    let node = String::from_utf8(node.stdout).unwrap();
    let ldd = std::process::Command::new("ldd").arg(&node).output().expect("ldd runs");
    let libraries: Vec<String> = String::from_utf8(ldd.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().find(|word| word.starts_with('/')))
        .map(str::to_owned)
        .collect();
    assert!(!libraries.is_empty(), "node is linked dynamically here");
    let mut tar = tar::Builder::new(Vec::new());
    for (path, source) in std::iter::once(("usr/bin/node".to_owned(), node)).chain(
        libraries
            .into_iter()
            .map(|path| (path.trim_start_matches('/').to_owned(), path)),
    ) {
        let data = std::fs::read(&source).unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, &data[..]).unwrap();
    }
    tar.into_inner().unwrap()
}

/// Runs `skopeo` with `args`, asserting it succeeds; returns what it printed.
fn skopeo(args: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo runs");
    assert!(
        output.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Returns the digests of the layers of `image` on the registry, as `skopeo` reads them.
fn registry_layers(image: &str) -> Vec<String> {
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &format!("docker://{image}")]);
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| layer["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// With `builder.base_images`, a node function is built on its runtime's base image (here
/// made of the host's node and the libraries it loads, pushed to the test registry): the
/// function image holds the base's layers under the wrapper and the code, and runs alone. Run
/// as a container (whose root is its image's, nothing of the host's), it answers from the
/// base's node, seeing only the base's `/usr/bin`, while the function itself, on the local
/// runner, still runs on the host's node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_function_built_on_a_base_image_runs_alone_from_its_image() {
    let Ok(registry) = std::env::var(nuage_tests::REGISTRY_VARIABLE) else {
        eprintln!("skipped: no registry (NUAGE_TEST_REGISTRY) to push to");
        return;
    };
    assert!(
        Path::new("/usr/bin/bwrap").exists(),
        "bubblewrap confines the container to its image"
    );
    let base_layout = tempfile::tempdir().unwrap();
    let base = format!("bases/node-{}:v1", uuid::Uuid::new_v4().simple());
    nuage_tests::apps::write_image_layout_with(
        base_layout.path(),
        "v1",
        node_base_layer(),
        json!({"User": "1000", "Env": ["PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8"], "Cmd": ["node"]}),
    );
    let (source, destination) = (
        format!("oci:{}:v1", base_layout.path().display()),
        format!("docker://{registry}/{base}"),
    );
    skopeo(&["copy", "--quiet", "--dest-tls-verify=false", &source, &destination]);
    let base_layers = registry_layers(&format!("{registry}/{base}"));

    let runtime_probe = TestServer::start().await;
    let node = runtime(&runtime_probe.tenant().await, "node").await;
    runtime_probe.stop().await;
    let (_server, tenant) = TestServer::start_with_tenant(|config| {
        config.runner.registry_insecure = true;
        config.builder.base_images.insert(node.clone(), base.clone());
    })
    .await;
    let function = nuage_tests::apps::deployed(
        &tenant,
        "on-a-base",
        json!({"name": "where", "runtime": node, "handler": "handler.handle"}),
        &[("handler.js", WHERE_JS)],
    )
    .await;
    let here = nuage_tests::get_json(function["endpoint"].as_str().unwrap()).await;
    assert!(
        here["bin"].as_array().unwrap().len() > 1,
        "the local runner lends the host's /usr: {here}"
    );

    // The function's image, as the builder pushed it: the base's layers, then two of its own.
    let repository = repository_of(&tenant, &function).await;
    let image = format!("{repository}:{}", registry_tags(&repository)[0]);
    let layers = registry_layers(&image);
    assert_eq!(layers.len(), base_layers.len() + 2, "{layers:?}");
    assert_eq!(layers[..base_layers.len()], base_layers[..]);

    // Run as a container: nothing but the image.
    let created = tenant
        .post(
            "/containers",
            json!({"name": "alone", "namespace_id": function["namespace_id"], "registry_image": image}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let alone = nuage_tests::apps::deploy_and_call_container(&tenant, id, Duration::from_secs(60)).await;
    assert_eq!(alone["node"], "/usr/bin/node", "{alone}");
    assert_eq!(alone["bin"], json!(["node"]), "only the base's /usr/bin: {alone}");
}

/// Returns the repository of `function`'s images: its namespace's, then its name.
async fn repository_of(tenant: &nuage_tests::Tenant, function: &Value) -> String {
    let namespace = tenant
        .get(&format!("/namespaces/{}", function["namespace_id"].as_str().unwrap()))
        .await
        .body;
    format!(
        "{}/{}",
        namespace["registry_endpoint"].as_str().unwrap(),
        function["name"].as_str().unwrap()
    )
}

/// Returns the tags of `repository` on the registry (none when it has no image yet).
fn registry_tags(repository: &str) -> Vec<String> {
    let output = std::process::Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false", &format!("docker://{repository}")])
        .output()
        .expect("skopeo runs");
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    listed["Tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tag| tag.as_str().map(str::to_owned))
        .collect()
}

/// The attack: a tenant may push into its namespaces' repositories, where the builder pushes
/// its functions' images too. It pushes another image of its own over the tag a build just
/// pushed, before the roll-out starts (held here for a few seconds). The function still runs
/// the image that was built, by its digest: what runs cannot be swapped by retagging (for a
/// wasm function, what the router loads as compiled code). The runner reads the registry, as a
/// runner on another host than the builder does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_the_tenant_pushes_again_before_the_roll_out_does_not_change_what_a_function_runs() {
    if std::env::var(nuage_tests::REGISTRY_VARIABLE).is_err() {
        eprintln!("skipped: no registry (NUAGE_TEST_REGISTRY) to push to");
        return;
    }
    let runtime_probe = TestServer::start().await;
    let node = runtime(&runtime_probe.tenant().await, "node").await;
    runtime_probe.stop().await;
    let elsewhere = tempfile::tempdir().unwrap();
    let runner_layouts = elsewhere.path().to_path_buf();
    let (server, tenant) = TestServer::start_with_tenant(|config| {
        config.runner.registry_insecure = true;
        config.runner.registry_dir = Some(runner_layouts);
        config.applications.hold_before_rollout_ms = 6000;
    })
    .await;
    let decoy = nuage_tests::apps::deployed(
        &tenant,
        "decoy-space",
        json!({"name": "decoy", "runtime": node}),
        &[("handler.js", b"exports.handle = () => 'swapped';")],
    )
    .await;
    let decoy_repository = repository_of(&tenant, &decoy).await;
    let decoy_image = format!("{decoy_repository}:{}", registry_tags(&decoy_repository)[0]);

    let target = function(&tenant, "target-space", json!({"name": "target", "runtime": node})).await;
    let id = target["id"].as_str().unwrap();
    upload(&tenant, id, zip(&[("handler.js", b"exports.handle = () => 'built';")])).await;
    deploy(&tenant, id).await;
    let target_repository = repository_of(&tenant, &target).await;
    let tags = eventually_every(
        Duration::from_millis(100),
        Duration::from_secs(60),
        || async { registry_tags(&target_repository) },
        |tags: &Vec<String>| !tags.is_empty(),
    )
    .await;
    assert_eq!(tags.len(), 1, "the build pushed one image: {tags:?}");
    // The roll-out is held: the tenant pushes its decoy over the tag the build pushed.
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{decoy_image}"),
        &format!("docker://{target_repository}:{}", tags[0]),
    ]);
    let done = settled_within(&tenant, id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "ready", "{done}");
    let answer = reqwest::get(done["endpoint"].as_str().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        answer.contains("built"),
        "the function runs the image it was built as: {answer}"
    );
    server.stop().await;
}

/// On the `kubernetes` backend a WebAssembly function needs no cluster: the router runs it in
/// process, from the component the runner reads out of its image in the registry the builder
/// pushed to (the cluster here is an address nothing answers on, never asked). A redeploy of
/// another component runs that one, a rollback runs the first again, and a rollback to an
/// image pruned from the registry is refused (409).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_function_on_the_kubernetes_backend_runs_from_its_image_in_the_registry() {
    if std::env::var(nuage_tests::REGISTRY_VARIABLE).is_err() {
        eprintln!("skipped: no registry (NUAGE_TEST_REGISTRY) to push to");
        return;
    }
    let directory = tempfile::tempdir().unwrap();
    let kubeconfig = directory.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:9\"}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n\
         current-context: x\n",
    )
    .unwrap();
    let (server, tenant) = TestServer::start_with_tenant(|config| {
        config.runner.backend = "kubernetes".to_owned();
        config.runner.registry_insecure = true;
        config.runner.kubernetes.kubeconfig = Some(kubeconfig);
    })
    .await;
    let component = |name: &str| zip(&[("handler.wasm", &nuage_tests::components::wat_component(name)[..])]);
    let created = function(
        &tenant,
        "wasm-on-kubernetes",
        json!({"name": "hello", "runtime": "wasm", "handler": "handler.wasm"}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let call = |endpoint: String| async move {
        let response = reqwest::get(&endpoint).await.unwrap();
        (response.status(), response.text().await.unwrap())
    };
    upload(&tenant, &id, component("hello")).await;
    deploy(&tenant, &id).await;
    let done = settled_within(&tenant, &id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "ready", "{done}");
    let endpoint = done["endpoint"].as_str().unwrap().to_owned();
    assert_eq!(call(endpoint.clone()).await, (StatusCode::OK, "hello".to_owned()));

    upload(&tenant, &id, component("trap")).await;
    deploy(&tenant, &id).await;
    let done = settled_within(&tenant, &id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "ready", "{done}");
    let (status, body) = call(endpoint.clone()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("`unreachable`"), "the second component runs: {body}");

    let listed = tenant.get(&format!("/functions/{id}/deployments")).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let (second, first) = (&listed.body["deployments"][0], &listed.body["deployments"][1]);
    let rollback = |deployment: &Value| {
        let body = json!({"deployment_id": deployment["id"]});
        let (tenant, path) = (&tenant, format!("/functions/{id}/rollback"));
        async move { tenant.post(&path, body).await }
    };
    let rolled = rollback(first).await;
    assert_eq!(rolled.status, StatusCode::OK, "{}", rolled.body);
    let done = settled_within(&tenant, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "ready", "{done}");
    assert_eq!(call(endpoint.clone()).await, (StatusCode::OK, "hello".to_owned()));

    // The second image pruned from the registry (as its retention would): a rollback to it is
    // refused, naming it, and the first still serves.
    let repository = second["image_reference"].as_str().unwrap().rsplit_once(':').unwrap().0;
    let digest = second["image_digest"].as_str().unwrap();
    skopeo(&[
        "delete",
        "--tls-verify=false",
        &format!("docker://{repository}@{digest}"),
    ]);
    let refused = rollback(second).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.body["type"], "precondition_failed", "{}", refused.body);
    assert_eq!(refused.body["resource_id"], second["id"], "{}", refused.body);
    assert_eq!(call(endpoint).await, (StatusCode::OK, "hello".to_owned()));
    server.stop().await;
}
