//! How many tasks of a job one worker takes at a time: enough to fill a time
//! slice, judged from the job's recent task times. Pure; the scheduler keeps one estimate per job.
//!
//! A worker runs a batch on one instance and records its outcomes in one
//! transaction, so short tasks (a delete is a few hundred microseconds) do not
//! pay a claim, a commit and an instantiation each. Slow tasks (an image, a PDF
//! page) go one at a time, as does a job's first task, whose time is unknown.

use std::time::Duration;

/// The work one batch aims at: the granularity of fair sharing, preemption,
/// pausing and cancelling for short tasks.
pub const SLICE: Duration = Duration::from_millis(50);

/// The most tasks one batch takes.
pub const MAX_BATCH: usize = 64;

/// A running average of one job's task times.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TaskTime {
    average: Option<Duration>,
}

impl TaskTime {
    /// Adds a batch of `tasks` that took `took` in all (their average weighs a quarter).
    pub fn observe(&mut self, tasks: usize, took: Duration) {
        if tasks == 0 {
            return;
        }
        let each = took / tasks as u32;
        self.average = Some(match self.average {
            None => each,
            Some(before) => (before * 3 + each) / 4,
        });
    }

    /// Tasks per batch: as many as fit in [`SLICE`], 1 to [`MAX_BATCH`]; 1 while unknown.
    pub fn batch(&self) -> usize {
        match self.average {
            None => 1,
            Some(each) if each.is_zero() => MAX_BATCH,
            Some(each) => ((SLICE.as_nanos() / each.as_nanos()) as usize).clamp(1, MAX_BATCH),
        }
    }
}

/// Splits `tasks` into at most `workers` batches of nearly equal size, in order.
pub fn split<T>(tasks: Vec<T>, workers: usize) -> Vec<Vec<T>> {
    let workers = workers.max(1);
    let (base, extra) = (tasks.len() / workers, tasks.len() % workers);
    let mut rest = tasks.into_iter();
    (0..workers)
        .map(|i| rest.by_ref().take(base + usize::from(i < extra)).collect())
        .filter(|batch: &Vec<T>| !batch.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_job_takes_one_task() {
        assert_eq!(TaskTime::default().batch(), 1);
    }

    #[test]
    fn short_tasks_fill_the_slice() {
        let mut t = TaskTime::default();
        t.observe(1, Duration::from_millis(5));
        assert_eq!(t.batch(), 10);
        let mut fast = TaskTime::default();
        fast.observe(10, Duration::from_micros(500));
        assert_eq!(fast.batch(), MAX_BATCH);
    }

    #[test]
    fn slow_tasks_go_one_at_a_time() {
        let mut t = TaskTime::default();
        t.observe(1, Duration::from_secs(2));
        assert_eq!(t.batch(), 1);
    }

    #[test]
    fn the_average_follows_a_change_of_pace() {
        let mut t = TaskTime::default();
        t.observe(64, Duration::from_millis(32)); // 0.5 ms each
        assert_eq!(t.batch(), MAX_BATCH);
        for _ in 0..10 {
            t.observe(1, Duration::from_millis(25));
        }
        assert_eq!(t.batch(), 2);
        t.observe(0, Duration::from_secs(9)); // an empty batch changes nothing
        assert_eq!(t.batch(), 2);
    }

    #[test]
    fn split_shares_tasks_evenly_and_keeps_their_order() {
        assert_eq!(split((1..=5).collect(), 2), vec![vec![1, 2, 3], vec![4, 5]]);
        assert_eq!(split(vec![1], 3), vec![vec![1]]);
        assert_eq!(split(Vec::<u8>::new(), 2), Vec::<Vec<u8>>::new());
        assert_eq!(split(vec![1, 2], 0), vec![vec![1, 2]]);
    }
}
