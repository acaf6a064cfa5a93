//! One accepted connection, watched for requests whose answer never reached the client.
//!
//! A client that goes away while its request runs is invisible to the handler: with half-close
//! allowed, hyper does not read the socket while a request is in flight, and the handler's answer
//! is counted before it is written. So the connection keeps one flag, set when a request arrives
//! and cleared when bytes written after it are flushed (hyper also flushes with nothing written);
//! a connection that ends in an error with the flag set lost an answer: the request counts as
//! abandoned.

use axum::Router;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tower::ServiceExt;

/// The socket, clearing `answer_pending` whenever what was written is flushed.
pub struct Watched {
    stream: TcpStream,
    answer_pending: Arc<AtomicBool>,
    wrote: bool,
}

impl Watched {
    pub fn new(stream: TcpStream) -> (Self, Arc<AtomicBool>) {
        let answer_pending = Arc::new(AtomicBool::new(false));
        (Watched { stream, answer_pending: answer_pending.clone(), wrote: false }, answer_pending)
    }
}

/// The router as hyper calls it, marking each request's answer pending.
pub fn service(
    app: Router,
    answer_pending: Arc<AtomicBool>,
) -> impl hyper::service::Service<hyper::Request<hyper::body::Incoming>, Response = axum::response::Response, Error = std::convert::Infallible, Future = impl Send> + Clone {
    hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        answer_pending.store(true, Ordering::SeqCst);
        app.clone().oneshot(request.map(axum::body::Body::new))
    })
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.wrote |= matches!(written, Poll::Ready(Ok(n)) if n > 0);
        written
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.wrote |= matches!(written, Poll::Ready(Ok(n)) if n > 0);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.stream).poll_flush(cx);
        if this.wrote && matches!(flushed, Poll::Ready(Ok(()))) {
            this.wrote = false;
            this.answer_pending.store(false, Ordering::SeqCst);
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
