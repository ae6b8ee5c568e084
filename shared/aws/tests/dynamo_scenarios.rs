//! The storage scenarios every backend passes, against DynamoDB (moto).

openfloor_testing::backend_scenarios!(dynamodb, {
    let Some(aws) = openfloor_testing::aws::fresh().await else {
        return;
    };
    (aws.store(), ())
});
