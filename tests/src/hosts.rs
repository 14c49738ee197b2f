//! Test hosts of a test's own, for what crosses a network: each a network namespace joined to
//! this machine by a veth pair, serving a word over HTTP.

use crate::eventually;

/// A test host of this test's own: a network namespace joined to this machine by a veth pair,
/// at `<prefix>.2` (this machine at `<prefix>.1`), serving `name` over HTTP on port 8000.
pub struct TestHost {
    namespace: String,
    server: std::process::Child,
}

fn ip(arguments: &[&str]) {
    let status = std::process::Command::new("ip").args(arguments).status().unwrap();
    assert!(status.success(), "ip {arguments:?}");
}

impl TestHost {
    /// Starts one at `<prefix>.2` answering `name`, and waits until it listens.
    pub async fn start(prefix: &str, name: &str) -> Self {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let (namespace, outside, inside) = (format!("nuage-t-{tag}"), format!("nt{tag}a"), format!("nt{tag}b"));
        ip(&["netns", "add", &namespace]);
        ip(&["link", "add", &outside, "type", "veth", "peer", "name", &inside]);
        ip(&["link", "set", &inside, "netns", &namespace]);
        ip(&["addr", "add", &format!("{prefix}.1/30"), "dev", &outside]);
        ip(&["link", "set", &outside, "up"]);
        ip(&[
            "-n",
            &namespace,
            "addr",
            "add",
            &format!("{prefix}.2/30"),
            "dev",
            &inside,
        ]);
        ip(&["-n", &namespace, "link", "set", &inside, "up"]);
        ip(&["-n", &namespace, "link", "set", "lo", "up"]);
        let answer = format!(
            "import http.server\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        \
             self.send_response(200); self.end_headers(); self.wfile.write(b'{name}')\n\
             http.server.HTTPServer(('{prefix}.2', 8000), H).serve_forever()"
        );
        let server = std::process::Command::new("ip")
            .args(["netns", "exec", &namespace, "python3", "-c", &answer])
            .spawn()
            .unwrap();
        let host = Self { namespace, server };
        let address = format!("{prefix}.2:8000");
        let listening = eventually(
            std::time::Duration::from_secs(10),
            || async { tokio::net::TcpStream::connect(&address).await.is_ok() },
            |listening| *listening,
        )
        .await;
        assert!(listening, "the test host listens");
        host
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        // Deleting the namespace deletes its end of the pair, and so the pair.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .status();
    }
}

/// A service of this machine's own, listening at an address of it, that counts the
/// connections reaching it and answers each request `200 host`: what a tenant's code must
/// never reach.
pub struct Witness {
    /// `http://<address>/`.
    pub url: String,
    reached: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Witness {
    /// Listens at `address` (a port of 0 takes a free one).
    pub async fn bind(address: &str) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = reached.clone();
        tokio::spawn(async move {
            while let Ok((mut connection, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut request = [0_u8; 4096];
                let _ = connection.read(&mut request).await;
                let _ = connection
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nhost")
                    .await;
            }
        });
        Self { url, reached }
    }

    /// Returns how many connections reached it so far.
    pub fn reached(&self) -> usize {
        self.reached.load(std::sync::atomic::Ordering::SeqCst)
    }
}
