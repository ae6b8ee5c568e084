//! The API Lambda: the shared router behind `lambda_http`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let telemetry = openfloor_lambda::init_telemetry("openfloor-api")?;
    let cli = openfloor_lambda::config_from_env()?;
    let app = openfloor_lambda::api_state(&cli).await?;
    let router = openfloor_lambda::flushing(openfloor_api::router(app), telemetry);
    lambda_http::run(router).await
}
