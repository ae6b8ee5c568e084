//! Who is asking: the client's address, as far as it can be trusted. It
//! keys the per-address rate limits and, salted and hashed, goes into
//! records for abuse audits.
//!
//! Without a proxy in front it is the connection's address. Behind proxies
//! it is taken from `X-Forwarded-For`, to which each proxy appends the
//! address that connected to it: counting the trusted proxies from the
//! right gives the first address no trusted proxy wrote. The entries left
//! of it are the client's to write, so the leftmost entry is never taken
//! on trust.

use std::net::{IpAddr, SocketAddr};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::state::AppState;

/// Where the client's address comes from, by deployment.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientAddressSource {
    /// How many proxies in front of this service append to
    /// `X-Forwarded-For` (0: none, the connection's address is the
    /// client's). Only right when every request passes through them all.
    pub trusted_proxies: u8,
    /// Take `CloudFront-Viewer-Address` first: CloudFront sets it itself,
    /// whatever the client sent (the AWS deployment).
    pub cloudfront_viewer_address: bool,
    /// The secret the CDN in front sends in [`CDN_SECRET_HEADER`]. Where
    /// the service can also be called past the CDN (a region's public API
    /// endpoint), only a request that carries it came through the CDN:
    /// any other is a client calling directly, which could write the
    /// headers the CDN would, so for it only the nearest proxy is trusted
    /// (the one no client can bypass) and `CloudFront-Viewer-Address` is
    /// ignored.
    pub cdn_secret: Option<String>,
}

/// The header the CDN's origin secret comes in.
pub const CDN_SECRET_HEADER: &str = "x-openfloor-cdn";

/// Never the secret itself.
impl std::fmt::Debug for ClientAddressSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAddressSource")
            .field("trusted_proxies", &self.trusted_proxies)
            .field("cloudfront_viewer_address", &self.cloudfront_viewer_address)
            .field("cdn_secret", &self.cdn_secret.as_ref().map(|_| "(set)"))
            .finish()
    }
}

impl ClientAddressSource {
    /// The client's address for a request with `headers`, received from
    /// `peer` (`None` where the server does not see the connection: on
    /// Lambda, the nearest proxy is the one calling it). `None` when no
    /// address can be told.
    pub fn resolve(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        let header = |name: &str| headers.get(name)?.to_str().ok();
        let via_cdn = self.cdn_secret.as_ref().is_none_or(|secret| {
            headers.get(CDN_SECRET_HEADER).is_some_and(|sent| {
                bool::from(subtle::ConstantTimeEq::ct_eq(
                    sent.as_bytes(),
                    secret.as_bytes(),
                ))
            })
        });
        let trusted_proxies = if via_cdn {
            self.trusted_proxies
        } else {
            self.trusted_proxies.min(1)
        };
        if self.cloudfront_viewer_address && via_cdn {
            // `IP:port`, with IPv6 addresses in brackets.
            let viewer = header("cloudfront-viewer-address")
                .and_then(|v| v.trim().rsplit_once(':'))
                .and_then(|(ip, _port)| ip.trim_matches(['[', ']']).parse::<IpAddr>().ok());
            if let Some(viewer) = viewer {
                return Some(viewer.to_canonical());
            }
        }
        let peer = peer.map(|p| p.ip().to_canonical());
        if trusted_proxies == 0 {
            return peer;
        }
        // Every hop, nearest last: the forwarded entries in the order the
        // proxies appended them, then the connection. Where the server sees
        // no connection, the nearest proxy is that unseen hop.
        // Split as bytes: one entry that is not text does not take the
        // others of its line with it.
        let mut hops: Vec<Option<IpAddr>> = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(parse_hop)
            .collect();
        hops.push(peer);
        // Skip one hop per trusted proxy. A chain shorter than that came
        // past fewer proxies than configured: its first hop is the best
        // there is (and the connection's address when nothing was
        // forwarded). An entry that is no address gives the nearest one
        // right of it that is (what a trusted proxy wrote): an unreadable
        // entry must not escape the per-address limits.
        let client = hops.len().saturating_sub(1 + usize::from(trusted_proxies));
        hops[client..].iter().flatten().next().copied()
    }
}

/// One `X-Forwarded-For` entry: an address, bare, in brackets or with a
/// port (as some proxies write them).
fn parse_hop(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(entry).ok()?.trim();
    let address = entry.parse::<IpAddr>().ok().or_else(|| {
        // `1.2.3.4:5678`, `[2001:db8::1]:5678`, `[2001:db8::1]`.
        let unbracketed = entry.trim_matches(['[', ']']).parse().ok();
        unbracketed.or_else(|| {
            let (host, _port) = entry.rsplit_once(':')?;
            host.trim_matches(['[', ']']).parse().ok()
        })
    })?;
    Some(address.to_canonical())
}

/// The key a client's address is limited by: the address itself for IPv4;
/// for IPv6 its /64 network, which one household or device usually holds
/// whole (so a client cannot step through its own addresses).
pub fn limit_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        v4 @ IpAddr::V4(_) => v4,
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            ))
        }
    }
}

