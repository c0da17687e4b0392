//! Leader election through the task store, so it works the same with or without
//! Kubernetes: the lease is a `leader_lease` row (SQLite) or a `SET NX PX` key (Redis) with
//! an expiry, renewed every `renew_every`. Only the holder writes status and runs
//! singleton work; a holder that fails to renew steps down at once, so loss of the lease
//! stops singleton work within one renewal period.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::TaskStore;

/// Lease timing. `ttl` must be larger than `renew_every` (3× is usual).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    pub ttl: Duration,
    pub renew_every: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming { ttl: Duration::from_secs(15), renew_every: Duration::from_secs(5) }
    }
}

#[derive(Debug, Clone, Copy)]
struct Held {
    leader: bool,
    /// When the lease was last confirmed (acquired or renewed).
    confirmed: Option<Instant>,
}

/// A cheap, cloneable view of this process's leadership.
#[derive(Clone, Debug)]
pub struct Leadership {
    rx: watch::Receiver<Held>,
    ttl: Duration,
    holder: Arc<str>,
    /// Keeps the sender of [`Leadership::always`] alive.
    _fixed: Option<Arc<watch::Sender<Held>>>,
}

impl Leadership {
    /// Whether this process holds the lease now. Also false once the last confirmation is
    /// older than the TTL (e.g. the renewal task is stuck), whatever the last answer was.
    pub fn is_leader(&self) -> bool {
        let h = *self.rx.borrow();
        h.leader && h.confirmed.is_some_and(|t| t.elapsed() < self.ttl)
    }

    /// This process's holder id.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Waits until leadership changes (either way); returns the new value.
    pub async fn changed(&mut self) -> bool {
        if self.rx.changed().await.is_err() {
            // The election stopped: we cannot hold the lease any more.
            futures::future::pending::<()>().await;
        }
        self.rx.borrow_and_update().leader
    }

    /// A leadership that is always held (one process, no election; for tests and tools).
    pub fn always() -> Leadership {
        let (tx, rx) = watch::channel(Held { leader: true, confirmed: Some(Instant::now()) });
        Leadership { rx, ttl: Duration::MAX, holder: Arc::from("always"), _fixed: Some(Arc::new(tx)) }
    }

    /// A stream that yields once each time this process becomes leader.
    pub fn acquisitions(&self) -> impl futures::Stream<Item = ()> + Send + 'static {
        let this = self.clone();
        futures::stream::unfold(this, |mut l| async move {
            loop {
                if l.changed().await {
                    return Some(((), l));
                }
            }
        })
    }
}

/// The running election. Dropping it does not stop it: call [`Election::stop`].
pub struct Election {
    pub leadership: Leadership,
    task: JoinHandle<()>,
    store: Arc<dyn TaskStore>,
    lease: String,
}

impl Election {
    /// Starts competing for `lease` as `holder`.
    pub fn start(store: Arc<dyn TaskStore>, lease: String, holder: String, timing: LeaseTiming) -> Election {
        let (tx, rx) = watch::channel(Held { leader: false, confirmed: None });
        let leadership = Leadership { rx, ttl: timing.ttl, holder: Arc::from(holder.as_str()), _fixed: None };
        let task = {
            let store = store.clone();
            let lease = lease.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(timing.renew_every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let started = Instant::now();
                    let held = match store.try_acquire_lease(&lease, &holder, timing.ttl).await {
                        Ok(true) => Held { leader: true, confirmed: Some(started) },
                        Ok(false) => Held { leader: false, confirmed: None },
                        Err(e) => {
                            tracing::warn!(lease = %lease, error = %e, "cannot renew the lease; stepping down");
                            Held { leader: false, confirmed: None }
                        }
                    };
                    let was = tx.borrow().leader;
                    if was != held.leader {
                        tracing::info!(lease = %lease, holder = %holder, leader = held.leader, "leadership changed");
                        tx.send_replace(held);
                    } else {
                        // Same answer: refresh the confirmation time without waking watchers.
                        tx.send_if_modified(|h| {
                            *h = held;
                            false
                        });
                    }
                }
            })
        };
        Election { leadership, task, store, lease }
    }

    /// Stops renewing and releases the lease if held, so another process takes over at once.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        if let Err(e) = self.store.release_lease(&self.lease, self.leadership.holder()).await {
            tracing::warn!(lease = %self.lease, error = %e, "cannot release the lease");
        }
    }

    /// Stops renewing without releasing (as a crashed process would); the lease expires.
    pub fn abandon(self) {
        self.task.abort();
    }
}

/// The lease name of a cluster's operator (under `cluster/`, so the finalizer's
/// `delete_cluster_state` removes it).
pub fn lease_name(cluster: &str) -> String {
    format!("{cluster}/operator-leader")
}
