//! Claims of schedule ticks: one claim per tick, however many handles race for it.

use crate::common;

use assay_store::ScheduleTick;
use common::Env;

fn tick(workflow: &str, event_index: i64, tick_at: i64, by: &str) -> ScheduleTick {
    ScheduleTick {
        workflow: workflow.into(),
        event_index,
        tick_at,
        cron: "* * * * * *".into(),
        claimed_by: by.into(),
    }
}

both!(a_tick_is_claimed_once);
async fn a_tick_is_claimed_once(env: Env) {
    let other = env.reopen().await;
    assert!(
        env.store
            .claim_schedule_tick(&tick("wf", 0, 1_000, "a"))
            .await
            .unwrap()
    );
    // The same tick, from this handle and from another pool: already taken.
    assert!(
        !env.store
            .claim_schedule_tick(&tick("wf", 0, 1_000, "a"))
            .await
            .unwrap()
    );
    assert!(
        !other
            .claim_schedule_tick(&tick("wf", 0, 1_000, "b"))
            .await
            .unwrap()
    );
    // Another tick, another event, another workflow: each its own claim.
    assert!(
        other
            .claim_schedule_tick(&tick("wf", 0, 2_000, "b"))
            .await
            .unwrap()
    );
    assert!(
        other
            .claim_schedule_tick(&tick("wf", 1, 1_000, "b"))
            .await
            .unwrap()
    );
    assert!(
        other
            .claim_schedule_tick(&tick("wf2", 0, 1_000, "b"))
            .await
            .unwrap()
    );

    env.store
        .set_schedule_tick_execution("wf", 0, 1_000, "exec-1")
        .await
        .unwrap();
    let ticks = env.store.list_schedule_ticks("wf").await.unwrap();
    let seen: Vec<(i64, i64, &str, Option<&str>)> = ticks
        .iter()
        .map(|t| {
            (
                t.tick.tick_at,
                t.tick.event_index,
                t.tick.claimed_by.as_str(),
                t.execution_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1_000, 0, "a", Some("exec-1")),
            (1_000, 1, "b", None),
            (2_000, 0, "b", None)
        ]
    );
    assert_eq!(
        env.store.last_schedule_tick("wf", 0).await.unwrap(),
        Some(2_000)
    );
    assert_eq!(env.store.last_schedule_tick("wf", 7).await.unwrap(), None);
}

both!(racing_handles_claim_each_tick_once);
async fn racing_handles_claim_each_tick_once(env: Env) {
    // Four independent pools (as four servers would have) race for the same 20 ticks.
    let mut stores = vec![env.store.clone()];
    for _ in 0..3 {
        stores.push(env.reopen().await);
    }
    let mut tasks = Vec::new();
    for (n, store) in stores.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for t in 0..20 {
                let claim = tick("race", 0, t * 1_000, &format!("server-{n}"));
                if store.claim_schedule_tick(&claim).await.unwrap() {
                    won.push(t);
                }
            }
            won
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    assert_eq!(
        all,
        (0..20).collect::<Vec<_>>(),
        "every tick won exactly once"
    );
    assert_eq!(
        env.store.list_schedule_ticks("race").await.unwrap().len(),
        20
    );
}

both!(pruning_keeps_the_latest_tick_of_each_schedule);
async fn pruning_keeps_the_latest_tick_of_each_schedule(env: Env) {
    for t in [1_000, 2_000, 3_000] {
        assert!(
            env.store
                .claim_schedule_tick(&tick("wf", 0, t, "a"))
                .await
                .unwrap()
        );
    }
    assert!(
        env.store
            .claim_schedule_tick(&tick("wf", 1, 1_000, "a"))
            .await
            .unwrap()
    );
    // Everything is older than the cutoff; the newest of each schedule stays.
    assert_eq!(env.store.prune_schedule_ticks(10_000).await.unwrap(), 2);
    let left: Vec<(i64, i64)> = env
        .store
        .list_schedule_ticks("wf")
        .await
        .unwrap()
        .iter()
        .map(|t| (t.tick.event_index, t.tick.tick_at))
        .collect();
    assert_eq!(left, [(1, 1_000), (0, 3_000)]);
    assert_eq!(
        env.store.last_schedule_tick("wf", 0).await.unwrap(),
        Some(3_000)
    );
}
