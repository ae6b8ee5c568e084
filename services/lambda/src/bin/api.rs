//! The API Lambda: the shared router behind `lambda_http`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .init();
    let cli = openfloor_lambda::config_from_env()?;
    let app = openfloor_lambda::api_state(&cli).await?;
    lambda_http::run(openfloor_api::router(app)).await
}
