//! Harness for the end-to-end suites: boots the real nuage server in-process on ephemeral
//! ports, with a fresh database (SQLite in a temporary directory, or a new PostgreSQL database
//! when `NUAGE_TEST_DATABASE_URL` is set), and drives its REST API with reqwest.

pub mod apps;
pub mod components;
pub mod conformance;
pub mod hosts;

use nuage::{Config, RunningServer};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Connection;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The environment variable that selects PostgreSQL: a URL whose server may create databases.
pub const DATABASE_URL_VARIABLE: &str = "NUAGE_TEST_DATABASE_URL";

/// The environment variable that selects an external S3 store (`http://127.0.0.1:8333`);
/// `NUAGE_TEST_S3_ACCESS_KEY` and `NUAGE_TEST_S3_SECRET_KEY` give its credentials. Servers
/// share one bucket (`nuage-tests`; object keys hold function ids, so they never collide):
/// SeaweedFS gives each bucket volumes of its own and runs out of them.
pub const S3_ENDPOINT_VARIABLE: &str = "NUAGE_TEST_S3_ENDPOINT";

/// The environment variable that names a registry (`127.0.0.1:5000`, plain HTTP) the builder
/// also pushes images to.
pub const REGISTRY_VARIABLE: &str = "NUAGE_TEST_REGISTRY";

/// A server running for one test.
pub struct TestServer {
    /// Its configuration (the data dir and database it uses).
    pub config: Config,
    /// `http://127.0.0.1:port` of the REST API, or empty without the gateway role.
    pub base_url: String,
    /// `http://127.0.0.1:port` of the router (function endpoints), or empty without it.
    pub functions_url: String,
    server: Option<RunningServer>,
    postgres: Option<(String, String)>,
    _data_dir: tempfile::TempDir,
}

/// Returns `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (head, query) = url
        .split_once('?')
        .map_or((url, None), |(head, query)| (head, Some(query)));
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let base = match head[scheme_end..].find('/') {
        Some(slash) => &head[..scheme_end + slash],
        None => head,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

impl TestServer {
    /// Starts a server with the default configuration.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server with the default configuration and creates one tenant on it.
    pub async fn with_tenant() -> (Self, Tenant) {
        let server = Self::start().await;
        let tenant = server.tenant().await;
        (server, tenant)
    }

    /// Starts a server after `adjust` has changed its configuration and creates one tenant on
    /// it.
    pub async fn start_with_tenant(adjust: impl FnOnce(&mut Config)) -> (Self, Tenant) {
        let server = Self::start_with(adjust).await;
        let tenant = server.tenant().await;
        (server, tenant)
    }

    /// Starts a server after `adjust` has changed its configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().expect("temporary data dir");
        let mut config = Config {
            data_dir: data_dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            grpc_listen: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        };
        config.router.listen = "127.0.0.1:0".parse().unwrap();
        config.router.internal_listen = "127.0.0.1:0".parse().unwrap();
        // 2048-bit namespace keys: four times faster to make than the default 4096.
        config.tokens.key_bits = 2048;
        // No key pairs made ahead: most test servers would never use them, and each costs a core
        // for a while (`namespaces::a_new_namespace_takes_a_key_pair_made_ahead…` tests the stock).
        config.tokens.key_stock = 0;
        // The operator's credential for /metrics (see `TestServer::metrics`).
        config.gateway.metrics_token = Some(nuage_core::Secret::new(format!("metrics-{}", Uuid::new_v4())));
        let mut postgres = None;
        if let Ok(admin_url) = std::env::var(DATABASE_URL_VARIABLE) {
            let name = format!("nuage_t_{}", Uuid::new_v4().simple());
            administer(&admin_url, &format!("create database {name}")).await;
            config.database_url = Some(with_database(&admin_url, &name));
            postgres = Some((admin_url, name));
        }
        if let Ok(endpoint) = std::env::var(S3_ENDPOINT_VARIABLE) {
            let variable = |name: &str| {
                std::env::var(name).unwrap_or_else(|_| panic!("{name} is required with {S3_ENDPOINT_VARIABLE}"))
            };
            config.storage.endpoint = Some(endpoint);
            config.storage.access_key = Some(variable("NUAGE_TEST_S3_ACCESS_KEY"));
            config.storage.secret_key = Some(nuage_core::Secret::new(variable("NUAGE_TEST_S3_SECRET_KEY")));
            config.storage.bucket = "nuage-tests".to_owned();
        }
        if let Ok(registry) = std::env::var(REGISTRY_VARIABLE) {
            config.builder.registry = Some(registry);
            config.builder.registry_insecure = true;
        }
        adjust(&mut config);
        let server = nuage::start(config.clone()).await.expect("server starts");
        // Empty when this server runs no gateway role.
        let base_url = server
            .endpoints()
            .api
            .map(|api| format!("http://{api}"))
            .unwrap_or_default();
        let functions_url = server
            .endpoints()
            .functions
            .map(|address| format!("http://{address}"))
            .unwrap_or_default();
        Self {
            config,
            base_url,
            functions_url,
            server: Some(server),
            postgres,
            _data_dir: data_dir,
        }
    }

    /// Returns the running server.
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("server running")
    }

    /// Takes the running server out, e.g. to shut it down by hand.
    pub fn take_server(&mut self) -> RunningServer {
        self.server.take().expect("server running")
    }

    /// Creates a new tenant through the admin code path, with its own client.
    pub async fn tenant(&self) -> Tenant {
        let key = nuage::admin::create_tenant(&self.config, "test tenant")
            .await
            .expect("tenant created");
        Tenant::new(&self.base_url, key)
    }

    /// Returns `/metrics` as the operator reads it, with the configured bearer token.
    pub async fn metrics(&self) -> String {
        let token = self.config.gateway.metrics_token.as_ref().expect("a metrics token");
        let response = reqwest::Client::new()
            .get(format!("{}/metrics", self.base_url))
            .bearer_auth(token.expose())
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), StatusCode::OK, "/metrics as the operator");
        response.text().await.expect("body read")
    }

    /// Returns the database URL the server uses.
    pub fn database_url(&self) -> String {
        self.config.database_url()
    }

    /// Returns a connection to the database the server uses.
    pub async fn database(&self) -> sqlx::AnyConnection {
        connect(&self.database_url()).await
    }

    /// Stops the server and drops its PostgreSQL database.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
        if let Some((admin_url, name)) = self.postgres.take() {
            administer(&admin_url, &format!("drop database if exists {name} with (force)")).await;
        }
    }
}

