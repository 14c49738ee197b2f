//! The deadline of an HTTP/2 connection's opening: the client preface and the client's
//! acknowledgement of the server's settings.
//!
//! An HTTP/2 client starts its connection with a preface (RFC 9113, 3.4): 24 fixed octets,
//! then a SETTINGS frame; it then acknowledges the SETTINGS frame the server sent on
//! connecting (a SETTINGS frame with the ACK flag), at once, as every HTTP/2 stack does. A
//! peer that connects and sends these slowly, or not at all, would hold its place on the
//! listener for as long as it likes: hyper sets no deadline on the preface, and a peer that
//! sent it then goes silent is only found out by HTTP/2 keep-alive, a ping after
//! `grpc_keepalive_seconds` unanswered for 20 s more. [`Prefaced`] ends the connection (a read
//! error for the server) when the preface and the acknowledgement have not arrived within its
//! deadline from the connection's acceptance; once they have, it only passes bytes on. (A peer
//! that then keeps answering pings stays, as an idle channel of nuage's own processes does:
//! the two cannot be told apart, and such a peer holds the internal credential or makes no
//! call at all.)

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

/// The type of a SETTINGS frame.
const SETTINGS: u8 = 0x4;

/// The flag of a SETTINGS frame that acknowledges the peer's.
const ACK: u8 = 0x1;

/// A connection whose client preface and settings acknowledgement must arrive before a
/// deadline.
#[derive(Debug)]
pub(super) struct Prefaced<IO> {
    io: IO,
    /// `None` once the opening is in.
    watch: Option<Watch>,
}

/// How far an opening arrived, and until when the rest may come.
#[derive(Debug)]
struct Watch {
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    /// Octets read so far, for the log.
    read: usize,
    /// Octets of the fixed preface still to come.
    magic: usize,
    /// The header of the frame being read, and how much of it is read.
    header: [u8; FRAME_HEADER],
    header_read: usize,
    /// Octets of the payload of the last frame whose header was read, still to come.
    payload: usize,
}

impl Watch {
    /// Follows `bytes`, the next ones read, frame by frame; returns whether they brought the
    /// acknowledgement of the server's settings (so the preface before it, too).
    fn follow(&mut self, mut bytes: &[u8]) -> bool {
        self.read += bytes.len();
        while !bytes.is_empty() {
            let skipped = if self.magic > 0 {
                self.magic.min(bytes.len())
            } else {
                self.payload.min(bytes.len())
            };
            if self.magic > 0 {
                self.magic -= skipped;
            } else {
                self.payload -= skipped;
            }
            bytes = &bytes[skipped..];
            if self.magic > 0 || self.payload > 0 {
                continue;
            }
            let Some((byte, rest)) = bytes.split_first() else {
                break;
            };
            bytes = rest;
            self.header[self.header_read] = *byte;
            self.header_read += 1;
            if self.header_read == FRAME_HEADER {
                self.header_read = 0;
                if self.header[3] == SETTINGS && self.header[4] & ACK != 0 {
                    return true;
                }
                self.payload = u32::from_be_bytes([0, self.header[0], self.header[1], self.header[2]]) as usize;
            }
        }
        false
    }
}

impl<IO> Prefaced<IO> {
    /// Returns `io`, which must bring a whole client preface and the acknowledgement of the
    /// server's settings within `timeout` from now.
    pub(super) fn new(io: IO, timeout: Duration) -> Self {
        Self {
            io,
            watch: Some(Watch {
                timeout,
                deadline: Box::pin(tokio::time::sleep(timeout)),
                read: 0,
                magic: MAGIC,
                header: [0; FRAME_HEADER],
                header_read: 0,
                payload: 0,
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
                "connection closed: no HTTP/2 client preface and settings acknowledgement in time"
            );
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no HTTP/2 client preface and settings acknowledgement in time",
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

    /// The acknowledgement of the server's settings.
    const SETTINGS_ACK: [u8; FRAME_HEADER] = [0, 0, 0, SETTINGS, ACK, 0, 0, 0, 0];

    /// The preface a client sends: the fixed octets, then a SETTINGS frame with one setting.
    fn preface() -> Vec<u8> {
        let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        preface.extend_from_slice(&[0, 0, 6, SETTINGS, 0, 0, 0, 0, 0]);
        preface.extend_from_slice(&[0, 3, 0, 0, 0, 100]);
        preface
    }

    /// What an HTTP/2 client sends first: its preface, a WINDOW_UPDATE, the acknowledgement.
    fn opening() -> Vec<u8> {
        let mut opening = preface();
        opening.extend_from_slice(&[0, 0, 4, 0x8, 0, 0, 0, 0, 0, 0, 0x0f, 0, 1]);
        opening.extend_from_slice(&SETTINGS_ACK);
        opening
    }

    #[tokio::test]
    async fn the_opening_ends_with_the_acknowledgement_of_the_servers_settings() {
        let opening = opening();
        let mut watch = Prefaced::new((), Duration::from_secs(1)).watch.unwrap();
        assert!(!watch.follow(&opening[..opening.len() - 1]));
        assert!(watch.follow(&opening[opening.len() - 1..]));
        // A byte at a time, too.
        let mut watch = Prefaced::new((), Duration::from_secs(1)).watch.unwrap();
        let done: Vec<bool> = opening.iter().map(|byte| watch.follow(&[*byte])).collect();
        assert_eq!(done.iter().position(|done| *done), Some(opening.len() - 1));
        // The preface alone is not enough, and octets of a payload that look like an
        // acknowledgement are not one.
        let mut watch = Prefaced::new((), Duration::from_secs(1)).watch.unwrap();
        assert!(!watch.follow(&preface()));
        let mut lookalike = vec![0, 0, 9, 0x0, 0, 0, 0, 0, 1];
        lookalike.extend_from_slice(&SETTINGS_ACK);
        assert!(!watch.follow(&lookalike));
        assert!(watch.follow(&SETTINGS_ACK));
    }

    #[tokio::test]
    async fn an_opening_in_time_passes_and_a_late_one_ends_the_connection() {
        let timeout = Duration::from_millis(200);
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut prefaced = Prefaced::new(server, timeout);
        client.write_all(&opening()).await.unwrap();
        let mut read = vec![0; opening().len()];
        prefaced.read_exact(&mut read).await.unwrap();
        assert_eq!(read, opening());
        // Past the deadline, a connection whose opening came in time is read as it comes.
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

        // A whole preface, and nothing after it.
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut prefaced = Prefaced::new(server, timeout);
        client.write_all(&preface()).await.unwrap();
        let mut read = vec![0; preface().len() + 1];
        let error = prefaced.read_exact(&mut read).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
