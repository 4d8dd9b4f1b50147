//! Syslog over TCP and TLS: one task per connection, each its own stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use schema::{RawRecord, Timestamp};
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::framing::{Frame, Framer};
use super::{Batcher, RateLimit, SyslogConfig, SyslogError, count_sent, next_stream_id, tls};
use crate::batch::SourceBatch;

const READ_BUF: usize = 64 * 1024;
const MIN_READ: usize = 4 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

struct Ctx {
    name: Arc<str>,
    max: usize,
    format: Option<String>,
    out: mpsc::Sender<SourceBatch>,
    stop: CancellationToken,
}

pub(super) async fn serve(
    name: Arc<str>,
    config: SyslogConfig,
    out: mpsc::Sender<SourceBatch>,
    stop: CancellationToken,
    bound: Option<oneshot::Sender<SocketAddr>>,
) -> Result<(), SyslogError> {
    let acceptor = match &config.tls {
        Some(t) => Some(tls::acceptor(t).map_err(|message| SyslogError::Tls {
            name: name.to_string(),
            message,
        })?),
        None => None,
    };
    let listener = TcpListener::bind(config.address)
        .await
        .map_err(|source| SyslogError::Bind {
            name: name.to_string(),
            address: config.address,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| SyslogError::Io {
        name: name.to_string(),
        source,
    })?;
    if let Some(b) = bound {
        let _ = b.send(local);
    }
    tracing::info!(source = %name, address = %local, tls = acceptor.is_some(), "syslog source listening on TCP");
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let ctx = Arc::new(Ctx {
        name: name.clone(),
        max: config.max_message_bytes,
        format: config.format.clone(),
        out,
        stop: stop.clone(),
    });
    let mut conns = JoinSet::new();
    let mut rejected = RateLimit::new(Duration::from_secs(10));
    let mut accept_errors = RateLimit::new(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ctx.out.closed() => break,
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done
                    && e.is_panic()
                {
                    tracing::error!(source = %name, error = %e, "a syslog connection task panicked");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        metrics::counter!("mlsoc_syslog_connections_rejected_total", "source" => name.to_string()).increment(1);
                        if let Some(n) = rejected.hit(1) {
                            tracing::warn!(source = %name, %peer, rejected = n, max_connections = config.max_connections, "too many syslog connections; closing new ones");
                        }
                        drop(sock);
                        continue;
                    };
                    let _ = sock.set_nodelay(true);
                    conns.spawn(connection(ctx.clone(), sock, peer, acceptor.clone(), slot));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little
                    // instead of spinning.
                    if let Some(n) = accept_errors.hit(1) {
                        tracing::warn!(source = %name, error = %e, errors = n, "accepting a syslog connection failed");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    while let Some(done) = conns.join_next().await {
        if let Err(e) = done
            && e.is_panic()
        {
            tracing::error!(source = %name, error = %e, "a syslog connection task panicked");
        }
    }
    tracing::info!(source = %name, "syslog source stopped");
    Ok(())
}

/// Counts the connection in `mlsoc_syslog_connections` while alive.
struct Open(Arc<str>);

impl Open {
    fn new(name: &Arc<str>) -> Open {
        metrics::gauge!("mlsoc_syslog_connections", "source" => name.to_string()).increment(1.0);
        Open(name.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!("mlsoc_syslog_connections", "source" => self.0.to_string()).decrement(1.0);
    }
}

async fn connection(
    ctx: Arc<Ctx>,
    sock: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    _slot: OwnedSemaphorePermit,
) {
    let _open = Open::new(&ctx.name);
    match acceptor {
        None => read(&ctx, sock, peer, "syslog+tcp").await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)) => r,
                _ = ctx.stop.cancelled() => return,
            };
            match handshake {
                Ok(Ok(tls)) => read(&ctx, tls, peer, "syslog+tls").await,
                Ok(Err(e)) => {
                    tracing::warn!(source = %ctx.name, %peer, error = %e, "TLS handshake failed; connection closed");
                }
                Err(_) => {
                    tracing::warn!(source = %ctx.name, %peer, "TLS handshake took more than 10 s; connection closed");
                }
            }
        }
    }
}

/// Reads one connection to its end (or until stop), framing messages into
/// batches. Waiting to send a batch stops the reading: that is the
/// backpressure TCP passes on to the sender.
async fn read<S: AsyncRead + Unpin>(ctx: &Ctx, mut io: S, peer: SocketAddr, scheme: &str) {
    let source = super::source(scheme, peer, &ctx.format);
    let stream = next_stream_id();
    let mut batch = Batcher::new(ctx.name.clone(), source.clone(), stream);
    let mut framer = Framer::new(ctx.max);
    let mut buf = BytesMut::with_capacity(READ_BUF);
    let mut frames: Vec<Frame> = Vec::new();
    let mut errors = 0u64;
    tracing::debug!(source = %ctx.name, %peer, stream, "syslog connection opened");
    loop {
        let deadline = batch.deadline();
        let read = tokio::select! {
            _ = ctx.stop.cancelled() => break,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                if !send(ctx, &mut batch, false).await {
                    return;
                }
                continue;
            }
            r = io.read_buf(&mut buf) => r,
        };
        match read {
            Ok(0) => break,
            Ok(_) => {
                let chunk = buf.split().freeze();
                if buf.capacity() < MIN_READ {
                    buf.reserve(READ_BUF);
                }
                framer.push(chunk, &mut frames);
                let received = Timestamp::now();
                for f in frames.drain(..) {
                    add(ctx, &mut batch, f, received, peer, &mut errors);
                    if batch.is_full() && !send(ctx, &mut batch, false).await {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(source = %ctx.name, %peer, error = %e, "syslog connection read failed; closing it");
                break;
            }
        }
    }
    if let Some(f) = framer.finish() {
        add(ctx, &mut batch, f, Timestamp::now(), peer, &mut errors);
    }
    send(ctx, &mut batch, true).await;
    tracing::debug!(source = %ctx.name, %peer, stream, "syslog connection closed");
}

fn add(
    ctx: &Ctx,
    batch: &mut Batcher,
    f: Frame,
    received: Timestamp,
    peer: SocketAddr,
    errors: &mut u64,
) {
    if let Some(reason) = f.error {
        metrics::counter!("mlsoc_syslog_framing_errors_total", "source" => ctx.name.to_string())
            .increment(1);
        // The first of a connection is worth a warning; the rest are counted.
        if *errors == 0 {
            tracing::warn!(source = %ctx.name, %peer, offset = f.offset, reason, "syslog framing error; the message is passed on as received and framing resumes");
        }
        *errors += 1;
    }
    batch.push(RawRecord {
        bytes: f.bytes,
        source: batch.source.clone(),
        offset: f.offset,
        line: f.number,
        received,
        overflow_len: f.overflow_len,
    });
}

/// Sends the batch (waiting for room); `false` when the pipeline is gone.
async fn send(ctx: &Ctx, batch: &mut Batcher, end_of_stream: bool) -> bool {
    if batch.is_empty() && !end_of_stream {
        return true;
    }
    let records = batch.len();
    let (b, bytes) = batch.take(end_of_stream);
    if ctx.out.send(b).await.is_err() {
        return false;
    }
    count_sent(&ctx.name, records, bytes);
    true
}
