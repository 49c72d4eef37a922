//! Leader election among control-plane replicas that share one store (etcd): a
//! `coordination.k8s.io/v1` Lease (`kube-system/skiff-controller-manager`) taken and renewed
//! through the Registry with optimistic concurrency, as client-go's leaderelection does.
//!
//! Architecture invariant: the scheduler and the controllers run only in the replica that holds
//! the lease; every replica serves the API. `skiff-control serve` waits to acquire the lease
//! before it starts them and, when it can no longer renew it (or sees another holder), exits
//! the process non-zero so a supervisor restarts it as a follower. Exiting is the simplest
//! correct way to stop every controller task at once: nothing keeps acting on a stale view.
//!
//! A lease held by another replica counts as expired when either (a) this replica has watched
//! it stay unchanged for `leaseDurationSeconds` (measured on the local monotonic clock, immune
//! to clock skew), or (b) its `renewTime + leaseDurationSeconds` is already past by the wall
//! clock (so a replica that restarts after a crash need not wait a full term when the old
//! holder is long gone; this part trusts the replicas' clocks to roughly agree).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::apiserver::error::ApiError;
use crate::apiserver::registry::Registry;

/// Timing and naming of the election.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity in `holderIdentity` (unique per process).
    pub identity: String,
    /// `leaseDurationSeconds`: how long a holder that stopped renewing keeps the lease.
    pub lease_duration: Duration,
    /// How often the holder renews, and how often a follower retries.
    pub retry_period: Duration,
    /// The holder gives up when it could not renew for this long (less than the duration, so
    /// it stops before anybody else may take over).
    pub renew_deadline: Duration,
}

impl LeaderConfig {
    /// The controller manager's lease with Kubernetes' usual timing (15 s / 10 s / 2 s).
    pub fn controller_manager(identity: String) -> LeaderConfig {
        LeaderConfig {
            namespace: "kube-system".into(),
            name: "skiff-controller-manager".into(),
            identity,
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(10),
        }
    }
}

/// A unique identity for this process: `HOSTNAME_RANDOM`.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "skiff".into());
    format!("{host}_{}", uuid::Uuid::new_v4().simple())
}

/// Errors of one election round.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Reading or writing the lease failed.
    #[error("lease {name}: {source}")]
    Api {
        name: String,
        #[source]
        source: Box<ApiError>,
    },
}

/// Why [`LeaderElector::hold`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// Another replica holds the lease now.
    TakenBy(String),
    /// Renewing failed for longer than the renew deadline.
    RenewDeadline,
}

/// One replica's view of the election.
pub struct LeaderElector {
    registry: Registry,
    config: LeaderConfig,
    /// The other holder's lease as last seen (`holder`, `resourceVersion`) and when it changed.
    observed: Option<(String, String, Instant)>,
}

impl LeaderElector {
    pub fn new(registry: Registry, config: LeaderConfig) -> LeaderElector {
        LeaderElector {
            registry,
            config,
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// One round: creates, renews or takes over the lease. `Ok(true)` when this replica holds
    /// it afterwards; losing a race (409) is `Ok(false)`.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let c = self.config.clone();
        let now = MicroTime(Timestamp::now());
        let duration_secs = c.lease_duration.as_secs().max(1) as i32;
        let lease = match self
            .registry
            .get::<Lease>(Some(&c.namespace), &c.name)
            .await
        {
            Ok(lease) => lease,
            Err(ApiError::NotFound { .. }) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(c.name.clone()),
                        namespace: Some(c.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(c.identity.clone()),
                        lease_duration_seconds: Some(duration_secs),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                return self.outcome(self.registry.create(&lease).await);
            }
            Err(source) => return Err(self.error(source)),
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == c.identity;
        if !ours && !holder.is_empty() && !self.expired(&lease, &holder) {
            return Ok(false);
        }
        if !ours {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            info!(previous = %holder, identity = %c.identity, "taking over the leader lease");
        }
        spec.holder_identity = Some(c.identity.clone());
        spec.lease_duration_seconds = Some(duration_secs);
        spec.renew_time = Some(now);
        let updated = Lease {
            metadata: lease.metadata,
            spec: Some(spec),
        };
        self.outcome(self.registry.replace(&updated).await)
    }

    /// Whether another holder's lease has run out (see the module doc for the two rules).
    fn expired(&mut self, lease: &Lease, holder: &str) -> bool {
        let spec = lease.spec.as_ref();
        let secs = spec
            .and_then(|s| s.lease_duration_seconds)
            .unwrap_or(self.config.lease_duration.as_secs() as i32)
            .max(1);
        let duration = Duration::from_secs(secs as u64);
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let observed_at = match &self.observed {
            Some((h, v, at)) if h == holder && *v == version => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((holder.to_string(), version, at));
                at
            }
        };
        if observed_at.elapsed() >= duration {
            return true;
        }
        let renewed = spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0);
        renewed.is_some_and(|t| {
            Timestamp::now().duration_since(t) >= jiff::SignedDuration::from_secs(secs.into())
        })
    }

