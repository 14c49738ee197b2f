//! The body of an instance's answer as the client gets it: it holds the instance and the
//! connection to it until it is read to the end, then frees the instance and keeps the
//! connection for the next request.

use crate::body::BoxError;
use crate::pool::Lease;
use crate::upstream::Reusable;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The response body of an instance; holds the instance and the connection to it until it is
/// read to the end.
pub struct Leased {
    body: Incoming,
    lease: Option<Lease>,
    connection: Option<Reusable>,
}

impl Leased {
    /// Returns the body of an answer read over `connection` from the instance `lease` holds.
    pub fn new(body: Incoming, lease: Lease, connection: Reusable) -> Self {
        Self {
            body,
            lease: Some(lease),
            connection: Some(connection),
        }
    }

    /// The instance is done with this request: keep the connection, free the instance.
    fn done(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.give_back();
        }
        self.lease.take();
    }
}

impl Drop for Leased {
    fn drop(&mut self) {
        // An answer with no body (204, 304, a HEAD, `Content-Length: 0`) is never polled: it
        // is complete, and so is the instance's part.
        if self.body.is_end_stream() {
            self.done();
        }
    }
}

impl Body for Leased {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            // The instance is done with this request once its body is all read: free it now,
            // not after the last bytes reach the client.
            Poll::Ready(None) => self.done(),
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.done(),
            Poll::Ready(Some(Err(_))) => {
                self.connection.take();
                if let Some(lease) = self.lease.take() {
                    lease.broken();
                }
            }
            _ => {}
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
