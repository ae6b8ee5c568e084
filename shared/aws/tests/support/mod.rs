//! Connects tests to the AWS stand-in (moto's server) named by
//! `OPENFLOOR_TEST_AWS_ENDPOINT`; `scripts/test` starts one. Without it the
//! tests say so and pass, unless `OPENFLOOR_REQUIRE_AWS_TESTS` is set (as
//! `scripts/test` and CI do), where a missing stand-in fails them.

use openfloor_aws::{Aws, AwsSettings};

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
    }
}

/// Connected, with its tables and queues created.
pub async fn fresh() -> Option<Aws> {
    let endpoint = endpoint()?;
    let aws = Aws::connect(fresh_settings(&endpoint)).await;
    aws.create_resources()
        .await
        .expect("creating tables and queues on the stand-in");
    Some(aws)
}
