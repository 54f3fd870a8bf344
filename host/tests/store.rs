//! The store's conformance suite, run on SQLite and on PostgreSQL: submission,
//! transitions checked by the state machine, claims and leases, outcomes,
//! counters, and crash recovery.

mod backends;

use std::time::Duration;

use backends::{Engine, TestDb, database};
use wasmq::jobs::{Event, FailureThreshold, JobState};
use wasmq::store::{JobFilter, Lease, NewJob, Store, StoreError, TaskResult};

fn new_job(tenant: &str) -> NewJob {
    NewJob {
        tenant: tenant.into(),
        job_type: "delete".into(),
        plugin_name: "delete".into(),
        plugin_version: "0.1.0".into(),
        plugin_digest: "abc".into(),
        path: "/content/dam/x".into(),
        excluded_paths: vec!["/content/dam/x/keep".into()],
        params: serde_json::json!({"force": false}),
        priority: 0,
        weight: 1,
        require_confirmation: false,
        name: None,
        description: Some("test".into()),
        created_by: "alice".into(),
        comments: None,
        locale: Some("fr-FR".into()),
        submitter_email: None,
        run_at: None,
        schedule_id: None,
    }
}

async fn open(engine: Engine) -> (TestDb, Store) {
    let db = database(engine).await;
    let store = Store::connect(&db.url).await.unwrap();
    (db, store)
}

/// Node `n`'s lease.
fn lease() -> Lease {
    Lease::new("n", Duration::from_secs(30))
}

fn ok(code: i64) -> TaskResult {
    TaskResult {
        succeeded: true,
        code,
        message: "done".into(),
        etag: Some("e".into()),
        fuel_used: 10,
        cpu_ns: 1_000,
        started_at: 1_000,
        finished_at: 1_250,
    }
}

fn failed(code: i64) -> TaskResult {
    TaskResult {
        succeeded: false,
        code,
        message: "x".into(),
        etag: None,
        fuel_used: 1,
        cpu_ns: 7,
        started_at: 1_000,
        finished_at: 1_010,
    }
}

async fn a_job_runs_through_its_states_and_keeps_its_fields(engine: Engine) {
    let (_dir, store) = open(engine).await;
    let job = store.insert_job(&new_job("t1")).await.unwrap();
    assert_eq!(job.state(), JobState::New);
    assert_eq!(job.excluded(), vec!["/content/dam/x/keep".to_string()]);
    assert_eq!(job.created_by, "alice");

    assert_eq!(
        store
            .apply(&job.id, Event::Prepare, "node-a")
            .await
            .unwrap(),
        JobState::Preparing
    );
    store
        .add_tasks(
            &job.id,
            &[
                ("/content/dam/x/a".into(), vec![]),
                ("/content/dam/x/b".into(), b"in".to_vec()),
            ],
        )
        .await
        .unwrap();
    store
        .apply(&job.id, Event::Planned { confirm: false }, "node-a")
        .await
        .unwrap();
    // Tasks of a job that is not Active are not handed out.
    assert!(
        store
            .claim_job_tasks(&job.id, 10, &lease())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.claimable_jobs(10).await.unwrap().is_empty());
    store.apply(&job.id, Event::Start, "node-a").await.unwrap();

    let claimable = store.claimable_jobs(10).await.unwrap();
    assert_eq!(
        (
            claimable.len(),
            claimable[0].ready,
            claimable[0].tenant_weight
        ),
        (1, 2, 1)
    );
    let claimed = store.claim_job_tasks(&job.id, 10, &lease()).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(claimed[1].input, b"in");
    assert!(
        store
            .claim_job_tasks(&job.id, 10, &lease())
            .await
            .unwrap()
            .is_empty(),
        "running tasks are not claimed twice"
    );
    store
        .finish_task(&claimed[0], &ok(200), FailureThreshold::default())
        .await
        .unwrap();
    store
        .finish_task(
            &claimed[1],
            &TaskResult {
                succeeded: false,
                code: 409,
                message: "referenced".into(),
                etag: None,
                fuel_used: 5,
                cpu_ns: 500,
                started_at: 2_000,
                finished_at: 2_500,
            },
            FailureThreshold::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        store.drained_jobs(JobState::Active).await.unwrap(),
        vec![job.id.clone()]
    );
    let times: Vec<_> = store
        .list_tasks(&job.id, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|t| (t.started_at, t.finished_at))
        .collect();
    assert_eq!(
        times,
        vec![(Some(1_000), Some(1_250)), (Some(2_000), Some(2_500))],
        "each task keeps the times of its attempt"
    );
    store
        .apply(&job.id, Event::Finished, "node-a")
        .await
        .unwrap();

    let done = store.get_job(&job.id).await.unwrap().unwrap();
    assert_eq!(done.state(), JobState::Complete);
    assert_eq!(
        (
            done.total,
            done.succeeded,
            done.failed,
            done.fuel_used,
            done.cpu_ns
        ),
        (2, 1, 1, 15, 1_500)
    );
    let tenant = store.tenants(Some("t1")).await.unwrap();
    assert_eq!(
        (tenant[0].cpu_ns, tenant[0].fuel_used, tenant[0].weight),
        (1_500, 15, 1),
        "the tenant's account adds up its jobs'"
    );
    assert_eq!(done.server_name.as_deref(), Some("node-a"));
    assert!(done.started_at.is_some() && done.completed_at.is_some());
    let rows = store.list_tasks(&job.id, 0, 10).await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.state.as_str(), r.code))
            .collect::<Vec<_>>(),
        [("succeeded", Some(200)), ("failed", Some(409))]
    );
}