/// Makes `config` run every role but `remote`, which it reaches over gRPC at `url`, with the
/// internal secret `secret`: a server of a split deployment whose other processes serve `remote`.
pub fn serve_all_but(config: &mut Config, remote: &[nuage::Role], url: &str, secret: &str) {
    config.roles = nuage::Role::ALL
        .into_iter()
        .filter(|role| !remote.contains(role))
        .collect();
    for role in remote {
        let service = match role {
            nuage::Role::Functions => &mut config.services.functions,
            nuage::Role::Builder => &mut config.services.builder,
            nuage::Role::Containers => &mut config.services.containers,
            nuage::Role::Crons => &mut config.services.crons,
            other => panic!("no test runs {} remotely", other.name()),
        };
        *service = Some(url.to_owned());
    }
    config.internal_secret = Some(nuage_core::Secret::new(secret));
}

/// Runs `statement` (which makes or drops a test's database) on the PostgreSQL server
/// `admin_url` names.
async fn administer(admin_url: &str, statement: &str) {
    let mut connection = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("PostgreSQL reachable");
    if let Err(error) = sqlx::query(statement).execute(&mut connection).await {
        panic!("`{statement}`: {error}");
    }
    connection.close().await.ok();
}

/// A tenant and an HTTP client that authenticates as it.
#[derive(Clone)]
pub struct Tenant {
    /// The organization.
    pub organization_id: Uuid,
    /// Its default project.
    pub project_id: Uuid,
    /// The API key's access key.
    pub access_key: String,
    /// The API key's secret, sent as `X-Auth-Token`.
    pub secret_key: String,
    /// The API prefix up to the region: `http://.../functions/v1alpha2/regions/fr-par`.
    pub api: String,
    /// `http://127.0.0.1:port`.
    pub base_url: String,
    /// The spec its answers are checked against.
    pub spec: conformance::Spec,
    client: reqwest::Client,
}

/// An answer: status, headers and the body parsed as JSON.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The JSON body.
    pub body: Value,
}

