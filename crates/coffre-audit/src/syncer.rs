//! The log's fdatasync thread, in the manner of a database's WAL writer:
//! appends ask for "durable through event N" and wait; the thread syncs
//! everything written so far, so one fdatasync serves every append waiting
//! at that moment, with no blocking-pool hop or lock convoy per sync.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use coffre_disk::FlushWindow;
use tokio::sync::watch;

use crate::log::{State, lock};

/// Pause after a failed round before the next try.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
struct Synced {
    count: u64,
    /// Rounds finished so far, so a waiter reads only the outcome of a
    /// round that started after it asked.
    round: u64,
    /// The last round failed (a full disk: the events stay pending; a failed
    /// fdatasync: the log is poisoned for good).
    failed: bool,
}

struct Shared {
    /// (highest count asked for, stop)
    wanted: Mutex<(u64, bool)>,
    wake: Condvar,
    done: watch::Sender<Synced>,
}

pub(crate) struct Syncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    pub(crate) fn start(state: Arc<Mutex<State>>, synced: u64, fsync: bool) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            wanted: Mutex::new((synced, false)),
            wake: Condvar::new(),
            done: watch::Sender::new(Synced { count: synced, round: 0, failed: false }),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("coffre-audit-sync".into())
            .spawn(move || run(&worker, &state, synced, fsync, FlushWindow::open()))?;
        Ok(Self { shared, thread: Some(thread) })
    }

    /// Waits until the first `count` events are on disk; false if the log
    /// can no longer get there (a failed write or sync).
    pub(crate) async fn wait_for(&self, count: u64) -> bool {
        let asked = *self.shared.done.borrow();
        if asked.count >= count {
            return true;
        }
        {
            let mut wanted = lock(&self.shared.wanted);
            if wanted.0 < count {
                wanted.0 = count;
                self.shared.wake.notify_one();
            }
        }
        let mut done = self.shared.done.subscribe();
        // A round that finished before this waiter asked says nothing about it.
        let after = asked.round + 1;
        match done.wait_for(|s| s.count >= count || (s.failed && s.round > after)).await {
            Ok(s) => s.count >= count,
            Err(_) => false,
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        lock(&self.shared.wanted).1 = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `window` opened with the log: once a flush failed anywhere in the process,
/// the disk may have dropped events this thread wrote, and its own good
/// fdatasync would not tell.
fn run(shared: &Shared, state: &Mutex<State>, mut synced: u64, fsync: bool, window: FlushWindow) {
    let mut round = 0u64;
    loop {
        let stopping = {
            let mut wanted = lock(&shared.wanted);
            while wanted.0 <= synced && !wanted.1 {
                wanted = shared.wake.wait(wanted).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if wanted.0 <= synced {
                return;
            }
            wanted.1
        };
        let taken = {
            let mut state = lock(state);
            match state.flush() {
                Err(e) => Err(format!("writing the audit log failed: {e}")),
                Ok(()) if state.poisoned.is_some() => Err("the audit log is poisoned".into()),
                Ok(()) => state
                    .file
                    .try_clone()
                    .map(|file| (file, state.frontier.size()))
                    .map_err(|e| format!("could not reach the segment file: {e}")),
            }
        };
        round += 1;
        let (file, target) = match taken {
            Ok(taken) => taken,
            Err(why) => {
                tracing::error!(error = %why, "audit log events could not be written; retrying at the next sync");
                shared.done.send_replace(Synced { count: synced, round, failed: true });
                if stopping {
                    return;
                }
                // A full disk stays full for a while: retry, but not in a spin.
                std::thread::sleep(RETRY_AFTER);
                continue;
            }
        };
        let durable = if fsync { coffre_disk::sync_data(&file).and_then(|()| window.check()) } else { Ok(()) };
        match durable {
            Ok(()) => {
                synced = target;
                shared.done.send_replace(Synced { count: synced, round, failed: false });
            }
            Err(e) => {
                // After a failed fsync the kernel may have dropped the dirty
                // pages: a later "successful" sync would prove nothing.
                lock(state).poisoned = Some(format!("fdatasync failed: {e}"));
                shared.done.send_replace(Synced { count: synced, round, failed: true });
                tracing::error!(error = %e, "audit log fdatasync failed: the log takes no more events");
                if stopping {
                    return;
                }
                std::thread::sleep(RETRY_AFTER);
            }
        }
    }
}
