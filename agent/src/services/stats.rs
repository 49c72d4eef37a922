//! How long service changes take to reach the maps, kept for the agent's metrics: from
//! receiving a change to the last map write, and — like kube-proxy's
//! `network_programming_duration_seconds` — from the EndpointSlice controller's
//! `endpoints.kubernetes.io/last-change-trigger-time` to the write.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The annotation the EndpointSlice controller sets to the time of the change it reflects.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// Upper bounds of the histogram buckets, in seconds.
pub const BUCKETS: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// A Prometheus-style histogram (cumulative buckets, sum, count).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Histogram {
    /// Observations ≤ `BUCKETS[i]`.
    pub buckets: [u64; BUCKETS.len()],
    pub count: u64,
    pub sum_seconds: f64,
    pub max_seconds: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if s <= *bound {
                self.buckets[i] += 1;
            }
        }
        self.count += 1;
        self.sum_seconds += s;
        self.max_seconds = self.max_seconds.max(s);
    }
}

/// Both latencies, shared between the programmer and (later) the metrics endpoint.
#[derive(Debug, Default)]
pub struct ProgrammingStats {
    inner: Mutex<(Histogram, Histogram)>,
}

impl ProgrammingStats {
    /// Records one programming: `applied` from receipt, `trigger` from the change itself.
    pub fn record(&self, applied: Duration, trigger: Option<Duration>) {
        let mut g = self.inner.lock().expect("stats lock");
        g.0.observe(applied);
        if let Some(t) = trigger {
            g.1.observe(t);
        }
    }

    /// Receipt → maps written.
    pub fn applied(&self) -> Histogram {
        self.inner.lock().expect("stats lock").0.clone()
    }

    /// Change trigger time → maps written (EndpointSlice changes that carry the annotation).
    pub fn network_programming(&self) -> Histogram {
        self.inner.lock().expect("stats lock").1.clone()
    }
}

/// How long ago the change a slice reflects happened, from its trigger-time annotation.
pub fn trigger_time(slice: &EndpointSlice) -> Option<Duration> {
    let at: jiff::Timestamp = slice
        .metadata
        .annotations
        .as_ref()?
        .get(TRIGGER_TIME_ANNOTATION)?
        .parse()
        .ok()?;
    let elapsed = jiff::Timestamp::now().duration_since(at);
    Duration::try_from(elapsed).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let stats = ProgrammingStats::default();
        stats.record(Duration::from_micros(500), None);
        stats.record(Duration::from_millis(30), Some(Duration::from_millis(40)));
        let h = stats.applied();
        assert_eq!(h.count, 2);
        assert_eq!(h.buckets[0], 1, "≤1ms");
        assert_eq!(h.buckets[5], 2, "≤50ms");
        assert!((h.max_seconds - 0.03).abs() < 1e-9);
        assert_eq!(stats.network_programming().count, 1);
    }

    #[test]
    fn trigger_time_reads_the_annotation() {
        let mut slice = EndpointSlice::default();
        assert_eq!(trigger_time(&slice), None);
        let past = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(3);
        slice.metadata.annotations = Some(
            [(TRIGGER_TIME_ANNOTATION.to_string(), past.to_string())]
                .into_iter()
                .collect(),
        );
        let t = trigger_time(&slice).unwrap();
        assert!(
            t >= Duration::from_secs(3) && t < Duration::from_secs(60),
            "{t:?}"
        );
    }
}