/// Returns the lines application `application_id` printed so far (the first 100, oldest first)
/// that are JSON, parsed: what the recorder handlers of the suites print for each request.
pub async fn printed(tenant: &Tenant, application_id: &str) -> Vec<Value> {
    let answer = tenant
        .get(&format!(
            "/logs?application_id={application_id}&order_by=timestamp_asc&page_size=100"
        ))
        .await;
    ok(&answer)["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str(line["message"].as_str()?).ok())
        .collect()
}

/// Returns the string `field` of each element of the JSON array `list`.
pub fn fields<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|element| element[field].as_str().unwrap())
        .collect()
}

/// GETs `url` as anyone would, without an API key; returns the body parsed as JSON.
pub async fn get_json(url: impl reqwest::IntoUrl) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Returns the body of `answer`, asserting it is a 200.
pub fn ok(answer: &Answer) -> &Value {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    &answer.body
}

impl Answer {
    /// Returns the argument a 400 `invalid_arguments` answer names first, asserting it is one.
    pub fn refused_argument(&self) -> String {
        assert_eq!(self.status, StatusCode::BAD_REQUEST, "{}", self.body);
        assert_eq!(self.body["type"], "invalid_arguments", "{}", self.body);
        self.body["details"][0]["argument_name"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Tenant {
    /// Returns a client for `key` on the server at `base_url`.
    pub fn new(base_url: &str, key: nuage_iam::NewApiKey) -> Self {
        Self {
            organization_id: key.organization_id,
            project_id: key.project_id,
            access_key: key.access_key.as_str().to_owned(),
            secret_key: key.secret_key.expose(),
            api: format!("{base_url}/functions/v1alpha2/regions/fr-par"),
            base_url: base_url.to_owned(),
            spec: conformance::Spec::FunctionsV1alpha2,
            client: reqwest::Client::new(),
        }
    }

    /// Returns the same tenant speaking `spec` (`/functions/v1beta1/...`), in `region`.
    pub fn speaking(&self, spec: conformance::Spec, region: &str) -> Self {
        Self {
            api: format!("{}{}", self.base_url, spec.prefix().replace("{region}", region)),
            spec,
            ..self.clone()
        }
    }

    /// Sends a request to `path` (relative to the region prefix unless it starts with
    /// `http`), with `body` as JSON when given, and checks the answer is a JSON object with a
    /// request id, and that a 200 body fits its spec's schema for the route.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.api)
        };
        let mut request = self
            .client
            .request(method.clone(), url)
            .header("X-Auth-Token", &self.secret_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = answer(request).await;
        if answer.status == StatusCode::OK
            && !path.starts_with("http")
            && let Err(problem) = conformance::check_response(self.spec, method.as_str(), path, &answer.body)
        {
            panic!(
                "{method} {path}: the answer breaks the {:?} spec: {problem}\n{}",
                self.spec, answer.body
            );
        }
        answer
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// PATCH with a JSON body.
    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Answer {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// POSTs `body` to `path`, asserting a 200; returns the id of what it created.
    pub async fn create(&self, path: &str, body: Value) -> String {
        let answer = self.post(path, body).await;
        ok(&answer)["id"].as_str().unwrap().to_owned()
    }

    /// POSTs each body of `cases` to `path`, asserting each is refused with a 400 naming its
    /// argument.
    pub async fn assert_each_refused<'a>(&self, path: &str, cases: impl IntoIterator<Item = (Value, &'a str)>) {
        for (body, argument) in cases {
            let answer = self.post(path, body.clone()).await;
            assert_eq!(answer.refused_argument(), argument, "{body}: {}", answer.body);
        }
    }

    /// GETs each path of `cases`, asserting each is refused with a 400 naming its argument.
    pub async fn assert_each_get_refused<'a>(&self, cases: impl IntoIterator<Item = (&'a str, &'a str)>) {
        for (path, argument) in cases {
            assert_eq!(self.get(path).await.refused_argument(), argument, "GET {path}");
        }
    }

    /// GETs each list of `lists` as a tenant that owns none of what they name, asserting each
    /// answers 404 or lists nothing.
    pub async fn assert_lists_nothing(&self, lists: impl IntoIterator<Item = String>) {
        for list in lists {
            let listed = self.get(&list).await;
            assert!(
                listed.status == StatusCode::NOT_FOUND || listed.body["total_count"] == 0,
                "{list}: {}",
                listed.body
            );
        }
    }

    /// Checks, as the attack of this tenant on another's resource at `path`: it can neither
    /// rename nor delete it (404 both), and `owner` still reads it, named `name`.
    pub async fn assert_kept_from_me(&self, owner: &Tenant, path: &str, name: &str) {
        let changed = self.patch(path, serde_json::json!({"name": "theirs"})).await;
        assert_eq!(changed.status, StatusCode::NOT_FOUND, "{}", changed.body);
        assert_eq!(self.delete(path).await.status, StatusCode::NOT_FOUND);
        let mine = owner.get(path).await;
        assert_eq!(ok(&mine)["name"], name);
    }

    /// POSTs `count` namespace creates at once, each from a task of its own, naming them
    /// `{prefix}-0`, `{prefix}-1`...; returns their answers in that order.
    pub async fn post_namespaces_at_once(&self, prefix: &str, count: usize) -> Vec<Answer> {
        let creates: Vec<_> = (0..count)
            .map(|index| {
                let tenant = self.clone();
                let name = format!("{prefix}-{index}");
                tokio::spawn(async move { tenant.post("/namespaces", serde_json::json!({"name": name})).await })
            })
            .collect();
        let mut answers = Vec::with_capacity(count);
        for create in creates {
            answers.push(create.await.unwrap());
        }
        answers
    }

    /// Creates a namespace and returns the create answer's body, asserting success.
    pub async fn create_namespace(&self, name: &str) -> Value {
        let answer = self.post("/namespaces", serde_json::json!({"name": name})).await;
        assert_eq!(answer.status, StatusCode::OK, "create {name}: {}", answer.body);
        answer.body
    }

    /// Creates a namespace, waits until it is `ready` and returns it.
    pub async fn ready_namespace(&self, name: &str) -> Value {
        let created = self.create_namespace(name).await;
        self.wait_ready(created["id"].as_str().unwrap()).await
    }

    /// Creates a namespace, waits until it is `ready` and returns its id.
    pub async fn ready_namespace_id(&self, name: &str) -> String {
        self.ready_namespace(name).await["id"].as_str().unwrap().to_owned()
    }

    /// Polls a resource until `done` holds for its answer, for at most `timeout`.
    pub async fn poll_until(&self, path: &str, timeout: Duration, done: impl Fn(&Answer) -> bool) -> Answer {
        let answer = eventually(timeout, || self.get(path), &done).await;
        assert!(
            done(&answer),
            "{path} did not converge in {timeout:?}; last: {answer:?}"
        );
        answer
    }

    /// Polls a resource until it is gone (404), for at most `timeout`; returns that answer.
    pub async fn wait_gone(&self, path: &str, timeout: Duration) -> Answer {
        self.poll_until(path, timeout, |answer| answer.status == StatusCode::NOT_FOUND)
            .await
    }

    /// Deletes `path`, asserting the answer says `deleting`, then polls until it is gone (404),
    /// for at most `timeout`; returns the delete's answer and that 404.
    pub async fn delete_until_gone(&self, path: &str, timeout: Duration) -> (Answer, Answer) {
        let deleted = self.delete(path).await;
        assert_eq!(deleted.body["status"], "deleting", "DELETE {path}: {}", deleted.body);
        let gone = self.wait_gone(path, timeout).await;
        (deleted, gone)
    }

    /// Waits until a namespace is `ready` and returns it.
    pub async fn wait_ready(&self, namespace_id: &str) -> Value {
        self.poll_until(&format!("/namespaces/{namespace_id}"), Duration::from_secs(10), |a| {
            a.body["status"] == "ready"
        })
        .await
        .body
    }
}

/// Evaluates to the binary of the Go test server ([`apps::go_server_binary`]), the image of
/// the suites' containers, or with an argument to the binary of that Go program
/// ([`apps::go_binary`]); where no Go toolchain can build it, returns from the test, which is
/// then skipped (.ci/run installs Go).
#[macro_export]
macro_rules! go_server_or_skip {
    () => {
        $crate::go_server_or_skip!($crate::apps::SERVER_GO)
    };
    ($source:expr) => {
        match $crate::apps::go_binary($source) {
            Some(binary) => binary,
            None => {
                eprintln!("skipped: no Go toolchain to build the test container image");
                return;
            }
        }
    };
}

/// How often [`eventually`] looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Waits for a condition instead of a fixed time: calls `probe` until `done` holds for what it
/// returns, or until `limit` has passed, and returns what it returned last. The caller asserts
/// on it, so that a failure says what was seen.
pub async fn eventually<T, Seen>(limit: Duration, probe: impl FnMut() -> Seen, done: impl Fn(&T) -> bool) -> T
where
    Seen: Future<Output = T>,
{
    eventually_every(POLL_INTERVAL, limit, probe, done).await
}

/// [`eventually`], looking again every `interval`: for a test that must act the moment a
/// condition holds.
pub async fn eventually_every<T, Seen>(
    interval: Duration,
    limit: Duration,
    mut probe: impl FnMut() -> Seen,
    done: impl Fn(&T) -> bool,
) -> T
where
    Seen: Future<Output = T>,
{
    let deadline = Instant::now() + limit;
    loop {
        let seen = probe().await;
        if done(&seen) || Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(interval).await;
    }
}

/// Sends a prepared request and returns its answer, asserting the invariants of every answer:
/// a JSON object body and an `x-request-id` header.
pub async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body read");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: body is not JSON: {text:?}"));
    assert!(body.is_object(), "{status}: body is not a JSON object: {text}");
    assert!(headers.contains_key("x-request-id"), "{status}: no x-request-id");
    assert!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json")),
        "{status}: content type is not JSON"
    );
    Answer { status, headers, body }
}

