//! Syslog over UDP (RFC 5426): one message per datagram.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use schema::{Ack, RawRecord, Timestamp};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{Batcher, RateLimit, SyslogConfig, SyslogError, count_sent, next_stream_id};
use crate::batch::SourceBatch;

/// Peers with a batch in progress at most; more and every batch is sent.
const MAX_PENDING_PEERS: usize = 64;

pub(super) async fn serve(
    name: Arc<str>,
    config: SyslogConfig,
    out: mpsc::Sender<SourceBatch>,
    stop: CancellationToken,
    bound: Option<oneshot::Sender<SocketAddr>>,
) -> Result<(), SyslogError> {
    let sock = UdpSocket::bind(config.address)
        .await
        .map_err(|source| SyslogError::Bind {
            name: name.to_string(),
            address: config.address,
            source,
        })?;
    let local = sock.local_addr().map_err(|source| SyslogError::Io {
        name: name.to_string(),
        source,
    })?;
    if let Some(b) = bound {
        let _ = b.send(local);
    }
    tracing::info!(source = %name, address = %local, "syslog source listening on UDP");
    let mut rx = Receiving {
        name: name.clone(),
        max: config.max_message_bytes,
        format: config.format.clone(),
        stream: next_stream_id(),
        out,
        pending: Vec::new(),
        offset: 0,
        number: 0,
        drops: RateLimit::new(Duration::from_secs(10)),
    };
    // The largest UDP payload (65,507 bytes over IPv4, 65,527 over IPv6)
    // fits, so the length received is the datagram's true length.
    let mut buf = vec![0u8; 65_536];
    let mut errors = RateLimit::new(Duration::from_secs(10));
    loop {
        let deadline = rx.pending.iter().filter_map(Batcher::deadline).min();
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = rx.out.closed() => return Ok(()),
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                rx.flush_due();
            }
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, peer)) => rx.datagram(&buf[..n], peer),
                Err(e) => {
                    // ICMP errors of earlier sends and the like: not fatal.
                    if let Some(k) = errors.hit(1) {
                        tracing::warn!(source = %name, error = %e, errors = k, "syslog UDP receive failed");
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    // Stopping: what was received goes on (waiting for room now, the
    // pipeline is draining), then the stream ends.
    for mut b in std::mem::take(&mut rx.pending) {
        let records = b.len();
        let (batch, bytes) = b.take(false);
        if records > 0 && rx.out.send(batch).await.is_ok() {
            count_sent(&name, records, bytes);
        }
    }
    let end = SourceBatch {
        source_name: name.clone(),
        source: super::source("syslog+udp", local, &config.format),
        stream: rx.stream,
        records: Vec::new(),
        ack: Ack::none(),
        end_of_stream: true,
    };
    let _ = rx.out.send(end).await;
    tracing::info!(source = %name, "syslog source stopped");
    Ok(())
}

struct Receiving {
    name: Arc<str>,
    max: usize,
    format: Option<String>,
    stream: u64,
    out: mpsc::Sender<SourceBatch>,
    /// One batch per peer.
    pending: Vec<Batcher>,
    offset: u64,
    number: u64,
    drops: RateLimit,
}

impl Receiving {
    fn datagram(&mut self, data: &[u8], peer: SocketAddr) {
        let offset = self.offset;
        self.offset += data.len() as u64;
        // One message per datagram; a trailer some senders add is not part
        // of it.
        let mut end = data.len();
        while end > 0 && matches!(data[end - 1], b'\n' | b'\0') {
            end -= 1;
            if end > 0 && data[end - 1] == b'\r' {
                end -= 1;
            }
        }
        if end == 0 {
            return;
        }
        self.number += 1;
        let (bytes, overflow_len) = if end > self.max {
            (Bytes::copy_from_slice(&data[..self.max]), Some(end as u64))
        } else {
            (Bytes::copy_from_slice(&data[..end]), None)
        };
        let i = match self.pending.iter().position(|b| b.peer == Some(peer)) {
            Some(i) => i,
            None => {
                if self.pending.len() >= MAX_PENDING_PEERS {
                    self.flush_all();
                }
                let source = super::source("syslog+udp", peer, &self.format);
                let mut b = Batcher::new(self.name.clone(), source, self.stream);
                b.peer = Some(peer);
                self.pending.push(b);
                self.pending.len() - 1
            }
        };
        let b = &mut self.pending[i];
        b.push(RawRecord {
            bytes,
            source: b.source.clone(),
            offset,
            line: self.number,
            received: Timestamp::now(),
            overflow_len,
        });
        if b.is_full() {
            let b = self.pending.swap_remove(i);
            self.offer(b);
        }
    }

    /// Sends the batches whose time is up.
    fn flush_due(&mut self) {
        let now = tokio::time::Instant::now();
        let (due, keep): (Vec<Batcher>, Vec<Batcher>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|b| b.deadline().is_some_and(|d| d <= now));
        self.pending = keep;
        for b in due {
            self.offer(b);
        }
    }

    fn flush_all(&mut self) {
        for b in std::mem::take(&mut self.pending) {
            self.offer(b);
        }
    }

    /// Hands a batch to the pipeline if it has room now; drops it otherwise
    /// (a UDP sender cannot be slowed down).
    fn offer(&mut self, mut b: Batcher) {
        let records = b.len();
        if records == 0 {
            return;
        }
        let (batch, bytes) = b.take(false);
        match self.out.try_send(batch) {
            Ok(()) => count_sent(&self.name, records, bytes),
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("mlsoc_source_dropped_total", "source" => self.name.to_string(), "reason" => "backpressure")
                    .increment(records as u64);
                if let Some(n) = self.drops.hit(records as u64) {
                    tracing::warn!(source = %self.name, dropped = n, "the pipeline is full: syslog UDP messages dropped (UDP senders cannot be slowed down)");
                }
            }
            // The pipeline is gone; the loop ends on `out.closed()`.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}
