//! Job conditions (Suspended, SuccessCriteriaMet, FailureTarget, Complete, Failed) and the
//! reading of a Job's state from its status.

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
pub const FAILURE_TARGET: &str = "FailureTarget";
pub const SUSPENDED: &str = "Suspended";

/// Reason of Complete and SuccessCriteriaMet when the completions are reached.
pub const COMPLETIONS_REACHED: &str = "CompletionsReached";
pub const COMPLETE_MESSAGE: &str = "Reached expected number of succeeded pods";
pub const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
pub const BACKOFF_MESSAGE: &str = "Job has reached the specified backoff limit";
pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
pub const DEADLINE_MESSAGE: &str = "Job was active longer than specified deadline";
pub const POD_FAILURE_POLICY: &str = "PodFailurePolicy";

/// The condition of `type_` if its status is True.
pub fn true_condition<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the Job has finished (Complete or Failed is True).
pub fn is_finished(job: &Job) -> bool {
    job.status.as_ref().is_some_and(|s| {
        true_condition(s, COMPLETE).is_some() || true_condition(s, FAILED).is_some()
    })
}

/// When the Job finished: its completionTime, or when Failed turned True.
pub fn finished_at(job: &Job) -> Option<jiff::Timestamp> {
    let status = job.status.as_ref()?;
    if let Some(c) = true_condition(status, COMPLETE) {
        return status
            .completion_time
            .as_ref()
            .or(c.last_transition_time.as_ref())
            .map(|t| t.0);
    }
    true_condition(status, FAILED)?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// Sets a condition; its transition time changes only when its status does. Returns whether
/// anything changed.
pub fn set_condition(
    status: &mut JobStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> bool {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status == value && c.reason.as_deref() == Some(reason) {
            return false;
        }
        if c.status != value {
            c.last_transition_time = Some(Time(now));
        }
        c.status = value.into();
        c.reason = Some(reason.into());
        c.message = Some(message.into());
        c.last_probe_time = Some(Time(now));
        return true;
    }
    conds.push(JobCondition {
        type_: type_.into(),
        status: value.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
    true
}

/// How the Job is ending, once its success or failure criteria are met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Success,
    Failure { reason: String, message: String },
}

impl Ending {
    /// The ending an earlier reconcile already decided (SuccessCriteriaMet / FailureTarget).
    pub fn decided(status: &JobStatus) -> Option<Ending> {
        if let Some(c) = true_condition(status, FAILURE_TARGET) {
            return Some(Ending::Failure {
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
            });
        }
        true_condition(status, SUCCESS_CRITERIA_MET).map(|_| Ending::Success)
    }

    pub fn failure(reason: &str, message: &str) -> Ending {
        Ending::Failure {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// The interim condition (set while the pods terminate).
    pub fn mark_target(&self, status: &mut JobStatus, now: jiff::Timestamp) -> bool {
        match self {
            Ending::Success => set_condition(
                status,
                SUCCESS_CRITERIA_MET,
                "True",
                COMPLETIONS_REACHED,
                COMPLETE_MESSAGE,
                now,
            ),
            Ending::Failure { reason, message } => {
                set_condition(status, FAILURE_TARGET, "True", reason, message, now)
            }
        }
    }

    /// The final condition (every pod has terminated); completionTime on success.
    pub fn mark_final(&self, status: &mut JobStatus, now: jiff::Timestamp) {
        match self {
            Ending::Success => {
                set_condition(
                    status,
                    COMPLETE,
                    "True",
                    COMPLETIONS_REACHED,
                    COMPLETE_MESSAGE,
                    now,
                );
                status.completion_time = Some(Time(now));
            }
            Ending::Failure { reason, message } => {
                set_condition(status, FAILED, "True", reason, message, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_keep_their_transition_time() {
        let t0: jiff::Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let t1: jiff::Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        let mut s = JobStatus::default();
        assert!(set_condition(
            &mut s,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            t0
        ));
        assert!(!set_condition(
            &mut s,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            t1
        ));
        assert!(set_condition(
            &mut s,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            t1
        ));
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(c.last_transition_time, Some(Time(t1)));
        Ending::failure(BACKOFF_LIMIT_EXCEEDED, BACKOFF_MESSAGE).mark_target(&mut s, t1);
        assert_eq!(
            Ending::decided(&s),
            Some(Ending::failure(BACKOFF_LIMIT_EXCEEDED, BACKOFF_MESSAGE))
        );
    }
}
