//! The deployment's regions, and where a new event lives (DESIGN.md,
//! "Regions"): the region the host names, else the configured region nearest
//! the host, else the region that serves the request.
//!
//! "Nearest" is by great-circle distance from the viewer location a CDN
//! reports (CloudFront's `CloudFront-Viewer-Latitude` and `-Longitude`) to
//! each region's coordinates. The haversine formula is five lines of
//! arithmetic, so it is written here rather than pulling in a geometry crate.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use serde::Serialize;

/// A region's place on Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coordinates {
    pub latitude: f64,
    pub longitude: f64,
}

impl Coordinates {
    /// Valid coordinates, or `None` for values outside the globe (or NaN).
    pub fn new(latitude: f64, longitude: f64) -> Option<Self> {
        ((-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude)).then_some(
            Self {
                latitude,
                longitude,
            },
        )
    }

    /// Great-circle distance in kilometres (haversine, mean Earth radius).
    pub fn distance_km(self, other: Coordinates) -> f64 {
        const EARTH_RADIUS_KM: f64 = 6_371.0;
        let (phi1, phi2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let d_phi = phi2 - phi1;
        let d_lambda = (other.longitude - self.longitude).to_radians();
        let a =
            (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
        // Rounding can push `a` past 1 for antipodes, where asin is NaN.
        2.0 * EARTH_RADIUS_KM * a.clamp(0.0, 1.0).sqrt().asin()
    }

    /// The viewer's location as the CDN reports it, if it does.
    pub fn of_viewer(headers: &HeaderMap) -> Option<Self> {
        let degrees =
            |name: &str| -> Option<f64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        Self::new(
            degrees("cloudfront-viewer-latitude")?,
            degrees("cloudfront-viewer-longitude")?,
        )
    }
}

/// Where the usual AWS regions are (their metropolitan area), and what to
/// call them. A deployment can add or override any with
/// `--region-coordinates`.
pub const KNOWN_REGIONS: &[(&str, &str, f64, f64)] = &[
    ("us-east-1", "US East (N. Virginia)", 38.95, -77.45),
    ("us-east-2", "US East (Ohio)", 39.96, -83.00),
    ("us-west-1", "US West (N. California)", 37.35, -121.96),
    ("us-west-2", "US West (Oregon)", 45.84, -119.70),
    ("ca-central-1", "Canada (Central)", 45.50, -73.57),
    ("sa-east-1", "South America (São Paulo)", -23.55, -46.63),
    ("eu-west-1", "Europe (Ireland)", 53.35, -6.26),
    ("eu-west-2", "Europe (London)", 51.51, -0.13),
    ("eu-west-3", "Europe (Paris)", 48.86, 2.35),
    ("eu-central-1", "Europe (Frankfurt)", 50.11, 8.68),
    ("eu-central-2", "Europe (Zurich)", 47.37, 8.54),
    ("eu-north-1", "Europe (Stockholm)", 59.33, 18.07),
    ("eu-south-1", "Europe (Milan)", 45.46, 9.19),
    ("me-central-1", "Middle East (UAE)", 25.20, 55.27),
    ("af-south-1", "Africa (Cape Town)", -33.92, 18.42),
    ("ap-south-1", "Asia Pacific (Mumbai)", 19.08, 72.88),
    ("ap-southeast-1", "Asia Pacific (Singapore)", 1.35, 103.82),
    ("ap-southeast-2", "Asia Pacific (Sydney)", -33.87, 151.21),
    ("ap-northeast-1", "Asia Pacific (Tokyo)", 35.68, 139.69),
    ("ap-northeast-2", "Asia Pacific (Seoul)", 37.57, 126.98),
    ("ap-east-1", "Asia Pacific (Hong Kong)", 22.32, 114.17),
];

/// One region of the deployment.
#[derive(Debug, Clone, Serialize)]
pub struct Region {
    pub name: String,
    /// For people ("Europe (Ireland)"); the name when none is known.
    pub label: String,
    #[serde(skip)]
    pub at: Option<Coordinates>,
}

/// The deployment's regions, as this instance knows them.
#[derive(Debug, Clone)]
pub struct Regions {
    /// This instance's region, where new events live unless chosen
    /// otherwise.
    pub serving: String,
    /// Every region of the deployment (this one included), by name.
    pub all: BTreeMap<String, Region>,
    /// Other regions' API base URLs, for clients that call a region's API
    /// directly rather than through the one address (the CDN).
    pub urls: BTreeMap<String, String>,
}

/// Why a named region cannot be a new event's home.
#[derive(Debug, thiserror::Error)]
#[error("{name:?} is not one of this deployment's regions ({known})")]
pub struct UnknownRegion {
    pub name: String,
    pub known: String,
}

impl Regions {
    /// A deployment of one region: every event lives here.
    pub fn single(serving: impl Into<String>) -> Self {
        Self::new(serving.into(), [], BTreeMap::new(), BTreeMap::new())
    }

    /// The deployment's regions: `serving`, `others`, and those with a URL;
    /// each placed by `coordinates`, else by [`KNOWN_REGIONS`].
    pub fn new(
        serving: String,
        others: impl IntoIterator<Item = String>,
        urls: BTreeMap<String, String>,
        coordinates: BTreeMap<String, Coordinates>,
    ) -> Self {
        let names = std::iter::once(serving.clone())
            .chain(others)
            .chain(urls.keys().cloned());
        let all = names
            .map(|name| {
                let known = KNOWN_REGIONS.iter().find(|(n, ..)| *n == name);
                let at = coordinates
                    .get(&name)
                    .copied()
                    .or_else(|| known.and_then(|&(_, _, lat, lon)| Coordinates::new(lat, lon)));
                let label = known.map_or_else(|| name.clone(), |&(_, label, ..)| label.to_owned());
                (name.clone(), Region { name, label, at })
            })
            .collect();
        Self { serving, all, urls }
    }

    /// More than one region: events may live elsewhere, share links name
    /// their region, and an unknown event may still be replicating.
    pub fn is_multi_region(&self) -> bool {
        self.all.len() > 1
    }

    /// The home region of a new event: `named`, when given (it must be one
    /// of the deployment's); else the region nearest `viewer`; else the
    /// serving region.
    pub fn choose_home(
        &self,
        named: Option<&str>,
        viewer: Option<Coordinates>,
    ) -> Result<&str, UnknownRegion> {
        if let Some(name) = named {
            return match self.all.get_key_value(name) {
                Some((name, _)) => Ok(name),
                None => Err(UnknownRegion {
                    name: name.to_owned(),
                    known: self.all.keys().cloned().collect::<Vec<_>>().join(", "),
                }),
            };
        }
        Ok(viewer
            .and_then(|viewer| self.nearest(viewer))
            .unwrap_or(&self.serving))
    }

    /// The placed region nearest `viewer` (ties go to the first by name).
    pub fn nearest(&self, viewer: Coordinates) -> Option<&str> {
        self.all
            .values()
            .filter_map(|region| Some((region.at?.distance_km(viewer), region.name.as_str())))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, name)| name)
    }

