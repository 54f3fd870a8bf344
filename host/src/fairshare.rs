//! The fair-share picker: which job the next free worker serves. Highest priority
//! first; among equals, the tenant and then the job with the least metered cost per weight.
//!
//! This is stride scheduling on measured cost: every account (tenant, job) has a
//! pass, its cost divided by its weight. A pick charges the job's expected task
//! cost in advance, so several free workers spread over several accounts; the
//! real cost replaces the estimate when the task ends. An account that becomes
//! busy again starts at the pass of the least-served busy account, so idle time
//! earns no credit to starve others with later. Pure: no I/O, no clock.

use std::collections::HashMap;

/// A job that has tasks a worker could start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The job's id.
    pub job: String,
    /// The tenant that owns it.
    pub tenant: String,
    /// Larger runs first.
    pub priority: i64,
    /// The job's share among its tenant's jobs (at least 1).
    pub job_weight: u32,
    /// The tenant's share among tenants (at least 1).
    pub tenant_weight: u32,
    /// Tasks that could be claimed now.
    pub ready: usize,
}

/// The cost charged for a job's task before any of its tasks has been measured.
pub const DEFAULT_ESTIMATE: u64 = 1_000_000;

#[derive(Debug, Default, Clone)]
struct Account {
    /// Cost per weight so far.
    pass: f64,
    /// Tasks picked and not settled yet.
    in_flight: u32,
    /// Busy (ready tasks or tasks in flight) at the last pick.
    busy: bool,
}

#[derive(Debug, Default, Clone)]
struct JobAccount {
    account: Account,
    tenant: String,
    /// Mean measured cost of the job's tasks (0 before the first).
    mean_cost: f64,
    settled: u64,
}

/// One pick: the job a worker should run a task of, and what was charged for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    /// The job's id.
    pub job: String,
    /// The cost charged in advance; give it back to [`Ledger::settle`].
    pub estimate: u64,
}

/// The accounts of every tenant and job this host has scheduled.
#[derive(Debug, Default)]
pub struct Ledger {
    tenants: HashMap<String, Account>,
    jobs: HashMap<String, JobAccount>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Chooses a job for each of up to `slots` free workers, charging each
    /// choice its estimated cost. A job may be chosen several times.
    pub fn pick(&mut self, candidates: &[Candidate], slots: usize) -> Vec<Pick> {
        self.wake_accounts(candidates);
        let mut ready: Vec<usize> = candidates.iter().map(|c| c.ready).collect();
        let mut picks = Vec::new();
        while picks.len() < slots {
            let Some(top) = candidates
                .iter()
                .zip(&ready)
                .filter(|(_, r)| **r > 0)
                .map(|(c, _)| c.priority)
                .max()
            else {
                break;
            };
            let eligible = || {
                candidates
                    .iter()
                    .enumerate()
                    .filter(|(i, c)| ready[*i] > 0 && c.priority == top)
            };
            let tenant = eligible()
                .map(|(_, c)| c.tenant.as_str())
                .min_by(|a, b| self.tenant_pass(a).total_cmp(&self.tenant_pass(b)))
                .expect("some candidate is eligible")
                .to_string();
            let (index, chosen) = eligible()
                .filter(|(_, c)| c.tenant == tenant)
                .min_by(|(_, a), (_, b)| self.job_pass(&a.job).total_cmp(&self.job_pass(&b.job)))
                .expect("the tenant has an eligible job");
            ready[index] -= 1;
            let estimate = self.estimate(&chosen.job);
            self.charge(chosen, estimate as f64);
            self.tenants.entry(tenant).or_default().in_flight += 1;
            if let Some(j) = self.jobs.get_mut(&chosen.job) {
                j.account.in_flight += 1;
            }
            picks.push(Pick {
                job: chosen.job.clone(),
                estimate,
            });
        }
        picks
    }

    /// A picked task ended (or was never started: `cost` 0): replaces its
    /// estimate with what it really cost.
    pub fn settle(&mut self, job: &Candidate, pick: &Pick, cost: u64, ran: bool) {
        self.charge(job, cost as f64 - pick.estimate as f64);
        if let Some(t) = self.tenants.get_mut(&job.tenant) {
            t.in_flight = t.in_flight.saturating_sub(1);
        }
        if let Some(j) = self.jobs.get_mut(&job.job) {
            j.account.in_flight = j.account.in_flight.saturating_sub(1);
            if ran {
                j.settled += 1;
                j.mean_cost += (cost as f64 - j.mean_cost) / j.settled.min(50) as f64;
            }
        }
    }

