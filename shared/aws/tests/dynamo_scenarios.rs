//! The storage scenarios every backend passes, against DynamoDB (moto).

mod support;

openfloor_store::backend_scenarios!(dynamodb, {
    let Some(aws) = crate::support::fresh().await else {
        return;
    };
    (aws.store(), ())
});
