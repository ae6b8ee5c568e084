//! The projector Lambda: batches of the records stream and of the command
//! queue in, partial batch failures out.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = openfloor_lambda::init_telemetry("openfloor-projector")?;
    let cli = openfloor_lambda::config_from_env()?;
    let service = openfloor_lambda::projector_service(&cli).await;
    let (service, telemetry) = (&service, &telemetry);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let answer = openfloor_lambda::handle_projector_event(service, event.payload).await;
        // Before the answer: a frozen function sends nothing.
        telemetry.flush();
        answer.map_err(lambda_runtime::Error::from)
    }))
    .await
}
