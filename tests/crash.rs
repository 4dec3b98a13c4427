//! The real binary, killed with SIGKILL five times while 1,000 provisions are in flight and
//! restarted after each kill, must publish a result for every request, leave exactly one Okta client per
//! credential, deliver each credential's current secret last, and log no secret.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::binary::{BinaryFixture, REUSED};
use common::end_state::{self, Outcomes};
use okta_dcr_worker::sim::SimHandle;
use tokio::time::Instant;

const REQUESTS: usize = 1000;
const KILLS: usize = 5;
/// Requests one worker processes at once (also its prefetch), so also the maximum number of
/// deliveries one kill can leave unacked.
const CONCURRENCY: usize = 16;
/// How long all requests may take, kills and restarts included.
const ALL_ANSWERED_WITHIN: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_worker_loses_nothing() {
    // 200 ms per Okta call keeps many registrations in flight at each kill, some already
    // carried out by okta-sim but without a response yet.
    let mut fixture = BinaryFixture::start(Duration::from_millis(200)).await;
    let mut request_ids = BTreeSet::new();
    for index in 0..REQUESTS {
        let request_id = format!("r-kill-{index}");
        let request = common::provision(&request_id, &format!("cred-kill-{index}"));
        fixture.publish(&request).await;
        request_ids.insert(request_id);
    }

    let concurrency = CONCURRENCY.to_string();
    let env = [
        ("OKTA_DCR_CONCURRENCY", concurrency.as_str()),
        ("OKTA_DCR_OKTA_CONCURRENCY", concurrency.as_str()),
    ];
    let worker = fixture.spawn(&env);
    for kill in 1..=KILLS {
        wait_for_registrations(&fixture.simulator, kill * REQUESTS / (KILLS + 1)).await;
        fixture.kill(worker);
        fixture.respawn(worker, &env);
    }

    let mut outcomes = Outcomes::default();
    fixture
        .collect_until(
            &mut outcomes,
            ALL_ANSWERED_WITHIN,
            "every request answered",
            |outcomes| outcomes.answered(&request_ids) == REQUESTS,
        )
        .await;
    stop_when_queue_empty(&mut fixture, worker, &env).await;
    fixture.drain_outcomes(&mut outcomes).await;

    end_state::assert_clean_end_state(
        &fixture.simulator,
        &outcomes,
        &request_ids,
        KILLS * CONCURRENCY,
        &fixture.logs(),
    );
    assert!(
        fixture.log_count(REUSED) > 0,
        "no kill landed between a registration and its ack"
    );
    fixture.finish().await;
}

/// Stops the worker with SIGTERM, which lets requests in flight finish. A request whose
/// result was published but not acked before a kill is back in the queue and publishes a
/// newer result, so the worker is restarted until the queue is empty, at most three times.
async fn stop_when_queue_empty(fixture: &mut BinaryFixture, worker: usize, env: &[(&str, &str)]) {
    for _ in 0..3 {
        let (status, _) = fixture.terminate(worker, Duration::from_secs(40)).await;
        assert!(status.success(), "the worker exited with {status}");
        let ready = fixture.request_queue_state().await.map(|(ready, _)| ready);
        if ready == Some(0) {
            return;
        }
        fixture.respawn(worker, env);
        fixture.wait_until_idle().await;
    }
    panic!("requests were still queued after three restarts");
}

/// Waits until okta-sim has received `count` registrations, plus a moment, so that a kill
/// lands while calls are in flight.
async fn wait_for_registrations(simulator: &SimHandle, count: usize) {
    let registrations = |simulator: &SimHandle| {
        simulator
            .requests()
            .iter()
            .filter(|request| request.method == "POST" && request.path == "/oauth2/v1/clients")
            .count()
    };
    let within = Duration::from_secs(60);
    let deadline = Instant::now() + within;
    while registrations(simulator) < count {
        assert!(
            Instant::now() < deadline,
            "okta-sim received {} of {count} registrations within {within:?}",
            registrations(simulator)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(120)).await;
}
