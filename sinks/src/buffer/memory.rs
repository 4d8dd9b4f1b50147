//! Memory buffer: an unbounded channel of batches whose room is counted in
//! records and in KiB by two semaphores, so the bound is on records and
//! bytes, not on batches of any size.

use std::sync::Arc;

use schema::AckStatus;
use tokio::sync::{Semaphore, mpsc};

use super::{Closed, WhenFull};
use crate::record::Batch;

/// Room in bytes is counted in KiB (semaphore permits are `u32`).
const UNIT: u64 = 1024;

pub fn channel(
    name: Arc<str>,
    max_events: usize,
    max_bytes: u64,
    when_full: WhenFull,
) -> (Sender, Receiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(max_events));
    let max_kib = (max_bytes / UNIT).clamp(1, u32::MAX as u64 / 2) as u32;
    let bytes = Arc::new(Semaphore::new(max_kib as usize));
    (
        Sender {
            name: name.clone(),
            tx,
            room: room.clone(),
            bytes: bytes.clone(),
            max_events,
            max_kib,
            when_full,
        },
        Receiver {
            name,
            rx,
            room,
            bytes,
        },
    )
}

#[derive(Clone)]
pub struct Sender {
    name: Arc<str>,
    tx: mpsc::UnboundedSender<(Batch, u32, u32)>,
    room: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_events: usize,
    max_kib: u32,
    when_full: WhenFull,
}

impl Sender {
    pub async fn send(&self, batch: Batch) -> Result<(), Closed> {
        // A batch larger than the whole buffer takes all of it.
        let want = batch.len().clamp(1, self.max_events) as u32;
        let kib = ((batch.size() as u64).div_ceil(UNIT)).clamp(1, self.max_kib as u64) as u32;
        let closed = || Closed(self.name.clone());
        let permits = match self.when_full {
            WhenFull::Block => {
                let a = self.room.acquire_many(want).await.map_err(|_| closed())?;
                let b = self.bytes.acquire_many(kib).await.map_err(|_| closed())?;
                (a, b)
            }
            WhenFull::DropNewest => {
                let got = self
                    .room
                    .try_acquire_many(want)
                    .and_then(|a| self.bytes.try_acquire_many(kib).map(|b| (a, b)));
                match got {
                    Ok(p) => p,
                    Err(tokio::sync::TryAcquireError::Closed) => return Err(closed()),
                    Err(tokio::sync::TryAcquireError::NoPermits) => {
                        metrics::counter!("mlsoc_buffer_dropped_total", "sink" => self.name.to_string())
                            .increment(batch.len() as u64);
                        tracing::warn!(sink = %self.name, records = batch.len(), "buffer full: dropped the newest records (when_full = drop_newest)");
                        batch.complete(AckStatus::Delivered);
                        return Ok(());
                    }
                }
            }
        };
        permits.0.forget();
        permits.1.forget();
        metrics::gauge!("mlsoc_buffer_events", "sink" => self.name.to_string())
            .increment(batch.len() as f64);
        metrics::gauge!("mlsoc_buffer_bytes", "sink" => self.name.to_string())
            .increment(kib as f64 * UNIT as f64);
        self.tx.send((batch, want, kib)).map_err(|e| {
            self.room.add_permits(e.0.1 as usize);
            self.bytes.add_permits(e.0.2 as usize);
            closed()
        })
    }
}

pub struct Receiver {
    name: Arc<str>,
    rx: mpsc::UnboundedReceiver<(Batch, u32, u32)>,
    room: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
}

impl Receiver {
    pub async fn recv(&mut self) -> Option<Batch> {
        let got = self.rx.recv().await;
        got.map(|b| self.release(b))
    }

    pub fn try_recv(&mut self) -> Option<Batch> {
        self.rx.try_recv().ok().map(|b| self.release(b))
    }

    fn release(&self, (batch, permits, kib): (Batch, u32, u32)) -> Batch {
        self.room.add_permits(permits as usize);
        self.bytes.add_permits(kib as usize);
        metrics::gauge!("mlsoc_buffer_events", "sink" => self.name.to_string())
            .decrement(batch.len() as f64);
        metrics::gauge!("mlsoc_buffer_bytes", "sink" => self.name.to_string())
            .decrement(kib as f64 * UNIT as f64);
        batch
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Wake blocked senders: the sink is gone.
        self.room.close();
        self.bytes.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, Stream};
    use bytes::Bytes;
    use schema::Ack;
    use std::time::Duration;

    fn batch(n: usize) -> Batch {
        let r = Record {
            stream: Stream::Events,
            doc: Bytes::from_static(b"{}"),
            dataset: "d".into(),
            time_ns: None,
            host: None,
            source: "s".into(),
            id: "i".into(),
        };
        Batch {
            records: vec![r; n],
            acks: vec![],
        }
    }

    #[tokio::test]
    async fn blocks_when_full_until_the_sink_takes_a_batch() {
        let (tx, mut rx) = channel("s".into(), 10, 1 << 30, WhenFull::Block);
        tx.send(batch(6)).await.unwrap();
        tx.send(batch(4)).await.unwrap();
        let blocked = tokio::time::timeout(Duration::from_millis(100), tx.send(batch(1))).await;
        assert!(blocked.is_err(), "a full buffer must block");
        assert_eq!(rx.recv().await.unwrap().len(), 6);
        tokio::time::timeout(Duration::from_secs(5), tx.send(batch(5)))
            .await
            .expect("room after a recv")
            .unwrap();
        // A batch larger than the buffer still passes, alone.
        assert_eq!(rx.recv().await.unwrap().len(), 4);
        assert_eq!(rx.recv().await.unwrap().len(), 5);
        tx.send(batch(25)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().len(), 25);
    }

    #[tokio::test]
    async fn bytes_bound_the_buffer_too() {
        // Records of 64 + 2 bytes and their id/dataset: about 70 bytes each.
        let (tx, mut rx) = channel("s".into(), 1_000_000, 8 * 1024, WhenFull::Block);
        tx.send(batch(100)).await.unwrap(); // ~7 KiB
        let blocked = tokio::time::timeout(Duration::from_millis(100), tx.send(batch(100))).await;
        assert!(
            blocked.is_err(),
            "the byte bound blocks although events are far from theirs"
        );
        assert_eq!(rx.recv().await.unwrap().len(), 100);
        tokio::time::timeout(Duration::from_secs(5), tx.send(batch(100)))
            .await
            .expect("room after a recv")
            .unwrap();
        // A batch larger than the byte bound passes alone.
        assert_eq!(rx.recv().await.unwrap().len(), 100);
        tx.send(batch(1000)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().len(), 1000);
    }

    #[tokio::test]
    async fn drop_newest_completes_the_dropped_batch() {
        let (tx, mut rx) = channel("s".into(), 2, 1 << 30, WhenFull::DropNewest);
        tx.send(batch(2)).await.unwrap();
        let (stx, srx) = std::sync::mpsc::channel();
        let mut b = batch(1);
        b.acks.push(Ack::new(move |s| stx.send(s).unwrap()));
        tx.send(b).await.unwrap();
        assert_eq!(srx.recv().unwrap(), AckStatus::Delivered);
        assert_eq!(rx.recv().await.unwrap().len(), 2);
        assert!(rx.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_gone_sink_unblocks_senders() {
        let (tx, rx) = channel("s".into(), 1, 1 << 30, WhenFull::Block);
        tx.send(batch(1)).await.unwrap();
        let t = tokio::spawn(async move { tx.send(batch(1)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        assert!(
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .unwrap()
                .unwrap()
                .is_err()
        );
    }
}
