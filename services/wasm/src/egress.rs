//! Outgoing HTTP of a guest, under the same policy as other instances: refused unless the
//! runner lets instances reach public addresses (`runner.egress = "public"`), and then never
//! to the host's loopback, private, link-local or other non-public ranges, nor to any address of
//! the host itself: a guest runs inside the router, on the host. Each request, plain or
//! HTTPS, goes over a connection to the address that was checked, never to the name resolved
//! again.

use http::uri::{PathAndQuery, Scheme};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// A guest's wait for a connection, for an answer's first byte and between two of its bytes,
/// when it sets none, as wasi-http's own sender.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What a guest's outgoing requests may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Egress {
    /// Public addresses; otherwise nothing.
    pub public: bool,
}

/// What wasi-http drives until a connection ends.
type Driving = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// What `send_request` hands back to wasi-http.
type Sent = Box<dyn Future<Output = Result<(http::Response<WasiBody>, Driving), Error>> + Send>;

impl WasiHttpHooks for Egress {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        drop(fut);
        let public = self.public;
        Box::new(async move {
            if !public {
                return Err(Error::HttpRequestDenied);
            }
            let (host, port) = destination(&request)?;
            let addresses = nuage_core::validate::public_addresses((host.as_str(), port))
                .await
                .map_err(|_| Error::DestinationNotFound)?
                .ok_or(Error::DestinationIpProhibited)?;
            // Resolving the name again on connecting would let a name that answers a public
            // address first and a loopback one next (DNS rebinding) reach the router's host:
            // both senders connect to the address that was checked.
            if request.uri().scheme() == Some(&Scheme::HTTPS) {
                return send_tls(request, addresses[0], &host, options).await;
            }
            let request = pinned(request, addresses[0])?;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as Driving))
        })
    }
}

/// Returns a plain-HTTP `request` sent to `address`, the one that was checked, with its
/// `Host` as the guest named it.
fn pinned(mut request: http::Request<WasiBody>, address: SocketAddr) -> Result<http::Request<WasiBody>, Error> {
    named_host(&mut request)?;
    let uri: http::Uri = format!("http://{address}{}", origin_form(&request))
        .parse()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    *request.uri_mut() = uri;
    Ok(request)
}

/// Sets `request`'s `Host` to the authority the guest named, unless it set one.
fn named_host(request: &mut http::Request<WasiBody>) -> Result<(), Error> {
    let authority = request.uri().authority().ok_or(Error::HttpRequestUriInvalid)?.clone();
    if !request.headers().contains_key(http::header::HOST) {
        let host = http::HeaderValue::from_str(authority.as_str()).map_err(|_| Error::HttpRequestUriInvalid)?;
        request.headers_mut().insert(http::header::HOST, host);
    }
    Ok(())
}

/// Returns the path and query of `request`'s target.
fn origin_form(request: &http::Request<WasiBody>) -> String {
    request
        .uri()
        .path_and_query()
        .map_or("/", PathAndQuery::as_str)
        .to_owned()
}

/// Returns the TLS client of guests' HTTPS: the web's public roots, as wasi-http's own.
fn tls_client() -> &'static TlsConnector {
    static CLIENT: OnceLock<TlsConnector> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("aws-lc-rs offers the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    })
}

