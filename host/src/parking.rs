//! Idle plugin sessions kept between one job's batches: the next batch of the
//! same job and plugin version takes the warm instance instead of a fresh one.

use std::time::{Duration, Instant};

/// How long a parked session waits for its job's next batch before it is dropped.
pub const IDLE_FOR: Duration = Duration::from_secs(2);

/// One parked value with what it may be used for.
struct Parked<T> {
    job: String,
    digest: String,
    since: Instant,
    value: T,
}

/// Values parked by job and plugin digest: at most `capacity` of them, the
/// oldest given up first. What is given up is returned, for the caller to
/// drop outside its lock.
pub struct Parking<T> {
    capacity: usize,
    parked: Vec<Parked<T>>,
}

impl<T> Parking<T> {
    /// Room for `capacity` values (one per worker).
    pub fn new(capacity: usize) -> Self {
        Parking {
            capacity,
            parked: Vec::new(),
        }
    }

    /// Parks `value` for the next batch of `job` run by the plugin with `digest`.
    pub fn park(&mut self, job: &str, digest: &str, value: T, now: Instant) -> Vec<T> {
        self.parked.push(Parked {
            job: job.to_string(),
            digest: digest.to_string(),
            since: now,
            value,
        });
        let over = self.parked.len().saturating_sub(self.capacity);
        self.parked.drain(..over).map(|p| p.value).collect()
    }

    /// The value parked last for `job` and `digest`, if any.
    pub fn take(&mut self, job: &str, digest: &str) -> Option<T> {
        let at = self
            .parked
            .iter()
            .rposition(|p| p.job == job && p.digest == digest)?;
        Some(self.parked.remove(at).value)
    }

    /// Gives up everything parked for `job` (it ended, paused or was cancelled).
    pub fn forget(&mut self, job: &str) -> Vec<T> {
        self.give_up(|p| p.job == job)
    }

    /// Gives up what has waited `IDLE_FOR` or longer at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<T> {
        self.give_up(|p| now.saturating_duration_since(p.since) >= IDLE_FOR)
    }

    fn give_up(&mut self, gone: impl Fn(&Parked<T>) -> bool) -> Vec<T> {
        let (out, kept) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition::<Vec<_>, _>(|p| gone(p));
        self.parked = kept;
        out.into_iter().map(|p| p.value).collect()
    }
}

#[cfg(test)]
impl<T> Parking<T> {
    fn len(&self) -> usize {
        self.parked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_goes_back_only_to_its_job_and_plugin_version() {
        let now = Instant::now();
        let mut parking = Parking::new(4);
        assert!(parking.park("job-a", "v1", 1, now).is_empty());
        assert_eq!(parking.take("job-b", "v1"), None, "another job");
        assert_eq!(parking.take("job-a", "v2"), None, "a reloaded plugin");
        assert_eq!(parking.take("job-a", "v1"), Some(1));
        assert_eq!(parking.take("job-a", "v1"), None, "taken once");
    }

    #[test]
    fn the_last_parked_is_taken_first() {
        let now = Instant::now();
        let mut parking = Parking::new(4);
        parking.park("job-a", "v1", 1, now);
        parking.park("job-a", "v1", 2, now);
        assert_eq!(parking.take("job-a", "v1"), Some(2));
        assert_eq!(parking.take("job-a", "v1"), Some(1));
    }

    #[test]
    fn past_capacity_the_oldest_is_given_up() {
        let now = Instant::now();
        let mut parking = Parking::new(2);
        parking.park("job-a", "v1", 1, now);
        parking.park("job-b", "v1", 2, now);
        assert_eq!(parking.park("job-c", "v1", 3, now), vec![1]);
        assert_eq!(parking.len(), 2);
        assert_eq!(parking.take("job-a", "v1"), None);
        let mut none = Parking::new(0);
        assert_eq!(none.park("job-a", "v1", 1, now), vec![1], "no room at all");
    }

    #[test]
    fn a_forgotten_job_and_an_idle_value_are_given_up() {
        let now = Instant::now();
        let mut parking = Parking::new(4);
        parking.park("job-a", "v1", 1, now);
        parking.park("job-b", "v1", 2, now);
        parking.park("job-a", "v1", 3, now + IDLE_FOR);
        assert_eq!(parking.forget("job-b"), vec![2]);
        assert_eq!(
            parking.expire(now + IDLE_FOR - Duration::from_millis(1)),
            Vec::<i32>::new()
        );
        assert_eq!(parking.expire(now + IDLE_FOR), vec![1]);
        assert_eq!(parking.len(), 1);
        assert_eq!(parking.take("job-a", "v1"), Some(3));
    }
}
