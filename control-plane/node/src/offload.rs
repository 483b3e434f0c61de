//! CPU-heavy request work (parsing a document, validating and compiling the config it would
//! produce) runs here: on tokio's blocking threads, at most [`cpu_slots`] at a time, never on the
//! runtime threads that drive Raft (heartbeats, votes, replication). A hostile or merely huge document can then
//! cost CPU, but not delay a heartbeat into an election.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::errors::ApiError;

/// How many CPU-heavy requests run at once (the others wait their turn): one fewer than the
/// cores available, between 2 and 4. With a single slot, every write would queue behind one
/// huge document (measured: small writes then waited 3.3 s behind a 1M-resource YAML document
/// on 2 cores, against under 0.5 s with 2 slots; heartbeats were on time either way).
pub fn cpu_slots() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get().saturating_sub(1))
        .clamp(2, 4)
}

/// The bounded pool (a semaphore in front of `spawn_blocking`).
#[derive(Clone)]
pub struct CpuPool {
    permits: Arc<Semaphore>,
}

impl Default for CpuPool {
    fn default() -> Self {
        CpuPool {
            permits: Arc::new(Semaphore::new(cpu_slots())),
        }
    }
}

impl CpuPool {
    /// Runs `f` on a blocking thread once a slot is free.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Unavailable("the node is shutting down".into()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .map_err(|e| ApiError::Internal(format!("validation task failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn runs_off_the_runtime_thread_and_at_most_cpu_slots_at_once() {
        let pool = CpuPool::default();
        let runtime_thread = std::thread::current().id();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    running.fetch_sub(1, Ordering::SeqCst);
                    std::thread::current().id()
                })
                .await
            }));
        }
        // The single runtime thread stays free while the work runs.
        tokio::task::yield_now().await;
        for t in tasks {
            let id = t.await.expect("join").expect("run");
            assert_ne!(id, runtime_thread);
        }
        assert!(peak.load(Ordering::SeqCst) <= cpu_slots());
        assert!(peak.load(Ordering::SeqCst) >= 1);
    }
}
