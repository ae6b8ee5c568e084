//! The API Lambda: the shared router behind `lambda_http`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    openfloor_lambda::init_tracing();
    let cli = openfloor_lambda::config_from_env()?;
    let app = openfloor_lambda::api_state(&cli).await?;
    lambda_http::run(openfloor_api::router(app)).await
}
