//! The job state machine: the twelve states of a job and every allowed
//! transition, as pure functions with no I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
    /// Accepted, not planned yet.
    New,
    /// The plugin's `plan` is turning the job into tasks.
    Preparing,
    /// Planned; waits for a user to confirm it.
    Suspended,
    /// Planned; waits for a worker.
    Ready,
    /// Tasks are running.
    Active,
    /// Every task ran (some may have failed). Final.
    Complete,
    /// Failing: running tasks drain, then the job is Failed.
    Failing,
    /// Final.
    Failed,
    /// Cancel requested: running tasks drain, then the job is Cancelled.
    Cancelling,
    /// Final.
    Cancelled,
    /// Pause requested: running tasks drain, then the job is Paused.
    Pausing,
    /// Stopped at a task boundary; resumes from where it stood.
    Paused,
}

/// Every state, in lifecycle order.
pub const ALL_STATES: [JobState; 12] = [
    JobState::New,
    JobState::Preparing,
    JobState::Suspended,
    JobState::Ready,
    JobState::Active,
    JobState::Complete,
    JobState::Failing,
    JobState::Failed,
    JobState::Cancelling,
    JobState::Cancelled,
    JobState::Pausing,
    JobState::Paused,
];

impl JobState {
    /// The state's name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::New => "New",
            JobState::Preparing => "Preparing",
            JobState::Suspended => "Suspended",
            JobState::Ready => "Ready",
            JobState::Active => "Active",
            JobState::Complete => "Complete",
            JobState::Failing => "Failing",
            JobState::Failed => "Failed",
            JobState::Cancelling => "Cancelling",
            JobState::Cancelled => "Cancelled",
            JobState::Pausing => "Pausing",
            JobState::Paused => "Paused",
        }
    }

    /// Complete, Failed and Cancelled: nothing happens to the job any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Complete | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no state.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown job state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_STATES
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// Something that happens to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A worker starts planning it.
    Prepare,
    /// Planning is done; `confirm` says whether a user must confirm first.
    Planned { confirm: bool },
    /// A user confirms a suspended job.
    Confirm,
    /// A worker starts its tasks.
    Start,
    /// The last task ended.
    Finished,
    /// Something fails the job (plan rejected its input, too many failed tasks, finish failed).
    Fail,
    /// The running tasks of a failing job have drained.
    Failed,
    /// A user cancels.
    Cancel,
    /// The running tasks of a cancelling job have drained.
    Cancelled,
    /// A user, or preemption, pauses.
    Pause,
    /// The running tasks of a pausing job have drained.
    Paused,
    /// A user resumes a paused job, or preemption ends.
    Resume,
    /// A user restarts a failed or cancelled job from scratch.
    Restart,
    /// The host restarted while the job was being planned: plan it again.
    Replan,
}

/// A transition the state machine forbids.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("a job in state {from} cannot {event}")]
pub struct Forbidden {
    /// The state the job was in.
    pub from: JobState,
    /// What was asked, in words.
    pub event: &'static str,
}

impl Event {
    fn verb(self) -> &'static str {
        match self {
            Event::Prepare => "be prepared",
            Event::Planned { .. } => "finish planning",
            Event::Confirm => "be confirmed",
            Event::Start => "start",
            Event::Finished => "complete",
            Event::Fail => "fail",
            Event::Failed => "become Failed",
            Event::Cancel => "be cancelled",
            Event::Cancelled => "become Cancelled",
            Event::Pause => "be paused",
            Event::Paused => "become Paused",
            Event::Resume => "be resumed",
            Event::Restart => "be restarted",
            Event::Replan => "be planned again",
        }
    }
}

/// The state a job in `from` moves to on `event`, or why it may not.
pub fn transition(from: JobState, event: Event) -> Result<JobState, Forbidden> {
    use JobState::*;
    let to = match (from, event) {
        (New, Event::Prepare) => Preparing,
        (Preparing, Event::Planned { confirm: true }) => Suspended,
        (Preparing, Event::Planned { confirm: false }) => Ready,
        (Suspended, Event::Confirm) => Ready,
        (Ready, Event::Start) => Active,
        (Active, Event::Finished) => Complete,
        (New | Preparing | Suspended | Ready | Active | Pausing | Paused, Event::Fail) => Failing,
        (Failing, Event::Failed) => Failed,
        (New | Preparing | Suspended | Ready | Active | Pausing | Paused, Event::Cancel) => {
            Cancelling
        }
        (Cancelling, Event::Cancelled) => Cancelled,
        (Ready | Active, Event::Pause) => Pausing,
        (Pausing, Event::Paused) => Paused,
        (Paused, Event::Resume) => Ready,
        (Failed | Cancelled, Event::Restart) => New,
        (Preparing, Event::Replan) => New,
        _ => {
            return Err(Forbidden {
                from,
                event: event.verb(),
            });
        }
    };
    Ok(to)
}

