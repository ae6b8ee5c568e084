//! openfloor's one typed configuration. Every setting is a command-line
//! flag and an environment variable (clap with `env`), defined once here:
//! the server binary, the operator tools and the Lambdas (which read the
//! environment alone) parse the same definitions, so they cannot disagree
//! about a setting, its default or its meaning.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};
use openfloor_api::regions::{is_region_name, Coordinates, Regions};
use openfloor_domain::secret::HostSecret;

/// The settings of a Lambda function: the store and the service, from the
/// environment alone (a Lambda has no command line).
#[derive(Debug, Parser)]
#[command(name = "openfloor-lambda")]
pub struct LambdaSettings {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl LambdaSettings {
    pub fn from_env() -> Result<Self, clap::Error> {
        Self::try_parse_from(["openfloor-lambda"])
    }
}

/// Where the data lives (shared by the server and the operator tools).
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Storage: `embedded` (SQLite in --data) or `aws` (DynamoDB and SQS).
    #[arg(
        long,
        env = "OPENFLOOR_BACKEND",
        value_enum,
        default_value_t = Backend::Embedded,
        global = true
    )]
    pub backend: Backend,

    /// Directory of the embedded store (created if missing).
    #[arg(
        long = "data",
        env = "OPENFLOOR_DATA",
        default_value = "openfloor-data",
        global = true
    )]
    pub data: PathBuf,

    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Embedded,
    Aws,
}

/// The AWS backend's resources. Credentials come the standard way
/// (`AWS_ACCESS_KEY_ID`, profiles, roles).
#[derive(Debug, Clone, Args)]
pub struct AwsArgs {
    /// AWS region: with --backend aws, this deployment's region, home of the
    /// events it creates.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1", global = true)]
    pub aws_region: String,

    /// Endpoint of an AWS stand-in (e.g. moto's server); AWS itself if unset.
    #[arg(long, env = "AWS_ENDPOINT_URL", global = true)]
    pub aws_endpoint_url: Option<String>,

    /// The global directory table.
    #[arg(
        long,
        env = "OPENFLOOR_EVENTS_TABLE",
        default_value = "openfloor-events",
        global = true
    )]
    pub events_table: String,

    /// The regional records table.
    #[arg(
        long,
        env = "OPENFLOOR_RECORDS_TABLE",
        default_value = "openfloor-records",
        global = true
    )]
    pub records_table: String,

    /// The regional views table.
    #[arg(
        long,
        env = "OPENFLOOR_VIEWS_TABLE",
        default_value = "openfloor-views",
        global = true
    )]
    pub views_table: String,

    /// The projector's SQS queue (its dead-letter queue is NAME-dlq).
    #[arg(
        long,
        env = "OPENFLOOR_QUEUE",
        default_value = "openfloor-projector",
        global = true
    )]
    pub queue_name: String,

    /// The S3 bucket where projectors keep each event's folded state
    /// between runs, so that a projection reads only the new records (the
    /// deployment's, from its template). None: projections fold the whole
    /// log. No default: bucket names are global, and a guessed one could
    /// be someone else's.
    #[arg(long, env = "OPENFLOOR_STATES_BUCKET", global = true)]
    pub states_bucket: Option<String>,

    /// Create missing tables and queues at start (development and tests).
    #[arg(long, env = "OPENFLOOR_CREATE_RESOURCES", global = true)]
    pub create_resources: bool,
}

