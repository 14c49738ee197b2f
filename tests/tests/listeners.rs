//! The listeners against slow and hostile clients (issue 23, point 5): the REST API, the
//! router and its internal listener, and the embedded S3 endpoint tenants upload archives to,
//! time out a head that stalls and a connection left idle, serve a bounded number of
//! connections and a share of them to one client (one that sends its bodies a byte at a time
//! holds no more), and answer what the HTTP layer refuses (400, 408, 414, 431, 503) with a
//! Scaleway JSON body, as a hostile client sees over TCP; they cut a request body that stops
//! coming (408) but not one that comes slowly; the gRPC listener disconnects peers that do not
//! send their HTTP/2 preface and acknowledge its settings in time.

use nuage_tests::{TestServer, apps, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the tests set: a second to send a head, a second of idleness, two seconds without a
/// byte of a body being read, four connections.
fn tight(config: &mut nuage::Config) {
    for limits in [
        &mut config.gateway.connections,
        &mut config.router.connections,
        &mut config.storage.connections,
    ] {
        limits.header_read_timeout_ms = 1000;
        limits.idle_timeout_seconds = 1;
        limits.body_stall_timeout_ms = 2000;
        limits.max_connections = 4;
    }
}

/// The listeners a client can reach: the REST API, the router, the router's internal one, and
/// the embedded S3 endpoint (unless the suite runs against an external store).
fn listeners(server: &TestServer) -> Vec<(&'static str, String)> {
    let endpoints = server.server().endpoints();
    let mut listeners = vec![
        ("api", endpoints.api.unwrap().to_string()),
        ("router", endpoints.functions.unwrap().to_string()),
        ("router internal", endpoints.router_internal.unwrap().to_string()),
    ];
    listeners.extend(endpoints.s3.map(|s3| ("s3", s3.to_string())));
    listeners
}

/// An answer read off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    /// Returns the body, asserting it is a Scaleway error: a JSON object with a message and a
    /// type, sent as JSON.
    fn scaleway_error(&self, what: &str) -> Value {
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{what}: not JSON: {self:?}"
        );
        let body: Value =
            serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("{what}: the body is not JSON: {self:?}"));
        assert!(body["message"].is_string(), "{what}: {body}");
        assert!(body["type"].is_string(), "{what}: {body}");
        body
    }
}