/// The request's client address, resolved by the deployment's
/// [`ClientAddressSource`].
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        Ok(ClientAddress(
            app.config.client_address.resolve(&parts.headers, peer),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn behind(trusted_proxies: u8) -> ClientAddressSource {
        ClientAddressSource {
            trusted_proxies,
            ..ClientAddressSource::default()
        }
    }

    #[test]
    fn without_proxies_the_connection_is_the_client_whatever_it_forwards() {
        let forged = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("cloudfront-viewer-address", "2.2.2.2:1"),
        ]);
        assert_eq!(behind(0).resolve(&forged, peer("9.9.9.9")), ip("9.9.9.9"));
        assert_eq!(behind(0).resolve(&forged, None), None);
    }

    #[test]
    fn behind_proxies_the_address_is_counted_from_the_right_never_the_left() {
        // The client wrote "6.6.6.6"; the proxy appended the client's real
        // address 1.2.3.4 and connected from 10.0.0.1.
        let one = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4")]);
        assert_eq!(behind(1).resolve(&one, peer("10.0.0.1")), ip("1.2.3.4"));
        // Two proxies: the outer one appended 1.2.3.4, the inner one the
        // outer one's 10.0.0.2; entries may come in separate headers.
        let two = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "1.2.3.4, 10.0.0.2"),
        ]);
        assert_eq!(behind(2).resolve(&two, peer("10.0.0.1")), ip("1.2.3.4"));
        // On Lambda the nearest proxy (API Gateway) is not a connection the
        // server sees, but it appended CloudFront's address.
        let lambda = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 130.176.0.1")]);
        assert_eq!(behind(2).resolve(&lambda, None), ip("1.2.3.4"));
    }

    #[test]
    fn a_chain_shorter_than_the_proxies_gives_its_first_hop() {
        assert_eq!(
            behind(2).resolve(&HeaderMap::new(), peer("5.5.5.5")),
            ip("5.5.5.5")
        );
        let one = headers(&[("x-forwarded-for", "10.0.0.2")]);
        assert_eq!(behind(3).resolve(&one, peer("10.0.0.1")), ip("10.0.0.2"));
    }

    #[test]
    fn an_entry_that_is_no_address_gives_the_nearest_that_is() {
        let garbage = headers(&[("x-forwarded-for", "not an address, 10.0.0.2")]);
        assert_eq!(
            behind(2).resolve(&garbage, peer("10.0.0.1")),
            ip("10.0.0.2")
        );
        let mut binary = HeaderMap::new();
        binary.append(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"\xff\xfe, 1.2.3.4").unwrap(),
        );
        assert_eq!(behind(1).resolve(&binary, peer("10.0.0.1")), ip("1.2.3.4"));
        let ports = headers(&[("x-forwarded-for", "1.2.3.4:5678, [2001:db8::7]:443")]);
        assert_eq!(behind(2).resolve(&ports, peer("10.0.0.1")), ip("1.2.3.4"));
        assert_eq!(
            behind(1).resolve(&ports, peer("10.0.0.1")),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn ipv4_clients_seen_through_ipv6_are_ipv4_clients() {
        let mapped = Some(SocketAddr::new("::ffff:192.0.2.9".parse().unwrap(), 1));
        assert_eq!(
            behind(0).resolve(&HeaderMap::new(), mapped),
            ip("192.0.2.9")
        );
        assert_ne!(
            limit_key("::ffff:192.0.2.9".parse().unwrap()),
            limit_key("::ffff:198.51.100.1".parse().unwrap())
        );
    }

    #[test]
    fn cloudfront_names_the_viewer_when_trusted() {
        let source = ClientAddressSource {
            trusted_proxies: 2,
            cloudfront_viewer_address: true,
            cdn_secret: None,
        };
        let v6 = headers(&[
            ("cloudfront-viewer-address", "[2001:db8::1]:443"),
            ("x-forwarded-for", "1.2.3.4, 130.176.0.1"),
        ]);
        assert_eq!(source.resolve(&v6, None), ip("2001:db8::1"));
        // CloudFront's own form: no brackets, the port after the last colon.
        let bare = headers(&[("cloudfront-viewer-address", "2001:db8::1:46532")]);
        assert_eq!(source.resolve(&bare, None), ip("2001:db8::1"));
        let without = headers(&[("x-forwarded-for", "1.2.3.4, 130.176.0.1")]);
        assert_eq!(source.resolve(&without, None), ip("1.2.3.4"));
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_network() {
        assert_eq!(
            limit_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            limit_key("1.2.3.4".parse().unwrap()),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn past_the_cdn_only_the_nearest_proxy_is_trusted() {
        let source = ClientAddressSource {
            trusted_proxies: 2,
            cloudfront_viewer_address: true,
            cdn_secret: Some("the-cdn-secret".into()),
        };
        // Through CloudFront and API Gateway, with the secret.
        let via_cdn = headers(&[
            ("x-openfloor-cdn", "the-cdn-secret"),
            ("cloudfront-viewer-address", "198.51.100.10:443"),
            ("x-forwarded-for", "198.51.100.10, 130.176.0.1"),
        ]);
        assert_eq!(source.resolve(&via_cdn, None), ip("198.51.100.10"));
        // Straight to API Gateway, forging what CloudFront would send: the
        // address API Gateway appended is the client's.
        for secret in [None, Some("a-guess"), Some("the-cdn-secret-")] {
            let mut forged = headers(&[
                ("cloudfront-viewer-address", "6.6.6.6:1"),
                ("x-forwarded-for", "7.7.7.7, 203.0.113.7"),
            ]);
            if let Some(secret) = secret {
                forged.insert("x-openfloor-cdn", secret.parse().unwrap());
            }
            assert_eq!(
                source.resolve(&forged, None),
                ip("203.0.113.7"),
                "{secret:?}"
            );
        }
        assert!(!format!("{source:?}").contains("the-cdn-secret"));
    }
}
