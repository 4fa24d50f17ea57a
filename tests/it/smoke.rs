//! A first end-to-end check that the test harness itself works.
use crate::common;

#[tokio::test]
async fn spawned_app_answers_health_and_runs_a_command() {
    let app = common::spawn_app().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let reply = app
        .exec("console:alice", "incident raise Checkout down impact:high")
        .await;
    assert!(reply.text.starts_with("INC-1 raised"), "{}", reply.text);
    app.stop().await;
}