impl AwsArgs {
    pub fn settings(&self) -> openfloor_aws::AwsSettings {
        openfloor_aws::AwsSettings {
            region: self.aws_region.clone(),
            endpoint_url: self.aws_endpoint_url.clone(),
            events_table: self.events_table.clone(),
            records_table: self.records_table.clone(),
            views_table: self.views_table.clone(),
            queue_name: self.queue_name.clone(),
            states_bucket: self.states_bucket.clone().filter(|b| !b.is_empty()),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "OPENFLOOR_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// This instance's region name (new events live here unless chosen
    /// otherwise; see --regions). With
    /// `--backend aws` the AWS region is used instead.
    #[arg(long, env = "OPENFLOOR_REGION", default_value = "local", value_parser = region_name)]
    pub region: String,

    /// Partitions a new event's records are spread over (AWS backend; one
    /// DynamoDB partition takes about 1,000 writes/s).
    #[arg(
        long,
        env = "OPENFLOOR_SHARDS",
        default_value_t = 8,
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    pub shards: u16,

    /// Salt for the client-address hashes in records (AWS backend; give
    /// every instance the same one so audits can correlate). The embedded
    /// store keeps its own.
    #[arg(long, env = "OPENFLOOR_CLIENT_SALT", hide_env_values = true)]
    pub client_salt: Option<String>,

    /// Another region's API, as NAME=URL (repeatable; the variable takes a
    /// comma-separated list). Requests for events homed there get a 307 to
    /// it.
    #[arg(
        long = "region-url",
        env = "OPENFLOOR_REGION_URLS",
        value_delimiter = ',',
        value_parser = parse_region_url
    )]
    pub region_urls: Vec<(String, String)>,

    /// Every region of the deployment, this one included (comma-separated).
    /// A new event lives in the one the host names, else the one nearest
    /// the host (by the CDN's viewer location), else this one. Regions with
    /// a --region-url are included anyway.
    #[arg(
        long = "regions",
        env = "OPENFLOOR_REGIONS",
        value_delimiter = ',',
        value_parser = region_name_or_none
    )]
    pub regions: Vec<String>,

    /// Where a region is, as NAME=LATITUDE:LONGITUDE in degrees
    /// (repeatable; the variable takes a comma-separated list). The usual
    /// AWS regions are known already; this adds others or moves them.
    #[arg(
        long = "region-coordinates",
        env = "OPENFLOOR_REGION_COORDINATES",
        value_delimiter = ',',
        value_parser = parse_region_coordinates
    )]
    pub region_coordinates: Vec<(String, Coordinates)>,

    /// How many days an event and its records are kept.
    #[arg(
        long,
        env = "OPENFLOOR_RETENTION_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=3650)
    )]
    pub retention_days: u32,

    /// How many proxies in front of the service append to X-Forwarded-For.
    /// Client addresses (for the per-address limits, and hashed for abuse
    /// audits) are then counted that many entries from its right end, never
    /// taken from its client-written left. 0: the connection's address.
    /// Only right when every request passes through all of them.
    #[arg(
        long,
        env = "OPENFLOOR_TRUSTED_PROXIES",
        default_value_t = 0,
        value_parser = clap::value_parser!(u8).range(0..=8)
    )]
    pub trusted_proxies: u8,

    /// The secret the CDN in front sends in X-Openfloor-Cdn (the AWS stack
    /// sets it). Requests without it came past the CDN: for them only the
    /// nearest proxy is trusted, whatever --trusted-proxies says.
    #[arg(long, env = "OPENFLOOR_CDN_SECRET", hide_env_values = true)]
    pub cdn_secret: Option<String>,

    /// Apply the per-address rate limits (events, questions, new voters and
    /// votes per client address). Switch off (`false`) only where all
    /// requests come from one trusted address, as in a load test.
    #[arg(
        long,
        env = "OPENFLOOR_LIMIT_BY_ADDRESS",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub limit_by_address: bool,

    /// How many questions one event may be asked; beyond it asks get
    /// `409 question_limit` (hosts see every question, and a flood must
    /// not grow an event without bound).
    #[arg(
        long,
        env = "OPENFLOOR_MAX_QUESTIONS",
        default_value_t = openfloor_api::state::DEFAULT_MAX_QUESTIONS
    )]
    pub max_questions: u64,

    /// Events whose directory entries the API keeps in memory (a few
    /// hundred bytes each); others are read from the store when asked for.
    #[arg(long, env = "OPENFLOOR_CACHED_EVENTS", default_value_t = 10_000)]
    pub cached_events: u64,

    /// Mebibytes of views kept in memory (the embedded store's copy of its
    /// views table; on AWS, views reused for a second). The least polled
    /// are dropped beyond it and read from the store when polled again.
    #[arg(long, env = "OPENFLOOR_VIEW_CACHE_MIB", default_value_t = 128)]
    pub view_cache_mib: u64,

    /// Events whose projection states the projector keeps in memory (the
    /// least recently projected beyond it are rebuilt from their logs when
    /// they next change).
    #[arg(long, env = "OPENFLOOR_KEPT_STATES", default_value_t = 1_000)]
    pub kept_states: usize,

    /// (Client address, voter) pairs remembered for the new-voter limit, in
    /// all (about 100 bytes each).
    #[arg(long, env = "OPENFLOOR_CACHED_VOTERS", default_value_t = 100_000)]
    pub cached_voters: u64,

    /// Served over HTTPS only: the voter cookie is `Secure` and named
    /// `__Host-openfloor_voter`. Never inferred from a client's header.
    #[arg(long, env = "OPENFLOOR_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// How long a client may take to send a request's headers, counted from
    /// when the server waits for them (so idle connections close too).
    #[arg(long, env = "OPENFLOOR_HEADER_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub header_timeout: Duration,

    /// How long a client may take to send a request's body.
    #[arg(long, env = "OPENFLOOR_BODY_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub body_timeout: Duration,

    /// Connections served at once; more wait to be accepted.
    #[arg(long, env = "OPENFLOOR_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Serve the process's metrics as Prometheus text at /metrics, on the
    /// service's own address (`--metrics false` to switch it off, e.g.
    /// where that address faces the internet). Never on Lambda.
    #[arg(
        long,
        env = "OPENFLOOR_METRICS",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub metrics: bool,

    /// How long a stop waits for requests in flight.
    #[arg(long, env = "OPENFLOOR_SHUTDOWN_GRACE", default_value = "10s", value_parser = duration)]
    pub shutdown_grace: Duration,

    /// Start a new, empty embedded store in --data even though the
    /// directory held one whose database is gone (deleted or moved).
    /// Without it the server refuses to start there,
    /// so that a lost database is restored, not silently replaced.
    #[arg(long, env = "OPENFLOOR_ACCEPT_LOST_DATA")]
    pub accept_lost_data: bool,
}

