//! End-to-end acknowledgements.
//!
//! A source that can resend (a file, an HTTP client waiting for its answer)
//! makes one [`Ack`] per batch it reads, with a callback. Every stage that
//! passes the batch's records on clones the `Ack` and hands the clone along
//! with them; fanning out to three sinks makes three clones. Each holder ends
//! its clone with [`Ack::complete`] once the records are durably somewhere
//! (delivered to a sink, written to a disk buffer, or stored in a dead-letter
//! queue). When the last clone is gone the callback runs once, with the worst
//! status any holder reported, as Vector's batch notifiers do.
//!
//! A clone dropped without `complete` counts as [`AckStatus::Failed`]: records
//! that were still in a channel at shutdown, or in a sink that gave up, must
//! not move a file checkpoint past them. Only explicit completion delivers.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AckStatus {
    /// Every holder stored its records durably (dead-lettered counts).
    Delivered,
    /// At least one holder did not: the source must not advance past the
    /// batch and should read it again after a restart.
    Failed,
}

type Callback = Box<dyn FnOnce(AckStatus) + Send>;

struct Inner {
    failed: AtomicBool,
    callback: Mutex<Option<Callback>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let cb = match self.callback.get_mut() {
            Ok(cb) => cb.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(cb) = cb {
            let status = if *self.failed.get_mut() {
                AckStatus::Failed
            } else {
                AckStatus::Delivered
            };
            cb(status);
        }
    }
}

/// One holder's share of a batch acknowledgement. See the module docs.
pub struct Ack {
    inner: Option<Arc<Inner>>,
    done: bool,
}

impl Ack {
    /// A new acknowledgement whose callback runs once every clone is
    /// completed or dropped.
    pub fn new(callback: impl FnOnce(AckStatus) + Send + 'static) -> Ack {
        Ack {
            inner: Some(Arc::new(Inner {
                failed: AtomicBool::new(false),
                callback: Mutex::new(Some(Box::new(callback))),
            })),
            done: false,
        }
    }

    /// An acknowledgement nobody waits for (sources that cannot resend,
    /// such as UDP syslog).
    pub fn none() -> Ack {
        Ack {
            inner: None,
            done: false,
        }
    }

    /// Whether a source waits on this acknowledgement.
    pub fn is_tracked(&self) -> bool {
        self.inner.is_some()
    }

    /// Ends this holder's share with `status`.
    pub fn complete(mut self, status: AckStatus) {
        if status == AckStatus::Failed
            && let Some(inner) = &self.inner
        {
            inner.failed.store(true, Ordering::Relaxed);
        }
        self.done = true;
    }

    /// Completes every acknowledgement in `acks` with `status`.
    pub fn complete_all(acks: impl IntoIterator<Item = Ack>, status: AckStatus) {
        for a in acks {
            a.complete(status);
        }
    }
}

impl Clone for Ack {
    fn clone(&self) -> Ack {
        Ack {
            inner: self.inner.clone(),
            done: false,
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if !self.done
            && let Some(inner) = &self.inner
        {
            inner.failed.store(true, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ack")
            .field("tracked", &self.inner.is_some())
            .field("done", &self.done)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn ack() -> (Ack, mpsc::Receiver<AckStatus>) {
        let (tx, rx) = mpsc::channel();
        (
            Ack::new(move |s| {
                tx.send(s).unwrap();
            }),
            rx,
        )
    }

    #[test]
    fn delivered_when_every_clone_completes() {
        let (a, rx) = ack();
        let b = a.clone();
        let c = a.clone();
        a.complete(AckStatus::Delivered);
        b.complete(AckStatus::Delivered);
        assert!(rx.try_recv().is_err(), "one clone is still out");
        c.complete(AckStatus::Delivered);
        assert_eq!(rx.try_recv(), Ok(AckStatus::Delivered));
    }

    #[test]
    fn worst_status_wins() {
        let (a, rx) = ack();
        let b = a.clone();
        b.complete(AckStatus::Failed);
        a.complete(AckStatus::Delivered);
        assert_eq!(rx.recv(), Ok(AckStatus::Failed));
    }

    #[test]
    fn a_dropped_clone_fails_the_batch() {
        let (a, rx) = ack();
        let b = a.clone();
        a.complete(AckStatus::Delivered);
        drop(b);
        assert_eq!(rx.recv(), Ok(AckStatus::Failed));
    }

    #[test]
    fn untracked_acks_do_nothing() {
        let a = Ack::none();
        assert!(!a.is_tracked());
        a.clone().complete(AckStatus::Failed);
        drop(a);
    }
}
