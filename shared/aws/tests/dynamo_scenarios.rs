//! The storage scenarios every backend passes, against DynamoDB (moto).

use openfloor_aws::Aws;
use openfloor_store::Store;
use openfloor_testing::aws;

openfloor_testing::backend_scenarios!(dynamodb, fresh_dynamodb);

async fn fresh_dynamodb() -> Option<(Store, Aws)> {
    let aws = aws::fresh().await?;
    Some((aws.store(), aws))
}
