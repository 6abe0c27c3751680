//! Writer tasks: they share one queue of batches and one [`Writer`] (client, statistics,
//! breaker), and report each batch back; acknowledgements feed the tracker, the progress
//! counters and, every 2 s, the checkpoint.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::SeedableRng;
use tokio::sync::{Mutex, mpsc};

use super::super::{IngestError, Progress};
use super::producer::Pending;
use super::tracker::{Checkpoint, Tracker};
use crate::store::influx::InfluxError;
use crate::store::influx::write::Writer;

/// Runs `count` writer tasks until `queue` is closed and drained, or a batch fails for good;
/// returns the first failure. On a failure the load is cancelled and the queue closed, so the
/// producers stop and the other writers finish what is already queued.
pub(super) async fn run(
    writer: &Writer,
    count: usize,
    queue: mpsc::Receiver<Pending>,
    tracker: &Tracker,
    progress: &Progress,
    checkpoint: &mut Checkpoint,
) -> Option<IngestError> {
    let queue = Arc::new(Mutex::new(queue));
    let (acks, mut ack_receiver) = mpsc::unbounded_channel::<Result<Pending, InfluxError>>();
    for i in 0..count {
        let (writer, queue, acks) = (writer.clone(), queue.clone(), acks.clone());
        tokio::spawn(async move {
            // Jitter only: the seed need not be random, only different per writer.
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(i as u64 + 1);
            loop {
                let next = queue.lock().await.recv().await;
                let Some(pending) = next else { break };
                let result = writer
                    .write(&pending.batch, &mut rng)
                    .await
                    .map(|()| pending);
                let failed = result.is_err();
                if acks.send(result).is_err() || failed {
                    break;
                }
            }
        });
    }
    drop(acks);
    let mut failure = None;
    let mut save = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            message = ack_receiver.recv() => match message {
                Some(Ok(pending)) => {
                    tracker.batch_acknowledged(&pending.chunks);
                    progress.done.fetch_add(pending.trades, Ordering::Relaxed);
                }
                Some(Err(e)) => {
                    progress.cancel();
                    failure.get_or_insert(e.into());
                    queue.lock().await.close();
                }
                None => break,
            },
            _ = save.tick() => {
                if let Err(e) = checkpoint.save(tracker.done()) {
                    failure.get_or_insert(e);
                }
            }
        }
    }
    failure
}
