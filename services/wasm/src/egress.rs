//! Outgoing HTTP of a guest, under the same policy as other instances: refused unless the
//! runner lets instances reach public addresses (`runner.egress = "public"`), and then never
//! to the host's loopback, private, link-local or other non-public ranges.

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
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|_| Error::DestinationNotFound)?
                .collect();
            if addresses.is_empty()
                || !addresses
                    .iter()
                    .all(|address| nuage_core::validate::is_public(address.ip()))
            {
                return Err(Error::DestinationIpProhibited);
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
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