async fn forbidden_transitions_change_nothing(engine: Engine) {
    let (_dir, store) = open(engine).await;
    let job = store.insert_job(&new_job("t1")).await.unwrap();
    let err = store
        .apply(&job.id, Event::Finished, "n")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Forbidden(_)), "{err}");
    assert_eq!(
        store.get_job(&job.id).await.unwrap().unwrap().state(),
        JobState::New
    );
    assert!(matches!(
        store.apply("nope", Event::Prepare, "n").await,
        Err(StoreError::NoJob(_))
    ));
}

async fn transient_failures_wait_before_they_run_again(engine: Engine) {
    let (_dir, store) = open(engine).await;
    let job = store.insert_job(&new_job("t1")).await.unwrap();
    for e in [Event::Prepare, Event::Planned { confirm: false }] {
        store.apply(&job.id, e, "n").await.unwrap();
    }
    store
        .add_tasks(&job.id, &[("/content/dam/x/a".into(), vec![])])
        .await
        .unwrap();
    store.apply(&job.id, Event::Start, "n").await.unwrap();
    let task = store
        .claim_job_tasks(&job.id, 1, &lease())
        .await
        .unwrap()
        .remove(0);
    let later = wasmq::store::now_ms() + 60_000;
    store
        .retry_task(
            &task,
            later,
            &TaskResult {
                succeeded: false,
                code: 503,
                message: "busy".into(),
                etag: None,
                fuel_used: 1,
                cpu_ns: 100,
                started_at: 3_000,
                finished_at: 3_100,
            },
            "task 1 will be retried: busy",
        )
        .await
        .unwrap();
    // A second call for the same claim (a record retried after an outage) is
    // refused and logs nothing more.
    let again = store.retry_task(&task, later, &ok(503), "again").await;
    assert!(matches!(again, Err(StoreError::LeaseLost(..))), "{again:?}");
    let lines = messages(&store, &job.id).await;
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("retried") || *l == "again")
            .count(),
        1,
        "{lines:?}"
    );
    assert!(
        store
            .claim_job_tasks(&job.id, 1, &lease())
            .await
            .unwrap()
            .is_empty(),
        "not before its backoff"
    );
    let counts = store
        .task_counts(&store.get_job(&job.id).await.unwrap().unwrap())
        .await
        .unwrap();
    assert_eq!((counts.pending, counts.running, counts.failed), (1, 0, 0));
}

