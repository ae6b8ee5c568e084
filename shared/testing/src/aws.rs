//! Connects tests to the AWS stand-in (moto's server) named by
//! `OPENFLOOR_TEST_AWS_ENDPOINT`; `scripts/test` starts one. Without it the
//! tests say so and pass, unless `OPENFLOOR_REQUIRE_AWS_TESTS` is set (as
//! `scripts/test` and CI do), where a missing stand-in fails them.

use openfloor_aws::queue::Queue;
use openfloor_aws::{Aws, AwsSettings};

/// The stand-in's endpoint, or `None` when the AWS tests are to be skipped
/// (a test returns early on `None`). Panics when they are required.
pub fn endpoint() -> Option<String> {
    match std::env::var("OPENFLOOR_TEST_AWS_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            assert!(
                std::env::var_os("OPENFLOOR_REQUIRE_AWS_TESTS").is_none(),
                "OPENFLOOR_REQUIRE_AWS_TESTS is set but OPENFLOOR_TEST_AWS_ENDPOINT is not"
            );
            eprintln!(
                "skipped: set OPENFLOOR_TEST_AWS_ENDPOINT to a moto server to run the AWS tests"
            );
            None
        }
    }
}

/// Settings with fresh table and queue names, so tests never share state.
pub fn fresh_settings(endpoint: &str) -> AwsSettings {
    let suffix = ulid::Ulid::new().to_string().to_lowercase();
    AwsSettings {
        region: "eu-west-1".into(),
        endpoint_url: Some(endpoint.to_owned()),
        events_table: format!("events-{suffix}"),
        records_table: format!("records-{suffix}"),
        views_table: format!("views-{suffix}"),
        queue_name: format!("projector-{suffix}"),
        states_bucket: Some(format!("states-{suffix}")),
    }
}

/// Connected to the stand-in under fresh names, with the tables and queues
/// created; `None` as for [`endpoint`].
pub async fn fresh() -> Option<Aws> {
    let endpoint = endpoint()?;
    let aws = Aws::connect(fresh_settings(&endpoint)).await;
    aws.create_resources()
        .await
        .expect("creating tables and queues on the stand-in");
    Some(aws)
}

/// Sends `body` as it is, bypassing [`Queue::send`]'s commands: how a test
/// puts a poison message on the queue.
pub async fn send_raw(queue: &Queue, body: &str) {
    queue
        .client
        .send_message()
        .queue_url(&queue.url)
        .message_body(body)
        .send()
        .await
        .expect("sending a raw message to the stand-in");
}