/// A duration as people write it: `10s`, `500ms`, `1m`.
fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 10s: {e}"))
}

impl ServeArgs {
    /// The salt for client-address hashes, by the one policy every entry
    /// point follows: the configured salt; else the store's own (the
    /// embedded store keeps one, so hashes stay comparable across
    /// restarts); else a random one for this process, with a warning, since
    /// hashes from different instances then cannot be correlated. Never
    /// empty: an unsalted hash of an address is easy to reverse.
    pub fn client_salt(&self, store_salt: Option<&[u8]>) -> Vec<u8> {
        match (&self.client_salt, store_salt) {
            (Some(salt), _) if !salt.is_empty() => salt.clone().into_bytes(),
            (_, Some(salt)) => salt.to_vec(),
            _ => {
                tracing::warn!(
                    "no --client-salt (OPENFLOOR_CLIENT_SALT): \
                     address hashes will not match across instances"
                );
                // 160 random bits, as for a host secret.
                HostSecret::generate().expose().as_bytes().to_vec()
            }
        }
    }

    /// [`ServeArgs::view_cache_mib`] in bytes.
    pub fn view_cache_bytes(&self) -> u64 {
        self.view_cache_mib.saturating_mul(1024 * 1024)
    }

    /// What one connection may take of the server.
    pub fn connection_limits(&self) -> openfloor_api::ConnectionLimits {
        openfloor_api::ConnectionLimits {
            header_read: self.header_timeout,
            body_read: self.body_timeout,
            max_connections: self.max_connections,
            shutdown_grace: self.shutdown_grace,
        }
    }