async fn recovery_requeues_running_tasks_and_replans_preparing_jobs(engine: Engine) {
    let (db, store) = open(engine).await;
    let active = store.insert_job(&new_job("t1")).await.unwrap();
    for e in [Event::Prepare, Event::Planned { confirm: false }] {
        store.apply(&active.id, e, "n").await.unwrap();
    }
    store
        .add_tasks(&active.id, &[("/content/dam/x/a".into(), vec![])])
        .await
        .unwrap();
    store.apply(&active.id, Event::Start, "n").await.unwrap();
    assert_eq!(
        store
            .claim_job_tasks(&active.id, 1, &lease())
            .await
            .unwrap()
            .len(),
        1
    );
    let planning = store.insert_job(&new_job("t1")).await.unwrap();
    store
        .apply(&planning.id, Event::Prepare, "n")
        .await
        .unwrap();
    store
        .add_tasks(&planning.id, &[("/content/dam/x/half".into(), vec![])])
        .await
        .unwrap();
    drop(store);

    // A new process opens the same file.
    let store = Store::connect(&db.url).await.unwrap();
    let (requeued, replanned) = store.recover("n").await.unwrap();
    assert_eq!(requeued, 1);
    assert_eq!(replanned, vec![planning.id.clone()]);
    let planning = store.get_job(&planning.id).await.unwrap().unwrap();
    assert_eq!((planning.state(), planning.total), (JobState::New, 0));
    assert_eq!(
        store
            .claim_job_tasks(&active.id, 5, &lease())
            .await
            .unwrap()
            .len(),
        1,
        "the interrupted task runs again"
    );
}

async fn listing_filters_by_tenant_state_and_type(engine: Engine) {
    let (_dir, store) = open(engine).await;
    let a = store.insert_job(&new_job("t1")).await.unwrap();
    store.insert_job(&new_job("t1")).await.unwrap();
    store.insert_job(&new_job("t2")).await.unwrap();
    store.apply(&a.id, Event::Cancel, "n").await.unwrap();
    let list = |tenant: &str, state| JobFilter {
        tenant: Some(tenant.into()),
        state,
        limit: 10,
        ..JobFilter::default()
    };
    assert_eq!(store.list_jobs(&list("t1", None)).await.unwrap().1, 2);
    assert_eq!(store.list_jobs(&list("t2", None)).await.unwrap().1, 1);
    let (jobs, total) = store
        .list_jobs(&list("t1", Some(JobState::Cancelling)))
        .await
        .unwrap();
    assert_eq!((total, jobs[0].id.as_str()), (1, a.id.as_str()));
    let mut by_type = list("t1", None);
    by_type.job_type = Some("move".into());
    assert_eq!(store.list_jobs(&by_type).await.unwrap().1, 0);
    let mut by_text = list("t1", None);
    by_text.text = Some("TES".into());
    assert_eq!(
        store.list_jobs(&by_text).await.unwrap().1,
        2,
        "description match ignores case"
    );
    by_text.text = Some("%".into());
    assert_eq!(
        store.list_jobs(&by_text).await.unwrap().1,
        0,
        "% is literal text"
    );
    let mut by_id = list("t1", None);
    by_id.id = Some(a.id[..8].to_string());
    assert!(
        store
            .list_jobs(&by_id)
            .await
            .unwrap()
            .0
            .iter()
            .any(|j| j.id == a.id)
    );
    let mut window = list("t1", None);
    window.created_after = Some(wasmq::store::now_ms() + 60_000);
    assert_eq!(store.list_jobs(&window).await.unwrap().1, 0);
    store.apply(&a.id, Event::Cancelled, "n").await.unwrap();
    let mut history = list("t1", None);
    history.finished_only = true;
    assert_eq!(store.list_jobs(&history).await.unwrap().1, 1);
}

