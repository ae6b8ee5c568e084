use reqwest::StatusCode;
use serde_json::Value;

use openfloor_testing::api::assert_error;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_and_the_web_client_are_served() {
    let app = spawn_app().await;
    let r = app.get("/healthz").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");

    let event = app.create_event("Pages").await;
    for path in [
        "/".to_owned(),
        format!("/event/{}", event.id),
        format!("/event/{}/host", event.id),
    ] {
        let r = app.get(&path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers();
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cache-control"], "public, max-age=60");
        let html = r.text().await.unwrap();
        // Asset URLs carry the build id, so assets can be cached for long.
        let asset = html.split("/assets/").nth(1).unwrap();
        let (build, rest) = asset.split_once('/').unwrap();
        let name = rest.split('"').next().unwrap();
        let r = app
            .get(&format!("/assets/{build}/{name}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        // Assets revalidate like views: the tag alone, or weak within a list.
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        for tag in [etag.clone(), format!("\"other\", W/{etag}")] {
            let r = app
                .get(&format!("/assets/{build}/{name}"))
                .header("if-none-match", tag)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        }
    }
}

#[tokio::test]
async fn qr_codes_are_made_here_and_bounded() {
    let app = spawn_app().await;
    let r = app
        .get("/api/qr?text=http%3A%2F%2F127.0.0.1%3A3000%2Fevent%2F01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    // Opened on its own, the picture may run and load nothing.
    assert_eq!(
        r.headers()["content-security-policy"],
        openfloor_api::NOT_A_PAGE_POLICY
    );
    assert!(r.text().await.unwrap().starts_with("<?xml"));
    for query in ["", "?text=", &format!("?text={}", "x".repeat(600))] {
        let r = app.get(&format!("/api/qr{query}")).send().await.unwrap();
        assert_error(r, StatusCode::BAD_REQUEST, "bad_request").await;
    }
}