    /// The API's settings, given what the backend decides: the region new
    /// events live in, their shard count and the client-address salt.
    pub fn api_config(
        &self,
        region: String,
        shards: u16,
        client_salt: Vec<u8>,
    ) -> openfloor_api::ApiConfig {
        let regions = Regions::new(
            region,
            // An empty item is no region (see `region_name_or_none`).
            self.regions.iter().filter(|r| !r.is_empty()).cloned(),
            self.region_urls.iter().cloned().collect(),
            self.region_coordinates.iter().cloned().collect(),
        );
        for (name, _) in &self.region_coordinates {
            if !regions.all.contains_key(name) {
                tracing::warn!(
                    region = %name,
                    "--region-coordinates names a region not in --regions; ignored"
                );
            }
        }
        if regions.is_multi_region() {
            for unplaced in regions.unplaced() {
                tracing::warn!(
                    region = unplaced,
                    "no coordinates for this region (--region-coordinates): \
                     it is never chosen as the nearest"
                );
            }
        }
        openfloor_api::ApiConfig {
            regions,
            retention: std::time::Duration::from_secs(u64::from(self.retention_days) * 24 * 3600),
            shards,
            client_salt,
            client_address: openfloor_api::ClientAddressSource {
                trusted_proxies: self.trusted_proxies,
                cloudfront_viewer_address: false,
                cdn_secret: self.cdn_secret.clone().filter(|s| !s.is_empty()),
            },
            quotas: openfloor_api::Quotas {
                by_address: self.limit_by_address,
                ..openfloor_api::Quotas::default()
            },
            max_questions: self.max_questions,
            caches: openfloor_api::CacheSizes {
                events: self.cached_events,
                view_bytes: self.view_cache_bytes(),
                voters: self.cached_voters,
            },
            secure_cookies: self.secure_cookies,
            view_reuse: std::time::Duration::ZERO,
        }
    }
}

/// A region's name as it appears in paths (`/r/{region}/…`).
fn region_name(s: &str) -> Result<String, String> {
    if is_region_name(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a region name (lowercase letters, digits and hyphens, like eu-west-1)"
        ))
    }
}

/// [`region_name`], where an empty item (`OPENFLOOR_REGIONS=""`) names none.
fn region_name_or_none(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Ok(String::new())
    } else {
        region_name(s)
    }
}

fn parse_region_coordinates(s: &str) -> Result<(String, Coordinates), String> {
    let wrong = || format!("{s:?} is not NAME=LATITUDE:LONGITUDE, e.g. eu-west-1=53.35:-6.26");
    let (name, at) = s.split_once('=').ok_or_else(wrong)?;
    let (latitude, longitude) = at.split_once(':').ok_or_else(wrong)?;
    let degrees = |d: &str| d.trim().parse::<f64>().map_err(|_| wrong());
    let at = Coordinates::new(degrees(latitude)?, degrees(longitude)?).ok_or_else(wrong)?;
    if !is_region_name(name) {
        return Err(wrong());
    }
    Ok((name.to_owned(), at))
}

fn parse_region_url(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, url))
            if is_region_name(name)
                && (url.starts_with("http://") || url.starts_with("https://")) =>
        {
            Ok((name.to_owned(), url.to_owned()))
        }
        _ => Err(format!("{s:?} is not NAME=http(s)://…")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::ServeArgs;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        Serve::try_parse_from(std::iter::once("openfloor").chain(args.iter().copied()))
            .map(|s| s.serve)
    }

    #[test]
    fn regions_are_names_fit_for_paths() {
        let ok = parse(&["--regions", "eu-west-1,us-east-1", "--region", "eu-west-1"]).unwrap();
        assert_eq!(ok.regions, ["eu-west-1", "us-east-1"]);
        for bad in [
            &["--regions", "EU-West"][..],
            &["--region", "eu/west"],
            &["--region-url", "Eu=https://x"],
            &["--region-coordinates", "eu-west-1=95:0"],
            &["--region-coordinates", "eu-west-1=53.3"],
        ] {
            let error = parse(bad).map(|_| ()).unwrap_err().to_string();
            assert!(error.contains("invalid value"), "{bad:?}: {error}");
        }
        let placed = parse(&["--region-coordinates", "local-b=35.68:139.69"]).unwrap();
        assert_eq!(placed.region_coordinates[0].0, "local-b");
        // An empty list (an unset template parameter) names no region.
        let config = parse(&["--regions", ""])
            .unwrap()
            .api_config("local".into(), 1, vec![1]);
        assert!(!config.regions.is_multi_region());
    }
}
