//! Limits on a request's head, its URI and header fields, checked before
//! routing so that every refusal comes in the error envelope.
//!
//! hyper has limits of its own, but it answers them itself, before any
//! service runs, with an empty body (and closes the connection). So the
//! server sets hyper's well above these ([`HEAD_BYTES_HARD_LIMIT`],
//! [`HEADER_FIELDS_HARD_LIMIT`]): a head over our limits but within
//! hyper's gets our answer; only one beyond hyper's gets hyper's bare
//! `431`. (The same goes for a head hyper cannot parse at all, a bare
//! `400`: no service sees it.)

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Longest path and query accepted, in bytes (414 `uri_too_long`): a common
/// server default (Apache's request line, nginx's header buffer), and far
/// beyond this API's longest URL, a records page, of under 200 bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Most bytes of header names and values accepted, all fields together
/// (431 `headers_too_large`): Node's default; room for a browser's cookies
/// and what the proxies in front add.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Most header fields accepted, a repeated name counted each time (431
/// `headers_too_large`): hyper's and Envoy's default, which no browser or
/// CDN comes near.
pub const MAX_HEADER_FIELDS: usize = 100;

/// Size of a head (request line and header lines, as sent) from which
/// hyper refuses it alone. A head within our limits takes under 25 KiB
/// (each field adds 4 bytes of `: ` and line end), so one over them by as
/// much again still gets our answer.
pub const HEAD_BYTES_HARD_LIMIT: usize = 64 * 1024;

/// Header fields from which hyper refuses a head alone.
pub const HEADER_FIELDS_HARD_LIMIT: usize = 2 * MAX_HEADER_FIELDS;

const _: () = assert!(HEAD_BYTES_HARD_LIMIT >= 2 * (MAX_URI_BYTES + MAX_HEADER_BYTES));

/// A request's head as its client sent it. It is measured before any
/// layer changes it (the region prefix comes off the path, a request id is
/// added to the headers) by [`measure_heads`], and checked inside those
/// layers by [`refuse_oversized_heads`], so that a refusal carries what
/// every answer carries (security headers, request id) and is counted.
#[derive(Debug, Clone, Copy)]
pub struct HeadSize {
    uri_bytes: usize,
    header_bytes: usize,
    header_fields: usize,
}

impl HeadSize {
    fn of(request: &Request) -> Self {
        let headers = request.headers();
        HeadSize {
            uri_bytes: request
                .uri()
                .path_and_query()
                .map_or(0, |p| p.as_str().len()),
            header_bytes: headers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len())
                .sum(),
            header_fields: headers.len(),
        }
    }

    fn check(self) -> Result<(), ApiError> {
        if self.uri_bytes > MAX_URI_BYTES {
            return Err(ApiError::UriTooLong(MAX_URI_BYTES));
        }
        if self.header_fields > MAX_HEADER_FIELDS {
            return Err(ApiError::HeadersTooLarge(format!(
                "the request has more than {MAX_HEADER_FIELDS} header fields"
            )));
        }
        if self.header_bytes > MAX_HEADER_BYTES {
            return Err(ApiError::HeadersTooLarge(format!(
                "the request's header names and values come to more than {MAX_HEADER_BYTES} bytes"
            )));
        }
        Ok(())
    }
}

/// Before every other layer: records the request's [`HeadSize`].
pub async fn measure_heads(mut request: Request, next: Next) -> Response {
    let size = HeadSize::of(&request);
    request.extensions_mut().insert(size);
    next.run(request).await
}

/// Refuses a request whose head, as measured by [`measure_heads`], is over
/// the limits above.
pub async fn refuse_oversized_heads(request: Request, next: Next) -> Response {
    let Some(size) = request.extensions().get::<HeadSize>().copied() else {
        return ApiError::internal("the request's head was not measured").into_response();
    };
    if let Err(refusal) = size.check() {
        return refusal.into_response();
    }
    next.run(request).await
}
