//! The deadline of an HTTP/2 connection's client preface.
//!
//! An HTTP/2 client starts its connection with a preface (RFC 9113, 3.4): 24 fixed octets,
//! then a SETTINGS frame. A peer that connects and sends it slowly, or not at all, would hold
//! its place on the listener for as long as it likes: hyper sets no deadline on it, and
//! HTTP/2 keep-alive pings only start once it is in. [`Prefaced`] ends the connection (a read
//! error for the server) when the whole preface has not arrived within its deadline from the
//! connection's acceptance; once it has, it only passes bytes on.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The fixed octets that open the preface.
const MAGIC: usize = 24;

/// The length of a frame header: a 24-bit payload length, a type, flags and a stream id.
const FRAME_HEADER: usize = 9;

/// A connection whose client preface must arrive before a deadline.
#[derive(Debug)]
pub(super) struct Prefaced<IO> {
    io: IO,
    /// `None` once the preface is in.
    watch: Option<Watch>,
}

/// How far a preface arrived, and until when the rest may come.
#[derive(Debug)]
struct Watch {
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    /// Octets of the preface read so far.
    read: usize,
    /// The header of the frame after the fixed octets (its SETTINGS), as far as it is read.
    header: [u8; FRAME_HEADER],
}

impl Watch {
    /// Counts `bytes`, the next ones read; returns whether the preface is complete.
    fn follow(&mut self, bytes: &[u8]) -> bool {
        for byte in bytes {
            if let Some(slot) = self.read.checked_sub(MAGIC).and_then(|at| self.header.get_mut(at)) {
                *slot = *byte;
            }
            self.read += 1;
            if self.read >= MAGIC + FRAME_HEADER {
                let payload = u32::from_be_bytes([0, self.header[0], self.header[1], self.header[2]]);
                if self.read >= MAGIC + FRAME_HEADER + payload as usize {
                    return true;
                }
            }
        }
        false
    }
}

impl<IO> Prefaced<IO> {
    /// Returns `io`, which must bring a whole client preface within `timeout` from now.
    pub(super) fn new(io: IO, timeout: Duration) -> Self {
        Self {
            io,
            watch: Some(Watch {
                timeout,
                deadline: Box::pin(tokio::time::sleep(timeout)),
                read: 0,
                header: [0; FRAME_HEADER],
            }),
        }
    }

    /// Returns the connection.
    pub(super) fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefaced<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let Some(watch) = &mut this.watch else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        if watch.deadline.as_mut().poll(cx).is_ready() {
            tracing::debug!(
                received = watch.read,
                timeout_ms = watch.timeout.as_millis(),
                "connection closed: no HTTP/2 client preface in time"
            );
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no HTTP/2 client preface in time",
            )));
        }
        let before = buf.filled().len();
        std::task::ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if watch.follow(&buf.filled()[before..]) {
            this.watch = None;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefaced<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The preface a client sends: the fixed octets, then a SETTINGS frame with one setting.
    fn preface() -> Vec<u8> {
        let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        preface.extend_from_slice(&[0, 0, 6, 4, 0, 0, 0, 0, 0]);
        preface.extend_from_slice(&[0, 3, 0, 0, 0, 100]);
        preface
    }

    #[tokio::test]
    async fn the_preface_ends_with_its_settings_frame() {
        let preface = preface();
        let mut watch = Prefaced::new((), Duration::from_secs(1)).watch.unwrap();
        assert!(!watch.follow(&preface[..preface.len() - 1]));
        assert!(watch.follow(&preface[preface.len() - 1..]));
        // A SETTINGS frame with no setting ends with its header.
        let mut empty_settings = Prefaced::new((), Duration::from_secs(1)).watch.unwrap();
        assert!(!empty_settings.follow(&preface[..MAGIC]));
        assert!(!empty_settings.follow(&[0, 0, 0, 4, 0, 0, 0, 0]));
        assert!(empty_settings.follow(&[0]));
    }

    #[tokio::test]
    async fn a_preface_in_time_passes_and_a_late_one_ends_the_connection() {
        let timeout = Duration::from_millis(200);
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut prefaced = Prefaced::new(server, timeout);
        client.write_all(&preface()).await.unwrap();
        let mut read = vec![0; preface().len()];
        prefaced.read_exact(&mut read).await.unwrap();
        assert_eq!(read, preface());
        // Past the deadline, a connection whose preface came in time is read as it comes.
        tokio::time::sleep(timeout * 2).await;
        client.write_all(b"later").await.unwrap();
        let mut later = [0; 5];
        prefaced.read_exact(&mut later).await.unwrap();
        assert_eq!(&later, b"later");

        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut prefaced = Prefaced::new(server, timeout);
        client.write_all(&preface()[..30]).await.unwrap();
        let mut read = vec![0; preface().len()];
        let error = prefaced.read_exact(&mut read).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
