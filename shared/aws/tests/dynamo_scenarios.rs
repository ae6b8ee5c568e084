//! The storage scenarios every backend passes, against DynamoDB (moto).
//! All but the race of concurrent appends of one key: moto was seen letting
//! two racing conditional writes of one key both succeed, so that scenario
//! tests moto, not us (DynamoDB guarantees it; the memory and SQLite
//! backends run it).

use openfloor_aws::Aws;
use openfloor_store::Store;
use openfloor_testing::aws;

openfloor_testing::backend_scenarios!(dynamodb, fresh_dynamodb, except_racing_writes);

async fn fresh_dynamodb() -> Option<(Store, Aws)> {
    let aws = aws::fresh().await?;
    Some((aws.store(), aws))
}
