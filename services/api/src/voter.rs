//! Voter identity. Each browser holds a random token in a first-party
//! cookie (set on its first request); API clients may send `X-Voter`
//! instead. Handlers see only the token, and records only the pseudonym
//! derived from it.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, SameSite};
use cookie::time::Duration as CookieDuration;
use openfloor_domain::ids::VoterToken;

use crate::error::ApiError;
use crate::AppState;

/// The voter cookie's name over plain HTTP (one machine, development).
pub const COOKIE_NAME: &str = "openfloor_voter";
/// Its name where cookies are secure ([`crate::ApiConfig::secure_cookies`]):
/// the `__Host-` prefix makes browsers refuse it unless it is `Secure`,
/// for this host only and for every path, so no other site or subdomain
/// can plant a voter identity.
pub const SECURE_COOKIE_NAME: &str = "__Host-openfloor_voter";
/// A year: a guest who comes back to a long-lived event is the same voter.
const COOKIE_MAX_AGE_SECONDS: i64 = 365 * 24 * 3600;

/// The token of the first well-formed voter cookie. Cookie headers are
/// parsed by the `cookie` crate; a malformed cookie of the same name (a
/// stale or tampered one) does not hide a valid one after it.
fn cookie_token(req: &Request, name: &str) -> Option<VoterToken> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == name)
        .find_map(|c| VoterToken::parse(c.value()).ok())
}

pub async fn voter_identity(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    // Secure or not is the deployment's to say, never a client's header.
    let secure = app.config.secure_cookies;
    let name = if secure {
        SECURE_COOKIE_NAME
    } else {
        COOKIE_NAME
    };
    let mut issued = None;
    let token = if let Some(header) = req.headers().get("x-voter") {
        match header.to_str().ok().map(VoterToken::parse) {
            Some(Ok(token)) => token,
            _ => {
                return ApiError::BadRequest(format!(
                    "X-Voter must be {} to {} characters of A-Z, a-z, 0-9, '-' and '_'",
                    VoterToken::MIN_LEN,
                    VoterToken::MAX_LEN
                ))
                .into_response()
            }
        }
    } else if let Some(token) = cookie_token(&req, name) {
        token
    } else {
        let token = VoterToken::generate();
        issued = Some(token.clone());
        token
    };
    req.extensions_mut().insert(token);
    let mut response = next.run(req).await;

    // Never attach a cookie to a response a shared cache may keep: it would
    // hand one browser's identity to everyone behind the cache.
    let shareable = response
        .headers()
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("public"));
    if let (Some(token), false) = (issued, shareable) {
        let cookie = Cookie::build((name, token.expose().to_owned()))
            .path("/")
            .max_age(CookieDuration::seconds(COOKIE_MAX_AGE_SECONDS))
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(secure)
            .build();
        if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
            let headers = response.headers_mut();
            headers.append(header::SET_COOKIE, v);
            // An answer that hands out an identity is this browser's alone.
            if !headers.contains_key(header::CACHE_CONTROL) {
                headers.insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("private, no-store"),
                );
            }
        }
    }
    response
}
