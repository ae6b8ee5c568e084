//! A local stand-in for the CDN in front of several regions: one address,
//! the region named in the path. It looks nothing up: like CloudFront's
//! cache behaviours, it routes by path prefix alone.
//!
//! - `/r/{region}/…` goes to that region's server, path unchanged;
//! - `/api/…` goes to the default region as `/r/{default}/api/…`
//!   (CloudFront: an origin whose `OriginPath` is `/r/{default}`);
//! - anything else goes to the default region unchanged (CloudFront: the S3
//!   bucket of the web client).
//!
//! Where it differs from CloudFront, for a development tool's sake: it
//! passes the client's `CloudFront-Viewer-Latitude`/`-Longitude` headers
//! through, so a test can say where its host is (CloudFront sets them
//! itself); a path naming a region it does not route is a plain 404 (where
//! CloudFront would use its default behaviour); it adds no
//! `X-Forwarded-For`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Where each region's server is, and which region serves unprefixed paths.
#[derive(Debug, Clone)]
pub struct EdgeRoutes {
    /// Region name to its server's base URL (`http://127.0.0.1:3001`).
    pub regions: BTreeMap<String, String>,
    /// The region of unprefixed paths (the deployment's primary region).
    pub default: String,
}

impl EdgeRoutes {
    /// Checks that the default region is one of the routed regions.
    pub fn new(regions: BTreeMap<String, String>, default: String) -> anyhow::Result<Self> {
        anyhow::ensure!(
            regions.contains_key(&default),
            "the default region {default:?} is not one of the routed regions"
        );
        Ok(Self { regions, default })
    }

    /// The upstream URL of a request for `path_and_query`, or `None` when it
    /// names a region this edge does not route.
    pub fn upstream(&self, path_and_query: &str) -> Option<String> {
        let (base, path) = if let Some(after) = path_and_query.strip_prefix("/r/") {
            let region = after.split(['/', '?']).next().unwrap_or_default();
            (self.regions.get(region)?, path_and_query.to_owned())
        } else if path_and_query.starts_with("/api/") {
            let default = &self.regions[&self.default];
            (default, format!("/r/{}{path_and_query}", self.default))
        } else {
            (&self.regions[&self.default], path_and_query.to_owned())
        };
        Some(format!("{}{path}", base.trim_end_matches('/')))
    }
}

struct Edge {
    routes: EdgeRoutes,
    client: Client<HttpConnector, Body>,
}

/// The edge as a router: every request is forwarded.
pub fn router(routes: EdgeRoutes) -> Router {
    let client = Client::builder(TokioExecutor::new()).build_http();
    Router::new()
        .fallback(forward)
        .with_state(Arc::new(Edge { routes, client }))
}

/// Serves the edge on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: EdgeRoutes,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(routes))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

/// Headers that belong to one connection, never forwarded (RFC 9110, 7.6.1).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

async fn forward(State(edge): State<Arc<Edge>>, mut req: Request) -> Response {
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let Some(target) = edge.routes.upstream(path_and_query) else {
        return (StatusCode::NOT_FOUND, "no such region at this edge\n").into_response();
    };
    match target.parse::<Uri>() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(error) => return (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response(),
    }
    let headers = req.headers_mut();
    for name in HOP_BY_HOP.iter().chain([&header::HOST]) {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    match edge.client.request(req).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            for name in &HOP_BY_HOP {
                parts.headers.remove(name);
            }
            Response::from_parts(parts, Body::new(body))
        }
        Err(error) => {
            tracing::warn!(%target, %error, "edge: the region did not answer");
            (StatusCode::BAD_GATEWAY, "the region did not answer\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_path_prefix_alone() {
        let routes = EdgeRoutes::new(
            BTreeMap::from([
                ("eu-west-1".to_owned(), "http://a:1/".to_owned()),
                ("us-east-1".to_owned(), "http://b:2".to_owned()),
            ]),
            "us-east-1".into(),
        )
        .unwrap();
        for (path, upstream) in [
            (
                "/r/eu-west-1/api/events/X?a=1",
                Some("http://a:1/r/eu-west-1/api/events/X?a=1"),
            ),
            (
                "/r/us-east-1/event/X",
                Some("http://b:2/r/us-east-1/event/X"),
            ),
            ("/r/eu-west-1", Some("http://a:1/r/eu-west-1")),
            ("/api/events", Some("http://b:2/r/us-east-1/api/events")),
            ("/event/X", Some("http://b:2/event/X")),
            ("/", Some("http://b:2/")),
            ("/r/ap-south-1/api/events", None),
        ] {
            assert_eq!(routes.upstream(path).as_deref(), upstream, "{path}");
        }
        assert!(EdgeRoutes::new(BTreeMap::new(), "x".into()).is_err());
    }
}