/// A `nuage serve` child process, killed (SIGKILL) when dropped.
pub struct Process(pub std::process::Child);

impl Process {
    /// Starts `binary serve` with `args` and `NUAGE_*` settings from `env`, in `dir` (which
    /// also serves as its data dir). `binary` is `env!("CARGO_BIN_EXE_nuage")` of the suite.
    pub fn serve(
        binary: &str,
        dir: &std::path::Path,
        args: &[impl AsRef<std::ffi::OsStr>],
        env: &[(String, String)],
    ) -> Self {
        let mut command = std::process::Command::new(binary);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .current_dir(dir)
            .env("NUAGE_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).expect("log file"));
        for (key, value) in env {
            command.env(key, value);
        }
        Self(command.spawn().expect("nuage serve starts"))
    }

    /// Waits until the process accepts connections on loopback `port`; panics if it exits
    /// first or takes over 60 s.
    pub async fn wait_listening(&mut self, port: u16) {
        let child = &mut self.0;
        let listening = eventually(
            Duration::from_secs(60),
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("nuage serve exited before it listened on {port}: {status}");
                }
                async move { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() }
            },
            |listening| *listening,
        )
        .await;
        assert!(listening, "nuage serve did not listen on {port} within 60 s");
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Listens on loopback, accepts every connection and never answers: a dependency that hangs.
/// Returns its address; it hangs until the task is aborted or dropped with the runtime.
pub async fn hung_listener() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("its address");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    (address, task)
}

