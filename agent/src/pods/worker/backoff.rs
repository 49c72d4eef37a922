//! The restart back-off: 10 s doubling to 5 min (CrashLoopBackOff, ImagePullBackOff), and the
//! kubelet's reset of a container's crash back-off once an attempt has run for 10 minutes.

use std::time::Duration;

use k8s_openapi::api::core::v1::ContainerStateTerminated;

use crate::pods::state::ContainerRecord;

/// An attempt that ran this long starts a fresh back-off (the kubelet forgets a back-off entry
/// after twice its 5-minute maximum).
pub const CRASH_RESET: Duration = Duration::from_secs(600);

/// Kubernetes' back-off: 10 s doubling to 5 min.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(10u64.saturating_mul(1 << failures.min(5)).min(300))
}

/// How many restarts in a row precede the one now due: the recorded streak (or, for records
/// of older agents, the restart count), reset when the ended attempt ran for [`CRASH_RESET`].
pub fn crash_streak(rec: &ContainerRecord, ended: &ContainerStateTerminated) -> u32 {
    let ran = match (&ended.started_at, &ended.finished_at) {
        (Some(start), Some(end)) => end.0.duration_since(start.0).unsigned_abs(),
        _ => Duration::ZERO,
    };
    if ran >= CRASH_RESET {
        0
    } else {
        rec.crash_streak
            .unwrap_or_else(|| u32::try_from(rec.restart_count).unwrap_or(0))
    }
}

/// The wait before the next restart after `streak` restarts in a row (the first is immediate).
pub fn crash_delay(streak: u32) -> Duration {
    match streak {
        0 => Duration::ZERO,
        n => backoff(n - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ended(start: jiff::Timestamp, ran: Duration) -> ContainerStateTerminated {
        ContainerStateTerminated {
            exit_code: 1,
            started_at: Some(Time(start)),
            finished_at: Some(Time(start + ran)),
            ..Default::default()
        }
    }

    #[test]
    fn back_off_doubles_to_five_minutes() {
        let delays: Vec<u64> = (0..8).map(|s| crash_delay(s).as_secs()).collect();
        assert_eq!(delays, vec![0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn ten_minutes_of_running_resets_the_back_off() {
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let rec = ContainerRecord {
            restart_count: 9,
            crash_streak: Some(7),
            ..Default::default()
        };
        // A quick crash keeps climbing: 7 restarts in a row → 5 min.
        let quick = ended(t0, Duration::from_secs(30));
        assert_eq!(crash_streak(&rec, &quick), 7);
        assert_eq!(crash_delay(crash_streak(&rec, &quick)), backoff(6));
        // Just under 10 minutes is not enough.
        let almost = ended(t0, CRASH_RESET - Duration::from_secs(1));
        assert_eq!(crash_streak(&rec, &almost), 7);
        // 10 minutes running: restart at once, and the next crash waits 10 s again.
        let long = ended(t0, CRASH_RESET);
        assert_eq!(crash_streak(&rec, &long), 0);
        assert_eq!(crash_delay(0), Duration::ZERO);
        assert_eq!(crash_delay(1), Duration::from_secs(10));
        // Records written before the streak existed fall back to the restart count.
        let old = ContainerRecord {
            restart_count: 3,
            ..Default::default()
        };
        assert_eq!(crash_streak(&old, &quick), 3);
    }
}