    fn outcome(&self, result: Result<Lease, ApiError>) -> Result<bool, LeaderError> {
        match result {
            Ok(_) => Ok(true),
            Err(ApiError::Conflict { .. } | ApiError::AlreadyExists { .. }) => Ok(false),
            Err(source) => Err(self.error(source)),
        }
    }

    fn error(&self, source: ApiError) -> LeaderError {
        LeaderError::Api {
            name: format!("{}/{}", self.config.namespace, self.config.name),
            source: Box::new(source),
        }
    }

    /// Retries every `retry_period` until this replica holds the lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    info!(identity = %self.config.identity, "became leader");
                    return;
                }
                Ok(false) => {}
                Err(e) => warn!(error = %e, "leader election"),
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews every `retry_period` while leading; returns when leadership is lost.
    pub async fn hold(&mut self) -> Lost {
        let mut last_renew = Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            // A store that hangs must not keep us "leading" past the deadline.
            let left = self
                .config
                .renew_deadline
                .saturating_sub(last_renew.elapsed());
            match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_renew = Instant::now(),
                Ok(Ok(false)) => {
                    let holder = self.current_holder().await.unwrap_or_default();
                    if !holder.is_empty() && holder != self.config.identity {
                        return Lost::TakenBy(holder);
                    }
                }
                Ok(Err(e)) => warn!(error = %e, "renewing the leader lease"),
                Err(_) => warn!("renewing the leader lease timed out"),
            }
            if last_renew.elapsed() >= self.config.renew_deadline {
                return Lost::RenewDeadline;
            }
        }
    }

    async fn current_holder(&self) -> Option<String> {
        let c = &self.config;
        let lease = self
            .registry
            .get::<Lease>(Some(&c.namespace), &c.name)
            .await
            .ok()?;
        lease.spec?.holder_identity
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::apiserver::registry::memstore::MemStore;

    async fn registry() -> Registry {
        Registry::new(Arc::new(MemStore::new())).await.unwrap()
    }

    fn config(identity: &str) -> LeaderConfig {
        LeaderConfig {
            lease_duration: Duration::from_secs(1),
            retry_period: Duration::from_millis(100),
            renew_deadline: Duration::from_millis(700),
            ..LeaderConfig::controller_manager(identity.into())
        }
    }

    async fn lease(r: &Registry) -> LeaseSpec {
        r.get::<Lease>(Some("kube-system"), "skiff-controller-manager")
            .await
            .unwrap()
            .spec
            .unwrap()
    }

    #[tokio::test]
    async fn one_leader_at_a_time_and_takeover_after_expiry() {
        let r = registry().await;
        let mut a = LeaderElector::new(r.clone(), config("a"));
        let mut b = LeaderElector::new(r.clone(), config("b"));
        assert!(a.try_acquire_or_renew().await.unwrap());
        // While `a` renews, `b` never gets the lease, for longer than its duration.
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            assert!(a.try_acquire_or_renew().await.unwrap());
            assert!(!b.try_acquire_or_renew().await.unwrap());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(lease(&r).await.holder_identity.as_deref(), Some("a"));
        // `a` stops renewing: `b` takes over once the lease expired, not before.
        let stopped = Instant::now();
        b.acquire().await;
        let waited = stopped.elapsed();
        assert!(
            waited >= Duration::from_millis(900),
            "took over after {waited:?}"
        );
        let spec = lease(&r).await;
        assert_eq!(spec.holder_identity.as_deref(), Some("b"));
        assert_eq!(spec.lease_transitions, Some(1));
        assert_eq!(spec.lease_duration_seconds, Some(1));
        assert!(!a.try_acquire_or_renew().await.unwrap());
    }

    #[tokio::test]
    async fn hold_returns_when_another_replica_holds_the_lease() {
        let r = registry().await;
        let mut a = LeaderElector::new(r.clone(), config("a"));
        a.acquire().await;
        let holding = tokio::spawn(async move { a.hold().await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!holding.is_finished(), "renewing keeps the lease");
        // Someone else writes the lease (as a replica that judged it expired would).
        let mut l: Lease = r
            .get(Some("kube-system"), "skiff-controller-manager")
            .await
            .unwrap();
        l.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
        r.replace(&l).await.unwrap();
        let lost = tokio::time::timeout(Duration::from_secs(3), holding)
            .await
            .expect("hold returns")
            .unwrap();
        assert_eq!(lost, Lost::TakenBy("intruder".into()));
    }

    #[tokio::test]
    async fn a_long_stale_lease_is_taken_at_once() {
        let r = registry().await;
        let long_ago = MicroTime(Timestamp::now() - jiff::SignedDuration::from_secs(60));
        r.create(&Lease {
            metadata: ObjectMeta {
                name: Some("skiff-controller-manager".into()),
                namespace: Some("kube-system".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("crashed".into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(long_ago),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
        let mut a = LeaderElector::new(r.clone(), config("a"));
        assert!(a.try_acquire_or_renew().await.unwrap());
        assert_eq!(lease(&r).await.holder_identity.as_deref(), Some("a"));
    }
}
