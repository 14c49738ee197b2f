//! A response body that may be shared between threads: the router's bodies are `Sync`,
//! wasi-http's are not (they are only ever polled by one task at a time anyway).

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

/// `body` behind a mutex that is never contended: polling takes `&mut self`.
#[derive(Debug)]
pub struct Synced<B>(Mutex<B>);

impl<B> Synced<B> {
    /// Returns `body`, `Sync`.
    pub fn new(body: B) -> Self {
        Self(Mutex::new(body))
    }

    fn inner(&mut self) -> &mut B {
        self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Synced<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(self.get_mut().inner()).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).size_hint()
    }
}
