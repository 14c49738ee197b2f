//! A request on its way to an instance: which application it is for (its target), and the
//! request as the instance gets it (headers of the connection and tokens dropped, forwarding
//! headers added, body limited).

use crate::body::ProxyBody;
use crate::error::RouterError;
use crate::privacy::TOKEN_HEADERS;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::net::SocketAddr;

/// Headers that concern one connection, never forwarded (names made once: a lookup by `&str`
/// parses the name each time).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// The request id, which the instance gets and failures are logged with.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Who a client connection comes from.
#[derive(Debug)]
pub struct Peer {
    address: SocketAddr,
    /// Its `X-Forwarded-For` when the request carries none, made once per connection.
    forwarded_for: HeaderValue,
}

impl Peer {
    /// Returns the peer at `address`.
    pub fn new(address: SocketAddr) -> Self {
        Self {
            address,
            forwarded_for: HeaderValue::from_str(&address.ip().to_string())
                .expect("an IP address is a valid header value"),
        }
    }

    fn ip(&self) -> std::net::IpAddr {
        self.address.ip()
    }
}

/// Returns the host name of a `Host` value as custom domains are stored: lower-case, without
/// its port or a trailing dot; `None` for an IP literal in brackets or an empty one.
pub fn hostname(host: &str) -> Option<std::borrow::Cow<'_, str>> {
    if host.starts_with('[') {
        return None;
    }
    let name = host.split(':').next().unwrap_or(host).trim_end_matches('.');
    if name.is_empty() {
        return None;
    }
    Some(if name.bytes().any(|byte| byte.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    })
}

/// Splits a request's target into the route key and the path the application sees.
pub fn target(domain: Option<&str>, host: Option<&str>, uri: &Uri) -> Option<(String, String)> {
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    if let (Some(domain), Some(host)) = (domain, host) {
        let host = host.split(':').next().unwrap_or(host);
        if let Some(label) = host.strip_suffix(domain).and_then(|rest| rest.strip_suffix('.'))
            && !label.is_empty()
            && !label.contains('.')
        {
            return Some((label.to_owned(), path_and_query.to_owned()));
        }
    }
    let trimmed = path_and_query.strip_prefix('/')?;
    let end = trimmed.find(['/', '?']).unwrap_or(trimmed.len());
    let key = &trimmed[..end];
    if key.is_empty() {
        return None;
    }
    let rest = &trimmed[end..];
    let rest = if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    };
    Some((key.to_owned(), rest))
}

/// Drops hop-by-hop headers and those `Connection` names, in place.
pub fn keep_end_to_end(headers: &mut HeaderMap) {
    // Most messages carry none (and then no `Connection` either): a look at the few names they
    // have is cheaper than hashing each of these for a removal, twice per request.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    for name in named {
        headers.remove(name);
    }
}

/// Returns `request` as the instance at `address` gets it: `path` as its target, headers of
/// the connection and tokens dropped, forwarding headers added, its body limited to
/// `max_body_bytes`.
pub fn to_instance(
    request: Request<Incoming>,
    address: &str,
    path: &str,
    peer: &Peer,
    max_body_bytes: u64,
) -> Result<Request<ProxyBody>, RouterError> {
    let (mut parts, body) = request.into_parts();
    // Origin form: the connection is to the instance already.
    let uri: Uri = path.parse().map_err(|_| RouterError::InvalidPath)?;
    keep_end_to_end(&mut parts.headers);
    let mut headers = std::mem::take(&mut parts.headers);
    // The token opened the door; the code does not get it.
    for name in &TOKEN_HEADERS {
        headers.remove(name);
    }
    let forwarded_for = match headers.get(X_FORWARDED_FOR).and_then(|value| value.to_str().ok()) {
        Some(earlier) => HeaderValue::from_str(&format!("{earlier}, {}", peer.ip())).ok(),
        None => Some(peer.forwarded_for.clone()),
    };
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR, value);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if !headers.contains_key(X_REQUEST_ID) {
        headers.insert(X_REQUEST_ID, request_id());
    }
    // HTTP/1.1 wants one; a client that sent none gets the instance's address.
    if !headers.contains_key(header::HOST)
        && let Ok(host) = HeaderValue::from_str(address.split_once('@').map_or(address, |(socket, _)| socket))
    {
        headers.insert(header::HOST, host);
    }
    let body = Limited::new(body, usize::try_from(max_body_bytes).unwrap_or(usize::MAX)).boxed();
    let mut upstream = Request::new(body);
    *upstream.method_mut() = parts.method;
    *upstream.uri_mut() = uri;
    *upstream.headers_mut() = headers;
    Ok(upstream)
}

/// A fresh request id (a random UUID from the thread's generator: no system call).
fn request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut text = [0_u8; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_bytes(id.hyphenated().encode_lower(&mut text).as_bytes()).expect("a UUID is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::{hostname, target};

    #[test]
    fn host_names_are_compared_lower_case_without_port_or_final_dot() {
        assert_eq!(hostname("API.Example.com:8081").as_deref(), Some("api.example.com"));
        assert_eq!(hostname("api.example.com.").as_deref(), Some("api.example.com"));
        assert_eq!(hostname("[::1]:80"), None);
        assert_eq!(hostname(""), None);
    }

    #[test]
    fn targets_come_from_the_host_or_the_first_path_segment() {
        let uri = |text: &str| text.parse::<http::Uri>().unwrap();
        assert_eq!(
            target(None, Some("127.0.0.1:8081"), &uri("/ns-f/a/b?x=1")),
            Some(("ns-f".into(), "/a/b?x=1".into()))
        );
        assert_eq!(
            target(None, None, &uri("/ns-f?x=1")),
            Some(("ns-f".into(), "/?x=1".into()))
        );
        assert_eq!(target(None, None, &uri("/ns-f")), Some(("ns-f".into(), "/".into())));
        assert_eq!(target(None, None, &uri("/")), None);
        assert_eq!(
            target(Some("fn.example.com"), Some("ns-f.fn.example.com:80"), &uri("/a")),
            Some(("ns-f".into(), "/a".into()))
        );
        // Another host falls back to the path form.
        assert_eq!(
            target(Some("fn.example.com"), Some("localhost"), &uri("/ns-f/a")),
            Some(("ns-f".into(), "/a".into()))
        );
    }
}
