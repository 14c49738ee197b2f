//! Outgoing HTTP of a guest, under the same policy as other instances: refused unless the
//! runner lets instances reach public addresses (`runner.egress = "public"`), and then never
//! to the host's loopback, private, link-local or other non-public ranges, nor to any address of
//! the host itself: a guest runs inside the router, on the host.

use http_body_util::BodyExt;
use std::future::Future;
use std::net::SocketAddr;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// What a guest's outgoing requests may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Egress {
    /// Public addresses; otherwise nothing.
    pub public: bool,
}

/// What `send_request` hands back to wasi-http.
type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

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
            let request = pinned(request, addresses[0])?;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

/// Returns a plain-HTTP `request` sent to `address`, the one that was checked, with its
/// `Host` as the guest named it: resolving the name again on connecting would let a name that
/// answers a public address first and a loopback one next (DNS rebinding) reach the router's
/// host. HTTPS is left to its name, which the TLS handshake checks against the certificate:
/// the host's own plain listeners cannot complete it.
fn pinned(mut request: http::Request<WasiBody>, address: SocketAddr) -> Result<http::Request<WasiBody>, Error> {
    if request.uri().scheme() == Some(&http::uri::Scheme::HTTPS) {
        return Ok(request);
    }
    let authority = request.uri().authority().ok_or(Error::HttpRequestUriInvalid)?.clone();
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let uri: http::Uri = format!("http://{address}{path}")
        .parse()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    *request.uri_mut() = uri;
    if !request.headers().contains_key(http::header::HOST) {
        let host = http::HeaderValue::from_str(authority.as_str()).map_err(|_| Error::HttpRequestUriInvalid)?;
        request.headers_mut().insert(http::header::HOST, host);
    }
    Ok(request)
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
    use super::pinned;
    use http_body_util::BodyExt;

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
        let tls = pinned(request("https://rebinds.example/x"), "203.0.113.7:443".parse().unwrap()).unwrap();
        assert_eq!(tls.uri(), "https://rebinds.example/x");
    }
}