async fn names_are_unique_per_tenant(engine: Engine) {
    let (_dir, store) = open(engine).await;
    let named = |tenant: &str| NewJob {
        name: Some("nightly".into()),
        ..new_job(tenant)
    };
    store.insert_job(&named("t1")).await.unwrap();
    store.insert_job(&named("t2")).await.unwrap();
    assert!(matches!(
        store.insert_job(&named("t1")).await,
        Err(StoreError::NameTaken(_))
    ));
    store.insert_job(&new_job("t1")).await.unwrap();
    store.insert_job(&new_job("t1")).await.unwrap();
}

async fn the_failure_threshold_fails_the_job_with_its_last_task(engine: Engine) {
    let (_dir, store) = open(engine).await;
    let job = store.insert_job(&new_job("t1")).await.unwrap();
    for e in [Event::Prepare, Event::Planned { confirm: false }] {
        store.apply(&job.id, e, "n").await.unwrap();
    }
    let tasks: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| (format!("/content/dam/x/{i}"), vec![]))
        .collect();
    store.add_tasks(&job.id, &tasks).await.unwrap();
    store.apply(&job.id, Event::Start, "n").await.unwrap();
    let threshold = FailureThreshold {
        min_tasks: 4,
        percent: 50,
    };
    let fail = failed(500);
    let claimed = store.claim_job_tasks(&job.id, 2, &lease()).await.unwrap();
    assert_eq!(
        store
            .finish_task(&claimed[0], &ok(200), threshold)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .finish_task(&claimed[1], &fail, threshold)
            .await
            .unwrap(),
        None,
        "1 of 2 is not more than half"
    );
    let next = store.claim_job_tasks(&job.id, 1, &lease()).await.unwrap();
    let reason = store.finish_task(&next[0], &fail, threshold).await.unwrap();
    assert!(reason.unwrap().contains("2 of the 3"));
    let failing = store.get_job(&job.id).await.unwrap().unwrap();
    assert_eq!(failing.state(), JobState::Failing);
    assert!(
        store
            .claim_job_tasks(&job.id, 5, &lease())
            .await
            .unwrap()
            .is_empty(),
        "a failing job hands out no more tasks"
    );
}

async fn preemption_pauses_and_resumes_unless_a_user_takes_over(engine: Engine) {
    let (_dir, store) = open(engine).await;
    let job = store.insert_job(&new_job("t1")).await.unwrap();
    for e in [
        Event::Prepare,
        Event::Planned { confirm: false },
        Event::Start,
    ] {
        store.apply(&job.id, e, "n").await.unwrap();
    }
    assert!(store.preempt(&job.id, "urgent").await.unwrap());
    assert!(
        !store.preempt(&job.id, "urgent").await.unwrap(),
        "only an Active job"
    );
    let paused = store.get_job(&job.id).await.unwrap().unwrap();
    assert_eq!(
        (paused.state(), paused.preempted_by.as_deref()),
        (JobState::Pausing, Some("urgent"))
    );
    assert!(
        store.preempted_jobs().await.unwrap().is_empty(),
        "not Paused yet"
    );
    store.apply(&job.id, Event::Paused, "n").await.unwrap();
    assert_eq!(
        store.preempted_jobs().await.unwrap(),
        vec![(job.id.clone(), 0)]
    );
    assert!(store.resume_preempted(&job.id).await.unwrap());
    let ready = store.get_job(&job.id).await.unwrap().unwrap();
    assert_eq!((ready.state(), ready.preempted_by), (JobState::Ready, None));

    // Once a user pauses it too, preemption no longer resumes it.
    store.apply(&job.id, Event::Start, "n").await.unwrap();
    store.preempt(&job.id, "urgent").await.unwrap();
    store.apply(&job.id, Event::Paused, "n").await.unwrap();
    assert!(store.clear_preemption(&job.id).await.unwrap());
    assert!(!store.resume_preempted(&job.id).await.unwrap());
    assert_eq!(
        store.get_job(&job.id).await.unwrap().unwrap().state(),
        JobState::Paused
    );
}