    /// Charges cost spent outside tasks (planning, finishing) to a job and its tenant.
    pub fn charge_extra(&mut self, job: &Candidate, cost: u64) {
        self.charge(job, cost as f64);
    }

    /// Drops a job that has ended.
    pub fn forget(&mut self, job: &str) {
        self.jobs.remove(job);
    }

    /// Tasks of `job` picked and not settled.
    pub fn in_flight(&self, job: &str) -> u32 {
        self.jobs.get(job).map_or(0, |j| j.account.in_flight)
    }

    /// The cost a task of `job` is expected to have.
    pub fn estimate(&self, job: &str) -> u64 {
        match self.jobs.get(job) {
            Some(j) if j.settled > 0 => j.mean_cost.max(1.0) as u64,
            _ => {
                let known: Vec<f64> = self
                    .jobs
                    .values()
                    .filter(|j| j.settled > 0)
                    .map(|j| j.mean_cost)
                    .collect();
                if known.is_empty() {
                    DEFAULT_ESTIMATE
                } else {
                    (known.iter().sum::<f64>() / known.len() as f64).max(1.0) as u64
                }
            }
        }
    }

    fn tenant_pass(&self, tenant: &str) -> f64 {
        self.tenants.get(tenant).map_or(0.0, |t| t.pass)
    }

    fn job_pass(&self, job: &str) -> f64 {
        self.jobs.get(job).map_or(0.0, |j| j.account.pass)
    }

    fn charge(&mut self, job: &Candidate, cost: f64) {
        let tenant = self.tenants.entry(job.tenant.clone()).or_default();
        tenant.pass += cost / job.tenant_weight.max(1) as f64;
        let account = self
            .jobs
            .entry(job.job.clone())
            .or_insert_with(|| JobAccount {
                tenant: job.tenant.clone(),
                ..JobAccount::default()
            });
        account.account.pass += cost / job.job_weight.max(1) as f64;
    }