/// Parses an answer read up to the end of the stream.
fn parse(bytes: &[u8], what: &str) -> Raw {
    let text = String::from_utf8_lossy(bytes);
    let Some((head, _)) = text.split_once("\r\n\r\n") else {
        panic!("{what}: no answer head in {text:?}");
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no status in {head:?}"));
    Raw {
        status,
        head: head.to_owned(),
        body: bytes[head.len() + 4..].to_vec(),
    }
}

/// Sends `request` (while reading, so a large one cannot block) and reads the answer until the
/// server closes the connection, for at most `limit`.
async fn exchange(address: &str, request: Vec<u8>, limit: Duration, what: &str) -> Raw {
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let sending = tokio::spawn(async move {
        // The server may close before it read everything: that is its right.
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(limit, reader.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "{what}: the connection was still open after {limit:?}; read so far: {:?}",
        String::from_utf8_lossy(&answer)
    );
    drop(sending.await);
    parse(&answer, what)
}

/// Connects and sends the start of a request head, and stops there.
async fn stall(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: stalled\r\nx-half-sent: ")
        .await
        .unwrap();
    stream
}

/// Reads from `stream` until the server closes it, for at most `limit`; returns what it sent.
async fn until_closed(stream: &mut TcpStream, limit: Duration, what: &str) -> Vec<u8> {
    let mut answer = Vec::new();
    let started = Instant::now();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await;
    assert!(
        matches!(read, Ok(Ok(_))),
        "{what}: still open after {:?} ({read:?}); read so far: {:?}",
        started.elapsed(),
        String::from_utf8_lossy(&answer)
    );
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_that_stalls_is_answered_408_and_disconnected() {
    let server = TestServer::start_with(tight).await;
    for (what, address) in listeners(&server) {
        let mut stream = stall(&address).await;
        let answer = until_closed(&mut stream, Duration::from_secs(5), what).await;
        let answer = parse(&answer, what);
        assert_eq!(answer.status, 408, "{what}: {answer:?}");
        answer.scaleway_error(what);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_left_idle_is_closed() {
    let server = TestServer::start_with(tight).await;
    for (what, address) in listeners(&server) {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        // Nothing sent at all...
        until_closed(&mut stream, Duration::from_secs(5), what).await;
        // ...and nothing more after a first request answered on a kept-alive connection.
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: idle\r\n\r\n")
            .await
            .unwrap();
        let answer = until_closed(&mut stream, Duration::from_secs(15), what).await;
        let answer = parse(&answer, what);
        assert!(answer.status < 500, "{what}: {answer:?}");
    }
    server.stop().await;
}

/// Connects, sends `head` (which announces a body of 1000 bytes) and the body's first 10
/// bytes, and stops there.
async fn stall_body(address: &str, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{\"name\": \"").await.unwrap();
    stream
}

/// A node handler that reads the body of what it is sent.
const BODY_LENGTH_JS: &[u8] = br#"
exports.handle = async (event) => ({ statusCode: 200, body: String((event.body || "").length) });
"#;

/// The internal secret the tests that reach the router's internal listener set.
const INTERNAL_SECRET: &str = "listeners-internal-secret";

/// A server with [`tight`] limits, `also` and an internal secret, and a deployed function
/// that reads the bodies it is sent; returns them with, for each listener, the address and
/// the head of a request (announcing a body of 1000 bytes) whose body its service reads: the
/// function's (through the router and its internal listener), an upload's, an API call's.
async fn reading_bodies(
    also: impl FnOnce(&mut nuage::Config),
) -> (TestServer, Value, Vec<(&'static str, String, String)>) {
    let server = TestServer::start_with(|config| {
        tight(config);
        also(config);
        config.internal_secret = Some(nuage_core::Secret::new(INTERNAL_SECRET));
    })
    .await;
    let endpoints = server.server().endpoints();
    let tenant = server.tenant().await;
    let function = apps::deployed_node(
        &tenant,
        "stalled-bodies",
        json!({"name": "reader", "max_scale": 4}),
        BODY_LENGTH_JS,
    )
    .await;
    let function_id = function["id"].as_str().unwrap();
    let endpoint = function["endpoint"].as_str().unwrap();
    let (router, key) = endpoint.strip_prefix("http://").unwrap().split_once('/').unwrap();
    let length = "content-length: 1000\r\n";
    let mut cases = vec![
        (
            "router",
            router.to_owned(),
            format!("POST /{key}/ HTTP/1.1\r\nhost: {router}\r\n{length}\r\n"),
        ),
        (
            "router internal",
            endpoints.router_internal.unwrap().to_string(),
            format!(
                "POST /{function_id}/ HTTP/1.1\r\nhost: internal\r\nauthorization: Bearer {INTERNAL_SECRET}\r\n{length}\r\n"
            ),
        ),
    ];
    if let Some(s3) = endpoints.s3 {
        let upload = tenant
            .get(&format!("/functions/{function_id}/upload-url?content_length=1000"))
            .await;
        assert_eq!(upload.status, StatusCode::OK, "{}", upload.body);
        let url = upload.body["url"].as_str().unwrap();
        let target = url.strip_prefix(&format!("http://{s3}")).unwrap();
        let mut head = format!("PUT {target} HTTP/1.1\r\nhost: {s3}\r\n");
        for (name, values) in upload.body["headers"].as_object().unwrap() {
            head.push_str(&format!("{name}: {}\r\n", values[0].as_str().unwrap()));
        }
        if !head.to_ascii_lowercase().contains("content-length") {
            head.push_str(length);
        }
        head.push_str("\r\n");
        cases.push(("s3", s3.to_string(), head));
    }
    // The store and the API after the router: by then the clients that deployed the function
    // (the tenant's, the builder's) have left their connections idle long enough for those
    // listeners to close them, so they take no place.
    let api = endpoints.api.unwrap();
    let path = tenant.api.strip_prefix(&tenant.base_url).unwrap();
    cases.push((
        "api",
        api.to_string(),
        format!(
            "POST {path}/namespaces HTTP/1.1\r\nhost: {api}\r\nx-auth-token: {}\r\ncontent-type: application/json\r\n{length}\r\n",
            tenant.secret_key
        ),
    ));
    (server, function, cases)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_is_answered_408_and_frees_its_place() {
    let (server, function, cases) = reading_bodies(|_| {}).await;
    let endpoint = function["endpoint"].as_str().unwrap();
    for (what, address, head) in cases {
        // Four bodies that stall take every place...
        let mut stalled = Vec::new();
        for _ in 0..4 {
            stalled.push(stall_body(&address, &head).await);
        }
        let request = b"GET /healthz HTTP/1.1\r\nhost: over\r\nconnection: close\r\n\r\n".to_vec();
        let over = exchange(&address, request.clone(), Duration::from_secs(5), what).await;
        assert_eq!(over.status, 503, "{what}: {over:?}");
        // ...until each is answered 408 and closed, once two seconds passed without a byte
        // (and a function's instance started to read it).
        for stream in &mut stalled {
            let answer = until_closed(stream, Duration::from_secs(20), what).await;
            let answer = parse(&answer, what);
            assert_eq!(answer.status, 408, "{what}: {answer:?}");
            let body = answer.scaleway_error(what);
            assert_eq!(body["message"], "the request body stopped arriving", "{what}");
        }
        served_again(&address, &request, what).await;
    }
    // The function still answers a body that comes whole.
    let whole = reqwest::Client::new()
        .post(endpoint)
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.text().await.unwrap(), "1000");
    server.stop().await;
}

/// Sends `request` to `address` again and again (up to 10 s) until the listener has a place
/// for it; returns the answer, asserting it is not a 503.
async fn served_again(address: &str, request: &[u8], what: &str) -> Raw {
    let served = eventually(
        Duration::from_secs(10),
        || exchange(address, request.to_vec(), Duration::from_secs(5), what),
        |answer| answer.status != 503,
    )
    .await;
    assert_ne!(served.status, 503, "{what}: {served:?}");
    served
}

/// Connects to `address` from `client`, another of loopback's addresses.
async fn connect_from(client: &str, address: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{client}:0").parse().unwrap()).unwrap();
    socket.connect(address.parse().unwrap()).await.unwrap()
}

/// Sends `head` on `stream`, then a byte of its body every 400 ms (under the stall timeout)
/// for `during`, while reading; returns what the server answered meanwhile (nothing while
/// the body is still awaited).
async fn trickle(stream: TcpStream, head: String, during: Duration) -> Vec<u8> {
    let (mut reader, mut writer) = stream.into_split();
    let sending = tokio::spawn(async move {
        let _ = writer.write_all(head.as_bytes()).await;
        let mut pace = tokio::time::interval(Duration::from_millis(400));
        let started = Instant::now();
        while started.elapsed() < during {
            pace.tick().await;
            // A refused connection is closed: its writes fail, which is the server's right.
            let _ = writer.write_all(b"x").await;
        }
        writer
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let _ = tokio::time::timeout(during, async {
        while let Ok(read @ 1..) = reader.read(&mut buffer).await {
            answer.extend_from_slice(&buffer[..read]);
        }
    })
    .await;
    let writer = sending.await.unwrap();
    drop(writer.reunite(reader));
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_holding_its_connections_open_leaves_the_others_places() {
    let (server, _, cases) = reading_bodies(|config| {
        for limits in [
            &mut config.gateway.connections,
            &mut config.router.connections,
            &mut config.storage.connections,
        ] {
            limits.max_connections_per_client = 2;
        }
    })
    .await;
    let request = b"GET /healthz HTTP/1.1\r\nhost: other\r\nconnection: close\r\n\r\n".to_vec();
    let during = Duration::from_secs(4);
    for (what, address, head) in cases {
        // A client at 127.0.0.2 asks for every place of the listener and sends each body a
        // byte at a time: never a stall, so no timeout cuts it...
        let mut trickling = Vec::new();
        for _ in 0..4 {
            let stream = connect_from("127.0.0.2", &address).await;
            trickling.push(tokio::spawn(trickle(stream, head.clone(), during)));
        }
        // ...and a client at 127.0.0.1 is served all the while, past every timeout.
        let started = Instant::now();
        while started.elapsed() < during - Duration::from_millis(500) {
            let answer = exchange(&address, request.clone(), Duration::from_secs(5), what).await;
            assert_ne!(answer.status, 503, "{what}, {:?} in: {answer:?}", started.elapsed());
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // The trickling client got its share, two places, and 503 for the others.
        let mut held = 0;
        for connection in trickling {
            let answer = connection.await.unwrap();
            if answer.is_empty() {
                held += 1;
                continue;
            }
            let answer = parse(&answer, what);
            assert_eq!(answer.status, 503, "{what}: {answer:?}");
            let body = answer.scaleway_error(what);
            assert_eq!(
                body["message"], "too many connections from your address, retry later",
                "{what}"
            );
        }
        assert_eq!(held, 2, "{what}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_get_503_and_stalled_ones_do_not_lock_others_out() {
    let server = TestServer::start_with(tight).await;
    for (what, address) in listeners(&server) {
        // Four connections take every place, and stall.
        let mut stalled = Vec::new();
        for _ in 0..4 {
            stalled.push(stall(&address).await);
        }
        let request = b"GET /healthz HTTP/1.1\r\nhost: over\r\nconnection: close\r\n\r\n".to_vec();
        let over = exchange(&address, request.clone(), Duration::from_secs(5), what).await;
        assert_eq!(over.status, 503, "{what}: {over:?}");
        assert_eq!(over.scaleway_error(what)["type"], "service_unavailable", "{what}");
        // Once the stalled heads time out, a well-behaved client is served.
        let served = served_again(&address, &request, what).await;
        if what == "api" {
            assert_eq!(served.status, 200, "{what}: {served:?}");
        }
        drop(stalled);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_http_layer_refuses_is_answered_with_a_json_body() {
    let server = TestServer::start().await;
    let long_uri = format!("/{}", "a".repeat(20 * 1024));
    let mut large_head = String::from("GET /healthz HTTP/1.1\r\nhost: large\r\n");
    for index in 0..50 {
        large_head.push_str(&format!("x-large-{index}: {}\r\n", "b".repeat(2048)));
    }
    large_head.push_str("\r\n");
    let cases = [
        (
            "a 20 KB request target",
            format!("GET {long_uri} HTTP/1.1\r\nhost: long\r\n\r\n").into_bytes(),
            414,
        ),
        ("100 KB of headers", large_head.into_bytes(), 431),
        ("a garbage request line", b"THIS IS NOT HTTP\r\n\r\n".to_vec(), 400),
        (
            "binary noise",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            400,
        ),
    ];
    for (listener, address) in listeners(&server) {
        for (case, request, status) in &cases {
            let what = format!("{listener}: {case}");
            let answer = exchange(&address, request.clone(), Duration::from_secs(10), &what).await;
            assert_eq!(answer.status, *status, "{what}: {answer:?}");
            assert_eq!(answer.scaleway_error(&what)["type"], "invalid_arguments", "{what}");
        }
        // The listener still serves a well-formed request.
        let request = b"GET /healthz HTTP/1.1\r\nhost: fine\r\nconnection: close\r\n\r\n".to_vec();
        let answer = exchange(&address, request, Duration::from_secs(10), listener).await;
        assert!(answer.status < 500, "{listener}: {answer:?}");
    }
    server.stop().await;
}

/// Asks the gRPC health service about iam, with the internal secret `secret`, on a connection
/// of its own.
async fn grpc_health(address: &str, secret: &str) -> Result<i32, String> {
    grpc_check(grpc_channel(address).await?, secret).await
}

/// Returns a gRPC connection to `address`.
async fn grpc_channel(address: &str) -> Result<tonic::transport::Channel, String> {
    tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|error| error.to_string())
}

/// Asks the gRPC health service on `channel` about iam, with the internal secret `secret`.
async fn grpc_check(channel: tonic::transport::Channel, secret: &str) -> Result<i32, String> {
    let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
        service: "nuage.iam.v1.Iam".to_owned(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {secret}").parse().unwrap());
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let answer = client.check(request).await.map_err(|status| status.to_string())?;
    Ok(answer.into_inner().status)
}

/// Connects to the gRPC listener at `address`; returns the stream and the first 12 bytes the
/// server sends, which it speaks first: HTTP/2 settings where it serves, a 503 where it has no
/// place.
async fn connect_and_read_first(address: &str) -> (TcpStream, [u8; 12]) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let mut first = [0u8; 12];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut first)).await;
    assert!(matches!(read, Ok(Ok(_))), "the server said nothing: {read:?}");
    (stream, first)
}

/// Asks the gRPC listener at `address` for its health until it answers (up to 10 s), and
/// asserts it did.
async fn grpc_serves_again(address: &str, secret: &str) {
    let served = eventually(
        Duration::from_secs(10),
        || grpc_health(address, secret),
        |answer| answer.is_ok(),
    )
    .await;
    assert!(served.is_ok(), "{served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_listener_serves_a_bounded_number_of_connections() {
    let secret = "listeners-internal-secret";
    let server = TestServer::start_with(|config| {
        config.grpc_max_connections = 32;
        config.internal_secret = Some(nuage_core::Secret::new(secret));
    })
    .await;
    let address = server.server().endpoints().grpc.unwrap().to_string();
    assert!(grpc_health(&address, secret).await.is_ok());
    // Every place taken (the process's own clients hold a few) and one more: the server
    // speaks first on each, HTTP/2 settings where it serves, a 503 where it has no place.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..=32 {
        let (stream, first) = connect_and_read_first(&address).await;
        if first.starts_with(b"HTTP/1.1 503") {
            refused += 1;
        } else {
            held.push(stream);
        }
    }
    assert!(refused > 0, "no connection over the limit was refused");
    let over = grpc_health(&address, secret).await;
    assert!(over.is_err(), "served over the limit: {over:?}");
    // Once the stalled connections go, the listener serves again.
    drop(held);
    grpc_serves_again(&address, secret).await;
    server.stop().await;
}

/// The fixed octets that open every HTTP/2 client connection.
const HTTP2_MAGIC: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Returns the whole HTTP/2 client preface: the fixed octets and a SETTINGS frame with no
/// setting.
fn http2_preface() -> Vec<u8> {
    let mut preface = HTTP2_MAGIC.to_vec();
    preface.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    preface
}

/// Reads from `reader` until the server ends the connection (an end of stream or a reset), for
/// at most `limit`; returns whether it ended.
async fn ended(reader: &mut tokio::net::tcp::OwnedReadHalf, limit: Duration) -> bool {
    let mut scratch = [0u8; 1024];
    let reading = async {
        while let Ok(read) = reader.read(&mut scratch).await {
            if read == 0 {
                break;
            }
        }
    };
    tokio::time::timeout(limit, reading).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_peers_without_a_preface_and_settings_ack_in_time_are_disconnected_and_free_their_place() {
    let secret = "listeners-internal-secret";
    let server = TestServer::start_with(|config| {
        config.grpc_max_connections = 32;
        config.grpc_preface_timeout_ms = 1000;
        config.internal_secret = Some(nuage_core::Secret::new(secret));
    })
    .await;
    let address = server.server().endpoints().grpc.unwrap().to_string();
    // An honest caller, connected before and still connected after the deadlines pass.
    let honest = grpc_channel(&address).await.expect("a gRPC connection");
    assert!(grpc_check(honest.clone(), secret).await.is_ok());
    // Every place taken, a third by peers that send nothing, a third by peers that send the
    // preface a byte every 200 ms (it would take them 4.8 s), a third by peers that send the
    // whole preface at once and then nothing (HTTP/2 keep-alive alone would find them out
    // after 80 s), and one more connection, refused.
    let mut held = Vec::new();
    let mut refused = 0;
    for index in 0..=32 {
        let (stream, first) = connect_and_read_first(&address).await;
        if first.starts_with(b"HTTP/1.1 503") {
            refused += 1;
            continue;
        }
        // A write half dropped would send an end of stream: each is kept, silent or writing.
        let (reader, mut writer) = stream.into_split();
        // A trickling one tells whether it could send the whole preface.
        let writer = if index % 3 == 1 {
            tokio::spawn(async move {
                for byte in HTTP2_MAGIC {
                    if writer.write_all(&[*byte]).await.is_err() {
                        return (writer, Some(false));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                (writer, Some(true))
            })
        } else if index % 3 == 2 {
            tokio::spawn(async move {
                writer.write_all(&http2_preface()).await.unwrap();
                (writer, None)
            })
        } else {
            tokio::spawn(async move { (writer, None) })
        };
        held.push((reader, writer));
    }
    assert!(refused > 0, "no connection over the limit was refused");
    // Each is disconnected once its deadline passed, silent, trickling or silent after its
    // preface.
    let started = Instant::now();
    for (index, (reader, _)) in held.iter_mut().enumerate() {
        let limit = Duration::from_secs(10).saturating_sub(started.elapsed());
        assert!(
            ended(reader, limit).await,
            "connection {index} (of {}) still open after {:?}",
            held.len(),
            started.elapsed()
        );
    }
    // The trickling ones were cut before their preface was in.
    let mut writers = Vec::new();
    for (_, writer) in &mut held {
        let (writer, sent_all) = writer.await.expect("the writer ends");
        assert_ne!(sent_all, Some(true), "a trickled preface went in whole");
        writers.push(writer);
    }
    // Their places are free while their clients still hold their ends, and the honest
    // connection still serves.
    grpc_serves_again(&address, secret).await;
    let again = grpc_check(honest, secret).await;
    assert!(again.is_ok(), "the honest connection: {again:?}");
    drop((held, writers));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_uploaded_slower_than_the_store_listeners_timeouts_still_goes_in() {
    let server = TestServer::start_with(tight).await;
    let Some(s3) = server.server().endpoints().s3 else {
        // An external store: not nuage's listener.
        server.stop().await;
        return;
    };
    let tenant = server.tenant().await;
    let runtime = apps::runtime(&tenant, "").await;
    let function = apps::function(&tenant, "slow-upload", json!({"name": "slow", "runtime": runtime})).await;
    let function_id = function["id"].as_str().unwrap();
    let handler: Vec<u8> = (0..40_000)
        .flat_map(|line| format!("// line {line} of a large handler\n").into_bytes())
        .collect();
    let archive = apps::zip(&[("handler.js", handler.as_slice()), ("package.json", b"{}")]);
    let upload = tenant
        .get(&format!(
            "/functions/{function_id}/upload-url?content_length={}",
            archive.len()
        ))
        .await;
    assert_eq!(upload.status, StatusCode::OK, "{}", upload.body);
    let url = upload.body["url"].as_str().unwrap();
    let target = url
        .strip_prefix(&format!("http://{s3}"))
        .unwrap_or_else(|| panic!("{url} is not on the embedded store {s3}"));
    let mut head = format!("PUT {target} HTTP/1.1\r\nhost: {s3}\r\nconnection: close\r\n");
    for (name, values) in upload.body["headers"].as_object().unwrap() {
        head.push_str(&format!("{name}: {}\r\n", values[0].as_str().unwrap()));
    }
    head.push_str("\r\n");
    // The body comes in four parts, each after a pause longer than the idle and head timeouts
    // (a second each): an upload in progress is not idle. It takes over 5 s in all, more than
    // the body stall timeout (2 s), which bounds each pause, not the upload.
    let stream = TcpStream::connect(s3).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    for part in archive.chunks(archive.len().div_ceil(4)) {
        tokio::time::sleep(Duration::from_millis(1300)).await;
        writer.write_all(part).await.unwrap();
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut answer)).await;
    assert!(matches!(read, Ok(Ok(_))), "no answer: {read:?}");
    let answer = parse(&answer, "the slow upload");
    assert_eq!(answer.status, 200, "{answer:?}");
    // The archive is in the store, byte for byte.
    let download = tenant.get(&format!("/functions/{function_id}/download-url")).await;
    assert_eq!(download.status, StatusCode::OK, "{}", download.body);
    let response = reqwest::get(download.body["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().to_vec(), archive);
    server.stop().await;
}