async fn weights_are_kept_per_job_and_per_tenant(engine: Engine) {
    let (_dir, store) = open(engine).await;
    let mut heavy = new_job("t1");
    heavy.weight = 4;
    let job = store.insert_job(&heavy).await.unwrap();
    assert_eq!(job.weight, 4);
    store.set_weight(&job.id, 2).await.unwrap();
    assert_eq!(store.get_job(&job.id).await.unwrap().unwrap().weight, 2);
    let row = store.set_tenant_weight("t1", 3).await.unwrap();
    assert_eq!((row.weight, row.cpu_ns), (3, 0));
    assert_eq!(store.set_tenant_weight("t1", 5).await.unwrap().weight, 5);
    assert_eq!(store.tenants(None).await.unwrap().len(), 1);
}

/// An Active job of `n` tasks.
async fn active_job(store: &Store, n: usize) -> String {
    let job = store.insert_job(&new_job("t1")).await.unwrap();
    for e in [Event::Prepare, Event::Planned { confirm: false }] {
        store.apply(&job.id, e, "n").await.unwrap();
    }
    let tasks: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("/content/dam/x/{i}"), vec![]))
        .collect();
    store.add_tasks(&job.id, &tasks).await.unwrap();
    store.apply(&job.id, Event::Start, "n").await.unwrap();
    job.id
}