    /// Marks accounts busy or idle; one that becomes busy starts no lower than
    /// the least pass among the accounts that were already busy.
    fn wake_accounts(&mut self, candidates: &[Candidate]) {
        let busy_before = |a: &Account| a.busy;
        let tenant_floor = self
            .tenants
            .values()
            .filter(|a| busy_before(a))
            .map(|a| a.pass)
            .reduce(f64::min);
        let mut job_floor: HashMap<String, f64> = HashMap::new();
        for j in self.jobs.values().filter(|j| busy_before(&j.account)) {
            let floor = job_floor.entry(j.tenant.clone()).or_insert(j.account.pass);
            *floor = floor.min(j.account.pass);
        }
        for c in candidates {
            let tenant = self.tenants.entry(c.tenant.clone()).or_default();
            if !tenant.busy
                && let Some(floor) = tenant_floor
            {
                tenant.pass = tenant.pass.max(floor);
            }
            let job = self
                .jobs
                .entry(c.job.clone())
                .or_insert_with(|| JobAccount {
                    tenant: c.tenant.clone(),
                    ..JobAccount::default()
                });
            if !job.account.busy
                && let Some(floor) = job_floor.get(&c.tenant)
            {
                job.account.pass = job.account.pass.max(*floor);
            }
        }
        for (name, tenant) in &mut self.tenants {
            tenant.busy =
                tenant.in_flight > 0 || candidates.iter().any(|c| &c.tenant == name && c.ready > 0);
        }
        for (id, job) in &mut self.jobs {
            job.account.busy =
                job.account.in_flight > 0 || candidates.iter().any(|c| &c.job == id && c.ready > 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(job: &str, tenant: &str, priority: i64, ready: usize) -> Candidate {
        Candidate {
            job: job.into(),
            tenant: tenant.into(),
            priority,
            job_weight: 1,
            tenant_weight: 1,
            ready,
        }
    }

    /// Runs `rounds` picks of one slot each, settling each task at `cost(job)`;
    /// returns the cost each job got.
    fn simulate(
        ledger: &mut Ledger,
        candidates: &[Candidate],
        rounds: usize,
        cost: impl Fn(&str) -> u64,
    ) -> HashMap<String, u64> {
        let mut got = HashMap::new();
        for _ in 0..rounds {
            let picks = ledger.pick(candidates, 1);
            let pick = &picks[0];
            let c = candidates.iter().find(|c| c.job == pick.job).unwrap();
            ledger.settle(c, pick, cost(&pick.job), true);
            *got.entry(pick.job.clone()).or_default() += cost(&pick.job);
        }
        got
    }

    #[test]
    fn higher_priority_always_goes_first() {
        let mut ledger = Ledger::new();
        let candidates = [job("low", "a", 0, 10), job("high", "b", 5, 3)];
        let picks = ledger.pick(&candidates, 5);
        let jobs: Vec<&str> = picks.iter().map(|p| p.job.as_str()).collect();
        assert_eq!(jobs, ["high", "high", "high", "low", "low"]);
    }

    #[test]
    fn equal_jobs_alternate() {
        let mut ledger = Ledger::new();
        let candidates = [job("x", "t", 0, 1000), job("y", "t", 0, 1000)];
        let got = simulate(&mut ledger, &candidates, 100, |_| 7);
        assert_eq!(got["x"], got["y"]);
    }

    #[test]
    fn a_tenant_with_one_job_gets_half_against_one_with_twenty() {
        let mut ledger = Ledger::new();
        let mut candidates: Vec<Candidate> = (0..20)
            .map(|i| job(&format!("a{i}"), "a", 0, 1000))
            .collect();
        candidates.push(job("b0", "b", 0, 1000));
        let got = simulate(&mut ledger, &candidates, 400, |_| 10);
        assert_eq!(got["b0"], 2000, "b gets every other task");
        let a: u64 = (0..20).map(|i| got[&format!("a{i}")]).sum();
        assert_eq!(a, 2000);
    }

    #[test]
    fn fairness_is_by_cost_not_by_task_count() {
        let mut ledger = Ledger::new();
        let candidates = [job("cheap", "a", 0, 10_000), job("dear", "b", 0, 10_000)];
        let got = simulate(&mut ledger, &candidates, 1100, |j| {
            if j == "dear" { 10 } else { 1 }
        });
        let (cheap, dear) = (got["cheap"] as f64, got["dear"] as f64);
        assert!((cheap / dear - 1.0).abs() < 0.05, "{cheap} vs {dear}");
    }

    #[test]
    fn weights_divide_the_machine() {
        let mut ledger = Ledger::new();
        let mut heavy = job("heavy", "a", 0, 10_000);
        heavy.tenant_weight = 3;
        let candidates = [heavy, job("light", "b", 0, 10_000)];
        let got = simulate(&mut ledger, &candidates, 400, |_| 5);
        assert_eq!(got["heavy"], 3 * got["light"]);

        let mut ledger = Ledger::new();
        let mut big = job("big", "t", 0, 10_000);
        big.job_weight = 2;
        let candidates = [big, job("small", "t", 0, 10_000)];
        let got = simulate(&mut ledger, &candidates, 300, |_| 5);
        assert_eq!(got["big"], 2 * got["small"]);
    }

    #[test]
    fn several_slots_spread_over_jobs() {
        let mut ledger = Ledger::new();
        let candidates = [job("x", "t", 0, 100), job("y", "u", 0, 100)];
        let picks = ledger.pick(&candidates, 4);
        let x = picks.iter().filter(|p| p.job == "x").count();
        assert_eq!(x, 2, "{picks:?}");
        assert_eq!(ledger.in_flight("x"), 2);
    }

    #[test]
    fn no_more_picks_than_ready_tasks() {
        let mut ledger = Ledger::new();
        let picks = ledger.pick(&[job("x", "t", 0, 2)], 5);
        assert_eq!(picks.len(), 2);
        assert!(ledger.pick(&[], 3).is_empty());
    }

    #[test]
    fn idle_time_earns_no_credit() {
        let mut ledger = Ledger::new();
        let alone = [job("old", "a", 0, 1000)];
        simulate(&mut ledger, &alone, 100, |_| 10);
        // A newcomer starts level with the busy tenant instead of owning the
        // machine until it has burnt as much as `a` did alone.
        let both = [job("old", "a", 0, 1000), job("new", "b", 0, 1000)];
        let got = simulate(&mut ledger, &both, 20, |_| 10);
        assert!(got["old"] >= 90, "{got:?}");
    }

    #[test]
    fn settling_replaces_the_estimate() {
        let mut ledger = Ledger::new();
        let c = job("x", "t", 0, 10);
        let picks = ledger.pick(std::slice::from_ref(&c), 1);
        assert_eq!(picks[0].estimate, DEFAULT_ESTIMATE);
        ledger.settle(&c, &picks[0], 40, true);
        assert_eq!(ledger.estimate("x"), 40);
        assert_eq!(ledger.in_flight("x"), 0);
        assert_eq!(
            ledger.estimate("unseen"),
            40,
            "a new job is expected to cost the mean"
        );
    }
}
