//! Bounded queues between stages, with the two queue policies.
//!
//! * [`QueuePolicy::Lossless`]: a bounded channel whose sender blocks when full; every item sent is
//!   received exactly once (offline evaluation).
//! * [`QueuePolicy::Latest`]: a channel of capacity one; a sender that finds it full takes the
//!   queued (older) item out, counts it as dropped and puts the newer one in, so the receiving stage
//!   always takes the newest item and never more than one item waits (real time).

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How a queue between two stages behaves when its consumer is slower than its producer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueuePolicy {
    /// Block the producer; every item is processed exactly once.
    #[default]
    Lossless,
    /// Keep only the newest item; older ones are dropped and counted.
    Latest,
}

impl QueuePolicy {
    /// The lowercase name used in launch files and summaries.
    pub fn name(self) -> &'static str {
        match self {
            QueuePolicy::Lossless => "lossless",
            QueuePolicy::Latest => "latest",
        }
    }
}

/// The sending end of a stage queue.
pub struct QueueSender<T> {
    tx: Sender<T>,
    /// For `latest`: the producer's handle on the queue, to take out a stale item.
    drain: Option<Receiver<T>>,
    dropped: Arc<AtomicU64>,
}

/// The receiving end of a stage queue.
pub struct QueueReceiver<T> {
    rx: Receiver<T>,
    dropped: Arc<AtomicU64>,
}

/// Why a [`QueueSender::send`] did not deliver.
#[derive(Debug, PartialEq, Eq)]
pub struct Disconnected;

/// A queue with `policy`; `capacity` is used by `lossless` only (`latest` always holds one item).
pub fn queue<T>(policy: QueuePolicy, capacity: usize) -> (QueueSender<T>, QueueReceiver<T>) {
    let cap = match policy {
        QueuePolicy::Lossless => capacity.max(1),
        QueuePolicy::Latest => 1,
    };
    let (tx, rx) = bounded(cap);
    let dropped = Arc::new(AtomicU64::new(0));
    let drain = (policy == QueuePolicy::Latest).then(|| rx.clone());
    (
        QueueSender {
            tx,
            drain,
            dropped: dropped.clone(),
        },
        QueueReceiver { rx, dropped },
    )
}

impl<T> QueueSender<T> {
    /// Send `item`: block while full (`lossless`) or replace the queued item (`latest`).
    ///
    /// Fails only when the receiving stage has gone.
    pub fn send(&self, item: T) -> Result<(), Disconnected> {
        match &self.drain {
            None => self.tx.send(item).map_err(|_| Disconnected),
            Some(drain) => self.send_latest(drain, item),
        }
    }

    fn send_latest(&self, drain: &Receiver<T>, mut item: T) -> Result<(), Disconnected> {
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(_)) => return Err(Disconnected),
                Err(TrySendError::Full(back)) => {
                    item = back;
                    if drain.try_recv().is_ok() {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Number of items dropped so far by the `latest` policy.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl<T> QueueReceiver<T> {
    /// The next item, waiting for it; `None` once every sender has gone and the queue is empty.
    pub fn recv(&self) -> Option<T> {
        self.rx.recv().ok()
    }

    /// The next item, waiting at most `timeout`; `Ok(None)` on timeout, `Err` once every sender
    /// has gone and the queue is empty.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<T>, Disconnected> {
        match self.rx.recv_timeout(timeout) {
            Ok(item) => Ok(Some(item)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(Disconnected),
        }
    }

    /// Number of items currently queued (at most 1 for `latest`).
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Number of items dropped so far by the `latest` policy.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A shared counter of the drops of this queue, for summaries.
    pub fn drop_counter(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }
}

/// A frame-carrying item fanned out to several consumers: each gets its own queue.
pub struct Broadcast<T> {
    senders: Vec<QueueSender<T>>,
}

impl<T: Clone> Broadcast<T> {
    /// Fan out to `senders`.
    pub fn new(senders: Vec<QueueSender<T>>) -> Self {
        Self { senders }
    }

    /// Send a clone of `item` to every live consumer; fails once all of them have gone.
    pub fn send(&mut self, item: T) -> Result<(), Disconnected> {
        self.senders.retain(|s| s.send(item.clone()).is_ok());
        if self.senders.is_empty() {
            Err(Disconnected)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossless_delivers_everything_in_order() {
        let (tx, rx) = queue(QueuePolicy::Lossless, 2);
        let h = std::thread::spawn(move || (0..100).for_each(|i| tx.send(i).unwrap()));
        let mut got = Vec::new();
        while let Ok(item) = rx.recv_timeout(Duration::from_secs(5)) {
            got.extend(item);
        }
        h.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(rx.dropped(), 0);
    }

    #[test]
    fn latest_keeps_only_the_newest() {
        let (tx, rx) = queue(QueuePolicy::Latest, 8);
        for i in 0..10 {
            tx.send(i).unwrap();
            assert!(rx.len() <= 1);
        }
        assert_eq!(rx.recv_timeout(Duration::ZERO), Ok(Some(9)));
        assert_eq!(rx.dropped(), 9);
        drop(tx);
        assert_eq!(rx.recv_timeout(Duration::ZERO), Err(Disconnected));
    }
}