/// Sends the head and part of the body of a create request, once the gateway is reading it,
/// and returns the stream with the rest still to send. The request asks `100-continue`, so the
/// gateway says when its handler starts reading the body: from then on the request is in
/// flight (a shutdown waits for it), not a connection that merely sent bytes.
pub async fn start_slow_create(tenant: &Tenant, body: &[u8], sent: usize) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = tenant.base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /functions/v1alpha2/regions/fr-par/namespaces HTTP/1.1\r\nhost: {address}\r\nx-auth-token: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
        tenant.secret_key,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "the gateway closed: {interim:?}"
        );
        interim.push(byte[0]);
    }
    let interim = String::from_utf8_lossy(&interim);
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    stream.write_all(&body[..sent]).await.unwrap();
    stream
}

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Returns a connection to the database at `database_url` (SQLite or PostgreSQL).
pub async fn connect(database_url: &str) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(database_url).await.unwrap()
}

/// Returns every text column of every row of `table` that contains `needle`.
pub async fn rows_containing(database_url: &str, table: &str, needle: &str) -> Vec<String> {
    use sqlx::Row;
    let mut database = connect(database_url).await;
    let rows = sqlx::query(&format!("select * from {table}"))
        .fetch_all(&mut database)
        .await
        .unwrap();
    let mut found = Vec::new();
    for row in rows {
        for index in 0..row.len() {
            if let Ok(text) = row.try_get::<String, _>(index)
                && text.contains(needle)
            {
                found.push(format!("{table}: {text}"));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(
            super::with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