/// The failure threshold: a job with more than `min_tasks` tasks fails as soon
/// as more than `percent` % of the tasks run so far have failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureThreshold {
    /// Jobs with at most this many tasks never fail by threshold.
    pub min_tasks: u64,
    /// The share of failed tasks, in percent, above which the job fails.
    pub percent: u64,
}

impl Default for FailureThreshold {
    fn default() -> Self {
        FailureThreshold {
            min_tasks: 1000,
            percent: 50,
        }
    }
}

impl FailureThreshold {
    /// True if a job with `total` tasks, `failed` of the `ran` run so far, must fail.
    pub fn exceeded(&self, total: u64, ran: u64, failed: u64) -> bool {
        total > self.min_tasks && ran > 0 && failed * 100 > ran * self.percent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    #[test]
    fn the_happy_path() {
        let mut s = New;
        for e in [
            Event::Prepare,
            Event::Planned { confirm: false },
            Event::Start,
            Event::Finished,
        ] {
            s = transition(s, e).unwrap();
        }
        assert_eq!(s, Complete);
        assert!(s.is_final());
    }

    #[test]
    fn confirmation_suspends_until_confirmed() {
        let s = transition(Preparing, Event::Planned { confirm: true }).unwrap();
        assert_eq!(s, Suspended);
        assert_eq!(
            transition(s, Event::Start),
            Err(Forbidden {
                from: Suspended,
                event: "start"
            })
        );
        assert_eq!(transition(s, Event::Confirm), Ok(Ready));
    }

    #[test]
    fn pause_and_resume_go_through_ready() {
        assert_eq!(transition(Active, Event::Pause), Ok(Pausing));
        assert_eq!(transition(Pausing, Event::Paused), Ok(Paused));
        assert_eq!(transition(Paused, Event::Resume), Ok(Ready));
        assert!(transition(Complete, Event::Pause).is_err());
    }

    #[test]
    fn cancel_and_fail_drain_first() {
        for s in [New, Preparing, Suspended, Ready, Active, Pausing, Paused] {
            assert_eq!(transition(s, Event::Cancel), Ok(Cancelling), "{s}");
            assert_eq!(transition(s, Event::Fail), Ok(Failing), "{s}");
        }
        assert_eq!(transition(Cancelling, Event::Cancelled), Ok(Cancelled));
        assert_eq!(transition(Failing, Event::Failed), Ok(Failed));
    }

    #[test]
    fn final_states_accept_only_restart() {
        let events = [
            Event::Prepare,
            Event::Planned { confirm: false },
            Event::Confirm,
            Event::Start,
            Event::Finished,
            Event::Fail,
            Event::Failed,
            Event::Cancel,
            Event::Cancelled,
            Event::Pause,
            Event::Paused,
            Event::Resume,
            Event::Replan,
        ];
        for s in [Complete, Failed, Cancelled] {
            for e in events {
                assert!(transition(s, e).is_err(), "{s} {e:?}");
            }
        }
        assert_eq!(transition(Failed, Event::Restart), Ok(New));
        assert_eq!(transition(Cancelled, Event::Restart), Ok(New));
        assert!(transition(Complete, Event::Restart).is_err());
    }

    #[test]
    fn every_state_is_reachable_from_new() {
        let events = [
            Event::Prepare,
            Event::Planned { confirm: true },
            Event::Planned { confirm: false },
            Event::Confirm,
            Event::Start,
            Event::Finished,
            Event::Fail,
            Event::Failed,
            Event::Cancel,
            Event::Cancelled,
            Event::Pause,
            Event::Paused,
            Event::Resume,
        ];
        let mut seen = vec![New];
        let mut i = 0;
        while i < seen.len() {
            for e in events {
                if let Ok(to) = transition(seen[i], e)
                    && !seen.contains(&to)
                {
                    seen.push(to);
                }
            }
            i += 1;
        }
        assert_eq!(seen.len(), ALL_STATES.len());
    }

    #[test]
    fn names_round_trip() {
        for s in ALL_STATES {
            assert_eq!(s.as_str().parse::<JobState>(), Ok(s));
        }
        assert_eq!("active".parse::<JobState>(), Ok(Active));
        assert!("Bogus".parse::<JobState>().is_err());
    }

    #[test]
    fn failure_threshold_needs_enough_tasks_and_failures() {
        let t = FailureThreshold::default();
        assert!(
            !t.exceeded(1000, 100, 100),
            "1,000 tasks is not more than 1,000"
        );
        assert!(
            !t.exceeded(1001, 100, 50),
            "exactly half is not more than half"
        );
        assert!(t.exceeded(1001, 100, 51));
        assert!(!t.exceeded(5000, 0, 0));
    }
}
