//! Write coalescing for the carrier socket. rusmppc 0.4 flushes after every command it writes:
//! one `writev` per `submit_sm`, which was 14% of Postern's CPU moving batches to an SMSC.
//! [`Coalesced`] hands rusmppc a stream whose writes go into a buffer; a pump task writes
//! whatever has gathered in one call as soon as it runs (right after the connection task
//! yields), so a burst of PDUs leaves in one segment train and a lone PDU is not held back.
//! The buffer is bounded: a full one makes writes wait (the SMSC not reading backs up into
//! rusmppc, not into memory). A write error is kept and returned to every later write.

use parking_lot::Mutex;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};

/// Bytes buffered before writes wait for the pump.
const LIMIT: usize = 256 * 1024;

#[derive(Default)]
struct Pending {
    data: Vec<u8>,
    /// The write failed: every later write fails the same way.
    error: Option<(io::ErrorKind, String)>,
    /// Shut down (or dropped): the pump writes what is left and shuts the socket.
    closed: bool,
    /// The pump has ended.
    done: bool,
    /// A writer waiting for room, or for the shutdown to finish.
    waiting: Option<Waker>,
}

impl Pending {
    fn wake_writer(&mut self) {
        if let Some(w) = self.waiting.take() {
            w.wake();
        }
    }

    /// The pump ends (with the write error, if that is why).
    fn end(&mut self, error: Option<(io::ErrorKind, String)>) {
        self.error = error;
        self.done = true;
        self.wake_writer();
    }
}

struct Shared {
    pending: Mutex<Pending>,
    wake_pump: tokio::sync::Notify,
    /// The stream was dropped: a write the peer does not take gives up after
    /// [`DRAIN_ON_DROP`], so a peer that stops reading cannot keep the socket open.
    dropped: AtomicBool,
}

/// How long writes may still go on after the stream is dropped.
const DRAIN_ON_DROP: std::time::Duration = std::time::Duration::from_secs(1);

/// A stream whose writes are coalesced by a pump task (see the module doc); reads go straight
/// to the underlying stream.
pub struct Coalesced<S> {
    read: ReadHalf<S>,
    shared: Arc<Shared>,
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> Coalesced<S> {
    /// Wrap a connected stream; spawns its pump on the current runtime.
    pub fn new(stream: S) -> Coalesced<S> {
        let (read, write) = tokio::io::split(stream);
        let shared = Arc::new(Shared { pending: Mutex::new(Pending::default()), wake_pump: tokio::sync::Notify::new(), dropped: AtomicBool::new(false) });
        tokio::spawn(pump(write, shared.clone()));
        Coalesced { read, shared }
    }
}

async fn pump<S: AsyncWrite>(mut write: WriteHalf<S>, shared: Arc<Shared>) {
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        let closed = {
            let mut p = shared.pending.lock();
            std::mem::swap(&mut p.data, &mut out);
            p.wake_writer();
            p.closed
        };
        if !out.is_empty() {
            let r = tokio::select! {
                r = async {
                    write.write_all(&out).await?;
                    write.flush().await
                } => r,
                _ = gave_up(&shared) => Err(io::Error::new(io::ErrorKind::TimedOut, "dropped while the peer took no more")),
            };
            out.clear();
            if let Err(e) = r {
                return shared.pending.lock().end(Some((e.kind(), e.to_string())));
            }
            continue;
        }
        if closed {
            tokio::select! {
                _ = write.shutdown() => {}
                _ = gave_up(&shared) => {}
            }
            return shared.pending.lock().end(None);
        }
        shared.wake_pump.notified().await;
    }
}

/// Ready [`DRAIN_ON_DROP`] after the stream is dropped; never while it is in use.
async fn gave_up(shared: &Shared) {
    loop {
        let woken = shared.wake_pump.notified();
        if shared.dropped.load(Ordering::Acquire) {
            tokio::time::sleep(DRAIN_ON_DROP).await;
            return;
        }
        woken.await;
    }
}

fn failed(e: &(io::ErrorKind, String)) -> io::Error {
    io::Error::new(e.0, e.1.clone())
}

impl<S: AsyncRead> AsyncRead for Coalesced<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite> AsyncWrite for Coalesced<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut p = self.shared.pending.lock();
        if let Some(e) = &p.error {
            return Poll::Ready(Err(failed(e)));
        }
        if p.closed {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "stream shut down")));
        }
        if p.data.len() >= LIMIT {
            p.waiting = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let was_empty = p.data.is_empty();
        p.data.extend_from_slice(buf);
        drop(p);
        if was_empty {
            // (a permit is kept if the pump is busy writing: it looks again before it waits)
            self.shared.wake_pump.notify_one();
        }
        Poll::Ready(Ok(buf.len()))
    }

    /// Handed to the pump counts as flushed: it writes without waiting for anything else.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.shared.pending.lock().error {
            Some(e) => Poll::Ready(Err(failed(e))),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Ready once the pump has written everything and shut the socket down.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut p = self.shared.pending.lock();
        if p.done {
            return Poll::Ready(match &p.error {
                Some(e) => Err(failed(e)),
                None => Ok(()),
            });
        }
        p.closed = true;
        p.waiting = Some(cx.waker().clone());
        drop(p);
        self.shared.wake_pump.notify_one();
        Poll::Pending
    }
}

impl<S> Drop for Coalesced<S> {
    fn drop(&mut self) {
        self.shared.pending.lock().closed = true;
        self.shared.dropped.store(true, Ordering::Release);
        self.shared.wake_pump.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn writes_arrive_in_order_and_shutdown_drains_them() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut c = Coalesced::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let mut sent = Vec::new();
        // More than the buffer holds, in small writes: the writer must wait for the pump.
        for i in 0..40_000u32 {
            let chunk = i.to_be_bytes().repeat(3);
            c.write_all(&chunk).await.unwrap();
            c.flush().await.unwrap();
            sent.extend_from_slice(&chunk);
        }
        c.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap(), sent);
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_cannot_keep_a_dropped_stream_open() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut c = Coalesced::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let (_peer, _) = listener.accept().await.unwrap(); // never reads
        // Fill the kernel's buffers and ours until writes wait.
        let chunk = vec![1u8; 64 * 1024];
        while tokio::time::timeout(std::time::Duration::from_millis(200), c.write_all(&chunk)).await.is_ok() {}
        let pump = Arc::downgrade(&c.shared);
        drop(c);
        tokio::time::sleep(DRAIN_ON_DROP + std::time::Duration::from_millis(500)).await;
        assert!(pump.upgrade().is_none(), "the pump still holds the socket");
    }

    #[tokio::test]
    async fn a_failed_write_fails_the_next_ones() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut c = Coalesced::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let (s, _) = listener.accept().await.unwrap();
        // Closed with unread data: the kernel answers further writes with a reset.
        #[allow(deprecated)]
        s.set_linger(Some(std::time::Duration::ZERO)).unwrap();
        drop(s);
        drop(listener);
        let chunk = vec![7u8; 64 * 1024];
        let mut error = None;
        for _ in 0..200 {
            if let Err(e) = c.write_all(&chunk).await {
                error = Some(e);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(error.is_some(), "writes to a reset connection kept succeeding");
        assert!(c.flush().await.is_err());
    }
}