    /// Regions that cannot be chosen by location, for a warning at start.
    pub fn unplaced(&self) -> impl Iterator<Item = &str> {
        self.all
            .values()
            .filter(|region| region.at.is_none())
            .map(|region| region.name.as_str())
    }
}

/// Whether `name` can be a region's name in a path (`/r/{name}/…`):
/// lowercase letters, digits and hyphens, as AWS region names are.
pub fn is_region_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(latitude: f64, longitude: f64) -> Coordinates {
        Coordinates::new(latitude, longitude).unwrap()
    }

    const LONDON: (f64, f64) = (51.5074, -0.1278);
    const PARIS: (f64, f64) = (48.8566, 2.3522);
    const NEW_YORK: (f64, f64) = (40.7128, -74.0060);
    const SYDNEY: (f64, f64) = (-33.8688, 151.2093);
    const TOKYO: (f64, f64) = (35.6762, 139.6503);
    const SAO_PAULO: (f64, f64) = (-23.5505, -46.6333);

    fn km(a: (f64, f64), b: (f64, f64)) -> f64 {
        at(a.0, a.1).distance_km(at(b.0, b.1))
    }

    /// Published great-circle distances between city centres, within 1%.
    #[test]
    fn distances_between_known_cities() {
        for (a, b, expected) in [
            (LONDON, PARIS, 344.0),
            (LONDON, NEW_YORK, 5_570.0),
            (SYDNEY, TOKYO, 7_826.0),
            (NEW_YORK, SAO_PAULO, 7_680.0),
        ] {
            let measured = km(a, b);
            assert!(
                (measured - expected).abs() / expected < 0.01,
                "{a:?} to {b:?}: {measured:.0} km, expected about {expected} km"
            );
            // Symmetric, and zero to itself.
            assert!((km(b, a) - measured).abs() < 1e-6);
            assert!(km(a, a).abs() < 1e-9);
        }
        // Antipodes: half the circumference, not NaN.
        let antipodes = at(40.0, -3.7).distance_km(at(-40.0, 176.3));
        assert!((antipodes - 20_015.0).abs() < 1.0, "{antipodes}");
        // Across the antimeridian: Fiji to Samoa is about 1,150 km, not
        // most of the way round the world.
        let across = at(-18.14, 178.44).distance_km(at(-13.83, -171.76));
        assert!((1_100.0..1_200.0).contains(&across), "{across}");
    }

    fn deployment(serving: &str, others: &[&str]) -> Regions {
        Regions::new(
            serving.into(),
            others.iter().map(|s| (*s).to_owned()),
            BTreeMap::new(),
            BTreeMap::new(),
        )
    }

    #[test]
    fn the_named_region_comes_first_and_must_be_configured() {
        let regions = deployment("eu-west-1", &["us-east-1", "ap-southeast-2"]);
        let sydney = Some(at(SYDNEY.0, SYDNEY.1));
        assert_eq!(
            regions.choose_home(Some("us-east-1"), sydney).unwrap(),
            "us-east-1"
        );
        let unknown = regions
            .choose_home(Some("mars-north-1"), sydney)
            .unwrap_err();
        assert!(unknown.to_string().contains("mars-north-1"), "{unknown}");
        assert!(unknown.to_string().contains("eu-west-1"), "{unknown}");
    }

    #[test]
    fn else_the_region_nearest_the_host() {
        let regions = deployment("eu-west-1", &["us-east-1", "ap-southeast-2"]);
        for (host, home) in [
            (SYDNEY, "ap-southeast-2"),
            (TOKYO, "ap-southeast-2"),
            (NEW_YORK, "us-east-1"),
            (SAO_PAULO, "us-east-1"),
            (PARIS, "eu-west-1"),
        ] {
            assert_eq!(
                regions.choose_home(None, Some(at(host.0, host.1))).unwrap(),
                home
            );
        }
    }

    #[test]
    fn else_the_serving_region() {
        let regions = deployment("us-east-1", &["eu-west-1"]);
        assert_eq!(regions.choose_home(None, None).unwrap(), "us-east-1");
        // A region nobody placed is never chosen by distance.
        let unplaced = deployment("local-a", &["local-b"]);
        assert_eq!(
            unplaced
                .choose_home(None, Some(at(TOKYO.0, TOKYO.1)))
                .unwrap(),
            "local-a"
        );
        assert_eq!(unplaced.unplaced().count(), 2);
    }

    #[test]
    fn configured_coordinates_place_any_region() {
        let regions = Regions::new(
            "local-a".into(),
            ["local-b".to_owned()],
            BTreeMap::new(),
            BTreeMap::from([
                ("local-a".to_owned(), at(LONDON.0, LONDON.1)),
                ("local-b".to_owned(), at(TOKYO.0, TOKYO.1)),
            ]),
        );
        assert_eq!(
            regions
                .choose_home(None, Some(at(SYDNEY.0, SYDNEY.1)))
                .unwrap(),
            "local-b"
        );
    }

    #[test]
    fn viewer_location_comes_from_the_cdn_headers_when_valid() {
        let mut headers = HeaderMap::new();
        assert_eq!(Coordinates::of_viewer(&headers), None);
        headers.insert("cloudfront-viewer-latitude", "-33.87".parse().unwrap());
        assert_eq!(Coordinates::of_viewer(&headers), None, "one of two");
        headers.insert("cloudfront-viewer-longitude", "151.21".parse().unwrap());
        assert_eq!(Coordinates::of_viewer(&headers), Some(at(-33.87, 151.21)));
        for bad in ["north", "NaN", "200", ""] {
            headers.insert("cloudfront-viewer-longitude", bad.parse().unwrap());
            assert_eq!(Coordinates::of_viewer(&headers), None, "{bad:?}");
        }
    }

    #[test]
    fn region_names_in_paths() {
        for good in ["eu-west-1", "local", "a"] {
            assert!(is_region_name(good), "{good}");
        }
        for bad in ["", "EU-WEST-1", "eu_west", "a/b", "..", &"x".repeat(41)] {
            assert!(!is_region_name(bad), "{bad}");
        }
    }
}
