//! A few render workers (threads, each with its own render instance and store) behind a bounded
//! queue. Ingest never waits on a render: a full queue fails that capture at once.

use crate::runtime::{ErrorCode, Failure, Picture, RenderInstance, Runtime, Shot};
use crate::serve::metrics::Metrics;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

/// One piece of work for a render instance; it sends its own answer.
type Work = Box<dyn FnOnce(&Runtime, &mut RenderInstance) + Send>;

/// One render to do.
struct Job {
    work: Work,
    queued_at: Instant,
}

/// The pool's handle. Dropping every handle lets the workers finish the queue and exit.
#[derive(Clone)]
pub struct RenderPool {
    tx: SyncSender<Job>,
}

impl RenderPool {
    /// Start `workers` render threads with a queue of `queue` jobs.
    pub fn start(
        runtime: Arc<Runtime>,
        metrics: Arc<Metrics>,
        workers: usize,
        queue: usize,
    ) -> anyhow::Result<RenderPool> {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let mut renderer = runtime.renderer()?;
            let (runtime, metrics, rx) = (runtime.clone(), metrics.clone(), rx.clone());
            std::thread::Builder::new()
                .name(format!("livesnap-render-{i}"))
                .spawn(move || worker(&runtime, &mut renderer, &metrics, &rx))?;
        }
        Ok(RenderPool { tx })
    }

    /// Queue `shot`; the answer arrives on the returned channel. Fails at once when the queue is
    /// full, so the caller's stream never waits.
    pub fn submit(
        &self,
        shot: Shot,
    ) -> Result<oneshot::Receiver<Result<Picture, Failure>>, Failure> {
        self.run(move |runtime, renderer| renderer.render(runtime, &shot))
    }

    /// Queue any call on a render instance (`render-shot`, `compose-sheet`, …); the answer
    /// arrives on the returned channel. A trap or an unusable instance is a failure of this job
    /// only. Fails at once when the queue is full.
    pub fn run<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Runtime, &mut RenderInstance) -> anyhow::Result<Result<T, Failure>>
        + Send
        + 'static,
    ) -> Result<oneshot::Receiver<Result<T, Failure>>, Failure> {
        let (reply, rx) = oneshot::channel();
        let work: Work = Box::new(move |runtime, renderer| {
            let result = call(runtime, renderer).unwrap_or_else(|e| {
                Err(Failure::new(
                    ErrorCode::DecodeFailed,
                    format!("render instance unavailable: {e:#}"),
                ))
            });
            // The receiver may be gone (stream ended during shutdown); nothing to do then.
            let _ = reply.send(result);
        });
        let job = Job {
            work,
            queued_at: Instant::now(),
        };
        match self.tx.try_send(job) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(Failure::new(
                ErrorCode::LimitExceeded,
                "render queue is full: the service is overloaded",
            )),
            Err(TrySendError::Disconnected(_)) => Err(Failure::new(
                ErrorCode::DecodeFailed,
                "render workers have stopped",
            )),
        }
    }
}

fn worker(
    runtime: &Runtime,
    renderer: &mut crate::runtime::RenderInstance,
    metrics: &Metrics,
    rx: &Mutex<Receiver<Job>>,
) {
    loop {
        // Hold the lock only to take one job.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        (job.work)(runtime, renderer);
        metrics.render_latency(job.queued_at.elapsed());
    }
}
