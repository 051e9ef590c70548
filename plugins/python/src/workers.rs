//! The bounded pool of Python threads that runs `def` handlers, so a
//! blocking handler never stalls the event loop or a host thread. Each
//! worker keeps the GIL while requests are queued.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use pyo3::prelude::*;

use crate::job::Job;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    stopping: bool,
}

/// The pool.
pub struct SyncWorkers {
    queue: Arc<(Mutex<Queue>, Condvar)>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl SyncWorkers {
    /// Starts `count` threads calling `call_sync` (`Runtime.call_sync`).
    pub fn start(count: usize, call_sync: Py<PyAny>) -> std::io::Result<Self> {
        let queue: Arc<(Mutex<Queue>, Condvar)> = Arc::default();
        let call_sync = Arc::new(call_sync);
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            let (queue, call_sync) = (queue.clone(), call_sync.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("spikard-py-sync-{i}"))
                    .spawn(move || work(&queue, &call_sync))?,
            );
        }
        Ok(SyncWorkers {
            queue,
            threads: Mutex::new(threads),
        })
    }

    /// Queues a request for the next free worker.
    pub fn submit(&self, job: Job) {
        let (lock, ready) = &*self.queue;
        lock.lock()
            .unwrap_or_else(|e| e.into_inner())
            .jobs
            .push_back(job);
        ready.notify_one();
    }

    /// Lets the workers finish what is queued, then joins them.
    pub fn stop(&self) {
        let (lock, ready) = &*self.queue;
        lock.lock().unwrap_or_else(|e| e.into_inner()).stopping = true;
        ready.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

fn work(queue: &(Mutex<Queue>, Condvar), call_sync: &Py<PyAny>) {
    let (lock, ready) = queue;
    let pop = || {
        lock.lock()
            .unwrap_or_else(|e| e.into_inner())
            .jobs
            .pop_front()
    };
    loop {
        let first = {
            let mut queue = lock.lock().unwrap_or_else(|e| e.into_inner());
            while queue.jobs.is_empty() && !queue.stopping {
                queue = ready.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
            match queue.jobs.pop_front() {
                Some(job) => job,
                None => return,
            }
        };
        // One GIL acquisition for as long as there is work. Jobs are taken
        // one at a time, so while a handler blocks (and releases the GIL)
        // the other workers take the rest.
        Python::attach(|py| {
            let call_sync = call_sync.bind(py);
            first.run(py, call_sync);
            while let Some(job) = pop() {
                job.run(py, call_sync);
            }
        });
    }
}