/// Sends an HTTPS `request` over a connection to `address`, the one that was checked, with
/// `host`, the name the guest gave, in the TLS hello and checked against the certificate, under
/// the guest's connect, first-byte and between-bytes timeouts (wasi-http's defaults where it
/// sets none).
async fn send_tls(
    mut request: http::Request<WasiBody>,
    address: SocketAddr,
    host: &str,
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, Driving), Error> {
    let connect_timeout = options.and_then(|set| set.connect_timeout).unwrap_or(DEFAULT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|set| set.first_byte_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let between_bytes_timeout = options
        .and_then(|set| set.between_bytes_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|_| Error::HttpRequestUriInvalid)?;
    named_host(&mut request)?;
    *request.uri_mut() = origin_form(&request)
        .parse()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let connecting = async {
        let stream = TcpStream::connect(address).await.map_err(Error::Connect)?;
        let stream = tls_client().connect(name, stream).await.map_err(Error::Tls)?;
        hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(Error::from)
    };
    let (mut sender, connection) = tokio::time::timeout(connect_timeout, connecting)
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
    let connection = tokio::spawn(connection);
    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(Error::from)?;
    let driving = async move {
        match connection.await {
            Ok(ended) => ended.map_err(Error::from),
            Err(_) => Ok(()),
        }
    };
    Ok((
        response.map(|body| BetweenBytes::new(body.map_err(Error::from), between_bytes_timeout).boxed_unsync()),
        Box::new(driving) as Driving,
    ))
}

/// An answer's body that fails with `ConnectionReadTimeout` when no frame comes for `limit`
/// (the guest's between-bytes timeout).
struct BetweenBytes<B> {
    body: B,
    limit: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<B> BetweenBytes<B> {
    fn new(body: B, limit: Duration) -> Self {
        Self {
            body,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl<B> http_body::Body for BetweenBytes<B>
where
    B: http_body::Body<Error = Error> + Unpin,
{
    type Data = B::Data;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, Error>>> {
        match Pin::new(&mut self.body).poll_frame(context) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + self.limit;
                self.deadline.as_mut().reset(next);
                Poll::Ready(frame)
            }
            Poll::Pending => match self.deadline.as_mut().poll(context) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Returns the host and port the request goes to.
fn destination(request: &http::Request<WasiBody>) -> Result<(String, u16), Error> {
    let uri = request.uri();
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    Ok((host, uri.port_u16().unwrap_or(if https { 443 } else { 80 })))
}

#[cfg(test)]
mod tests {
    use super::{BetweenBytes, pinned, send_tls};
    use http_body_util::BodyExt;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    fn request(uri: &str) -> http::Request<wasmtime_wasi_http::WasiBody> {
        let body = http_body_util::Empty::<bytes::Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        http::Request::builder().uri(uri).body(body).unwrap()
    }

    #[test]
    fn plain_http_goes_to_the_address_that_was_checked_under_the_name_the_guest_gave() {
        let address = "203.0.113.7:8080".parse().unwrap();
        let sent = pinned(request("http://rebinds.example:8080/a?b=1"), address).unwrap();
        assert_eq!(sent.uri(), "http://203.0.113.7:8080/a?b=1");
        assert_eq!(sent.headers()[http::header::HOST], "rebinds.example:8080");
    }

    #[tokio::test]
    async fn https_goes_to_the_address_that_was_checked_with_the_name_the_guest_gave() {
        // The name resolves nowhere: only a connection to the address given reaches this
        // listener, and its TLS hello names the guest's host.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let hello = tokio::spawn(async move {
            let (mut connection, _) = listener.accept().await.unwrap();
            // The first TLS record, whole: its header says its length.
            let mut header = [0_u8; 5];
            connection.read_exact(&mut header).await.unwrap();
            let mut record = vec![0_u8; usize::from(u16::from_be_bytes([header[3], header[4]]))];
            connection.read_exact(&mut record).await.unwrap();
            [header.to_vec(), record].concat()
        });
        let uri = format!("https://rebinds.invalid:{}/a", address.port());
        let sent = send_tls(request(&uri), address, "rebinds.invalid", None).await;
        assert!(sent.is_err(), "a listener that speaks no TLS answered");
        let hello = tokio::time::timeout(Duration::from_secs(5), hello)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(hello.first(), Some(&0x16), "not a TLS handshake: {hello:?}");
        assert!(
            hello.windows(15).any(|name| name == b"rebinds.invalid"),
            "the hello does not name the guest's host"
        );
    }

    /// A body of the frames sent on a channel, pending while none comes.
    struct Frames(tokio::sync::mpsc::Receiver<bytes::Bytes>);

    impl http_body::Body for Frames {
        type Data = bytes::Bytes;
        type Error = wasmtime_wasi_http::Error;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            context: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
            self.0
                .poll_recv(context)
                .map(|data| data.map(|data| Ok(http_body::Frame::data(data))))
        }
    }

    #[tokio::test]
    async fn an_answer_that_stops_sending_for_the_guests_between_bytes_timeout_fails() {
        let limit = Duration::from_secs(1);
        let (sending, frames) = tokio::sync::mpsc::channel(1);
        let mut body = BetweenBytes::new(Frames(frames), limit);
        let feeding = tokio::spawn(async move {
            // Frames 300 ms apart, each within the limit of the one before: 1.8 s in all.
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                sending.send(bytes::Bytes::from_static(b"x")).await.unwrap();
            }
            sending
        });
        for _ in 0..6 {
            let frame = body.frame().await.expect("a frame").expect("no timeout");
            assert_eq!(frame.into_data().unwrap(), "x");
        }
        // Then nothing, the connection still open.
        let _still_open = feeding.await.unwrap();
        let started = std::time::Instant::now();
        let stalled = body.frame().await.expect("an error");
        assert!(
            matches!(stalled, Err(wasmtime_wasi_http::Error::ConnectionReadTimeout)),
            "{stalled:?}"
        );
        assert!(started.elapsed() < limit * 2, "{:?}", started.elapsed());
    }
}