async fn concurrent_claims_never_hand_out_a_task_twice(engine: Engine) {
    let (_db, store) = open(engine).await;
    let id = active_job(&store, 200).await;
    let mut claimers = Vec::new();
    for node in 0..8 {
        let (store, id) = (store.clone(), id.clone());
        claimers.push(tokio::spawn(async move {
            let lease = Lease::new(format!("node-{node}"), Duration::from_secs(30));
            let mut mine = Vec::new();
            loop {
                let got = store.claim_job_tasks(&id, 3, &lease).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                for task in got {
                    store
                        .finish_task(&task, &ok(200), FailureThreshold::default())
                        .await
                        .unwrap();
                    mine.push(task.seq);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    all.sort();
    assert_eq!(
        all,
        (1..=200).collect::<Vec<i64>>(),
        "each task exactly once"
    );
    let job = store.get_job(&id).await.unwrap().unwrap();
    assert_eq!((job.succeeded, job.failed), (200, 0));
    let tasks = store.all_tasks(&id).await.unwrap();
    let nodes: std::collections::HashSet<_> = tasks.iter().filter_map(|t| t.node.clone()).collect();
    assert!(nodes.len() > 1, "the work was shared: {nodes:?}");
}

async fn an_expired_lease_is_rescued_and_the_late_answer_discarded(engine: Engine) {
    let (_db, store) = open(engine).await;
    let id = active_job(&store, 2).await;
    let dead = Lease::new("dead", Duration::from_millis(1));
    let alive = Lease::new("alive", Duration::from_secs(30));
    let lost = store
        .claim_job_tasks(&id, 1, &dead)
        .await
        .unwrap()
        .remove(0);
    let kept = store
        .claim_job_tasks(&id, 1, &alive)
        .await
        .unwrap()
        .remove(0);
    tokio::time::sleep(Duration::from_millis(20)).await;

    let (requeued, replanned) = store.rescue_expired("alive").await.unwrap();
    assert_eq!(
        (requeued, replanned.len()),
        (1, 0),
        "only the expired claim"
    );
    let again = store.claim_job_tasks(&id, 5, &alive).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].seq, again[0].attempts), (lost.seq, 1));

    // The dead node's late answer changes nothing.
    assert!(matches!(
        store
            .finish_task(&lost, &ok(200), FailureThreshold::default())
            .await,
        Err(StoreError::LeaseLost(..))
    ));
    assert!(matches!(
        store.retry_task(&lost, 0, &ok(503), "late").await,
        Err(StoreError::LeaseLost(..))
    ));
    for task in [&again[0], &kept] {
        store
            .finish_task(task, &ok(200), FailureThreshold::default())
            .await
            .unwrap();
    }
    let job = store.get_job(&id).await.unwrap().unwrap();
    assert_eq!(
        (job.succeeded, job.failed),
        (2, 0),
        "each task counted once"
    );
    let tasks = store.all_tasks(&id).await.unwrap();
    assert!(tasks.iter().all(|t| t.node.as_deref() == Some("alive")));
}

async fn heartbeats_keep_leases_and_recovery_takes_only_its_own(engine: Engine) {
    let (_db, store) = open(engine).await;
    let id = active_job(&store, 3).await;
    let short = |node: &str| Lease::new(node, Duration::from_millis(1));
    store.claim_job_tasks(&id, 1, &short("a")).await.unwrap();
    store.claim_job_tasks(&id, 1, &short("b")).await.unwrap();
    store.claim_job_tasks(&id, 1, &short("c")).await.unwrap();
    // a and b renew for a minute; c does not.
    assert_eq!(
        store
            .renew_leases(&Lease::new("a", Duration::from_secs(60)))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .renew_leases(&Lease::new("b", Duration::from_secs(60)))
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.rescue_expired("a").await.unwrap().0, 1, "c's task");
    // b restarts: its own task goes back, a's stays with a.
    assert_eq!(store.recover("b").await.unwrap().0, 1);
    let counts = store
        .task_counts(&store.get_job(&id).await.unwrap().unwrap())
        .await
        .unwrap();
    assert_eq!((counts.pending, counts.running), (2, 1));
}

async fn one_node_at_a_time_holds_a_job(engine: Engine) {
    let (_db, store) = open(engine).await;
    let id = store.insert_job(&new_job("t1")).await.unwrap().id;
    let a = Lease::new("a", Duration::from_millis(50));
    let b = Lease::new("b", Duration::from_secs(30));
    assert!(store.lease_job(&id, &a).await.unwrap());
    assert!(
        store.lease_job(&id, &a).await.unwrap(),
        "the holder may renew"
    );
    assert!(!store.lease_job(&id, &b).await.unwrap());
    store.apply(&id, Event::Prepare, "a").await.unwrap();
    store
        .add_tasks(&id, &[("/content/dam/x/half".into(), vec![])])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    // a died while planning: b plans the job again from the start.
    let (_, replanned) = store.rescue_expired("b").await.unwrap();
    assert_eq!(replanned, vec![id.clone()]);
    let job = store.get_job(&id).await.unwrap().unwrap();
    assert_eq!((job.state(), job.total), (JobState::New, 0));
    assert!(store.lease_job(&id, &b).await.unwrap());
    store.release_job(&id, "b").await.unwrap();
    assert!(store.lease_job(&id, &a).await.unwrap(), "released");
}

async fn a_batch_is_recorded_at_once_in_order_and_unrun_tasks_go_back(engine: Engine) {
    let (_db, store) = open(engine).await;
    let id = active_job(&store, 8).await;
    let threshold = FailureThreshold {
        min_tasks: 4,
        percent: 50,
    };
    let fail = failed(409);
    // Task 1 is claimed under a lease that lapses; another node rescues and runs it.
    let mut claimed = store.claim_job_tasks(&id, 1, &lease()).await.unwrap();
    let short = Lease::new("n", Duration::from_millis(30));
    claimed.extend(store.claim_job_tasks(&id, 1, &short).await.unwrap());
    claimed.extend(store.claim_job_tasks(&id, 6, &lease()).await.unwrap());
    assert_eq!(claimed.len(), 8);
    tokio::time::sleep(Duration::from_millis(60)).await;
    store.rescue_expired("m").await.unwrap();
    let other = Lease::new("m", Duration::from_secs(30));
    let again = store.claim_job_tasks(&id, 1, &other).await.unwrap();
    assert_eq!(again[0].seq, claimed[1].seq);
    // Ok, (lost), fail, fail, ok: the threshold passes at the second failure (2 of 3).
    let batch = vec![
        (claimed[0].clone(), ok(200)),
        (claimed[1].clone(), ok(200)),
        (claimed[2].clone(), fail.clone()),
        (claimed[3].clone(), fail.clone()),
        (claimed[4].clone(), ok(204)),
    ];
    let finished = store.finish_tasks(&batch, threshold).await.unwrap();
    assert_eq!(finished.lost, vec![claimed[1].seq]);
    assert!(
        finished
            .failed_job
            .as_deref()
            .unwrap()
            .contains("2 of the 3 tasks"),
        "{finished:?}"
    );
    let job = store.get_job(&id).await.unwrap().unwrap();
    assert_eq!((job.succeeded, job.failed), (2, 2));
    assert_eq!((job.fuel_used, job.cpu_ns), (22, 2_014));
    assert_eq!(job.state(), JobState::Failing);
    // The batch stopped there: its last tasks go back, pending and claimable by no one now.
    store.release_tasks(&claimed[5..]).await.unwrap();
    let tasks = store.all_tasks(&id).await.unwrap();
    let states: Vec<&str> = tasks.iter().map(|t| t.state.as_str()).collect();
    assert_eq!(
        states,
        [
            "succeeded",
            "running",
            "failed",
            "failed",
            "succeeded",
            "pending",
            "pending",
            "pending"
        ]
    );
    assert!(
        tasks[5..].iter().all(|t| t.attempts == 0),
        "their attempt is not counted"
    );
    let reclaimed = store.claim_job_tasks(&id, 8, &other).await;
    assert!(
        reclaimed.unwrap().is_empty(),
        "a failing job hands out no more tasks"
    );
    // Each failure and the job's failing are logged with the outcomes.
    let logged = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.contains("failed with") || l.contains("tasks run so far"))
            .cloned()
            .collect()
    };
    let lines = logged(&messages(&store, &id).await);
    assert_eq!(
        lines,
        [
            format!(
                "task {} ({}) failed with 409: x",
                claimed[2].seq, claimed[2].path
            ),
            format!(
                "task {} ({}) failed with 409: x",
                claimed[3].seq, claimed[3].path
            ),
            finished.failed_job.clone().unwrap(),
        ]
    );
    // Recording again (a retry after an outage) changes nothing, the log included.
    let twice = store.finish_tasks(&batch, threshold).await.unwrap();
    assert_eq!(twice.lost.len(), 5);
    let job = store.get_job(&id).await.unwrap().unwrap();
    assert_eq!((job.succeeded, job.failed), (2, 2));
    assert_eq!(logged(&messages(&store, &id).await), lines);
}

/// The messages of a job's log, oldest first.
async fn messages(store: &Store, id: &str) -> Vec<String> {
    let lines = store.logs(id, 0, 1_000).await.unwrap();
    lines.into_iter().map(|(_, _, message)| message).collect()
}

on_both_engines!(
    a_batch_is_recorded_at_once_in_order_and_unrun_tasks_go_back,
    concurrent_claims_never_hand_out_a_task_twice,
    an_expired_lease_is_rescued_and_the_late_answer_discarded,
    heartbeats_keep_leases_and_recovery_takes_only_its_own,
    one_node_at_a_time_holds_a_job,
    a_job_runs_through_its_states_and_keeps_its_fields,
    forbidden_transitions_change_nothing,
    transient_failures_wait_before_they_run_again,
    recovery_requeues_running_tasks_and_replans_preparing_jobs,
    listing_filters_by_tenant_state_and_type,
    names_are_unique_per_tenant,
    the_failure_threshold_fails_the_job_with_its_last_task,
    preemption_pauses_and_resumes_unless_a_user_takes_over,
    weights_are_kept_per_job_and_per_tenant,
);
