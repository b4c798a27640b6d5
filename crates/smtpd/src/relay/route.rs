//! Where mail for a domain goes: the transport table, then the smarthost,
//! then DNS (MX records, or the domain's own address when it has none, RFC
//! 5321 section 5.1).
//!
//! MX hosts are tried in order of preference. Hosts of equal preference
//! stay in the order the DNS answer listed them: resolvers already rotate
//! records between answers, and a stable order keeps delivery logs easy to
//! follow.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use common::config::{RelayConfig, RelayTls, Transport};
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

/// At most this many addresses are tried for one domain, so a domain with
/// dozens of MX hosts cannot keep a delivery busy for hours.
pub const MAX_HOPS: usize = 10;

/// Port for transport entries that name none.
const SMTP_PORT: u16 = 25;

/// One address to try, with what the session there needs to know.
#[derive(Clone, PartialEq, Eq)]
pub struct Hop {
    /// The host's name (or IP address) as configured or found in MX: for
    /// logs, TLS SNI and certificate checks.
    pub host: String,
    pub addr: SocketAddr,
    pub tls: RelayTls,
    /// AUTH credentials (user name, password) from the transport entry.
    pub auth: Option<(String, String)>,
}

// The password must never reach a log line.
impl fmt::Debug for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hop")
            .field("host", &self.host)
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("auth", &self.auth.as_ref().map(|(user, _)| user))
            .finish()
    }
}

/// Why a domain has no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Try later: DNS SERVFAIL or timeout, resolver unavailable.
    Temporary(String),
    /// Bounce: the domain does not exist, has no MX and no address, or
    /// publishes a null MX (RFC 7505).
    Permanent(String),
}

impl RouteError {
    pub fn is_temporary(&self) -> bool {
        matches!(self, RouteError::Temporary(_))
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::Temporary(why) | RouteError::Permanent(why) => f.write_str(why),
        }
    }
}

/// A configured destination host: an address, or a name to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Ip(IpAddr),
    Name(String),
}

/// A transport entry checked and parsed once, when the router is built.
#[derive(Debug, Clone)]
struct Route {
    target: Target,
    port: u16,
    tls: RelayTls,
    auth: Option<(String, String)>,
}

impl Route {
    fn parse(what: &str, transport: &Transport) -> Result<Route, String> {
        let (target, port) = parse_host(&transport.host).map_err(|e| format!("{what}: {e}"))?;
        let auth = match (&transport.username, &transport.password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (None, None) => None,
            _ => {
                return Err(format!(
                    "{what}: username and password go together; give both or neither"
                ))
            }
        };
        Ok(Route {
            target,
            port,
            tls: transport.tls,
            auth,
        })
    }
}

/// Parses a transport `host`: `host:port`, `host` (port 25), `[ip]:port`,
/// `[ip]`, `ip:port`, or a bare IP address.
fn parse_host(spec: &str) -> Result<(Target, u16), String> {
    let spec = spec.trim();
    let bad = |why: &str| format!("bad host {spec:?}: {why}");
    if let Some(rest) = spec.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(|| bad("no closing ']'"))?;
        let ip: IpAddr = inside
            .parse()
            .map_err(|_| bad("not an IP address inside [ ]"))?;
        let port = match after {
            "" => SMTP_PORT,
            _ => parse_port(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| bad("junk after ']'"))?,
            )
            .ok_or_else(|| bad("bad port"))?,
        };
        return Ok((Target::Ip(ip), port));
    }
    // Unbracketed IPv6 has colons of its own, so it cannot carry a port.
    if let Ok(ip) = spec.parse::<Ipv6Addr>() {
        return Ok((Target::Ip(IpAddr::V6(ip)), SMTP_PORT));
    }
    let (host, port) = match spec.rsplit_once(':') {
        Some((host, port)) => (host, parse_port(port).ok_or_else(|| bad("bad port"))?),
        None => (spec, SMTP_PORT),
    };
    if host.is_empty() {
        return Err(bad("no host name"));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok((Target::Ip(ip), port));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let valid = name.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if !valid {
        return Err(bad("not a host name"));
    }
    Ok((Target::Name(normalise(host)), port))
}

fn parse_port(s: &str) -> Option<u16> {
    s.parse().ok().filter(|&p| p != 0)
}

/// Lowercase, without a trailing dot: how domains are compared here.
fn normalise(domain: &str) -> String {
    domain.trim_end_matches('.').to_ascii_lowercase()
}

/// Decides the hops for each destination domain. Built once; cheap to
/// share behind an `Arc` (the resolver caches answers).
pub struct Router {
    /// Keys normalised; a leading dot marks "every subdomain of".
    transports: BTreeMap<String, Route>,
    smarthost: Option<Route>,
    /// Without a usable system DNS configuration, routes through the
    /// transport table still work; DNS routes wait (temporary errors).
    resolver: Result<TokioResolver, String>,
    mx_port: u16,
    mx_tls: RelayTls,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("transports", &self.transports.keys().collect::<Vec<_>>())
            .field("smarthost", &self.smarthost.as_ref().map(|r| &r.target))
            .field("mx_port", &self.mx_port)
            .finish()
    }
}

/// What one DNS question found.
enum Answer<T> {
    Found(Vec<T>),
    /// The name exists but has no record of this type (NODATA).
    NoRecords,
    /// NXDOMAIN.
    NoDomain,
}

impl Router {
    /// Checks the transport table and smarthost and sets up the resolver:
    /// the `dns_servers` (UDP and TCP) when given, else the system's.
    pub fn new(config: &RelayConfig) -> Result<Router, String> {
        let mut transports = BTreeMap::new();
        for (key, transport) in &config.transport {
            let route = Route::parse(&format!("relay.transport.{key:?}"), transport)?;
            let key = if let Some(parent) = key.strip_prefix('.') {
                format!(".{}", normalise(parent))
            } else {
                normalise(key)
            };
            if key.is_empty() || key == "." {
                return Err("relay.transport: empty domain key".into());
            }
            transports.insert(key, route);
        }
        let smarthost = config
            .smarthost
            .as_ref()
            .map(|t| Route::parse("relay.smarthost", t))
            .transpose()?;
        let resolver = if config.dns_servers.is_empty() {
            TokioResolver::builder_tokio()
                .and_then(|builder| builder.build())
                .map_err(|e| {
                    let why = format!("cannot use the system DNS configuration: {e}");
                    tracing::warn!("{why}; only [relay] transports and smarthost will work");
                    why
                })
        } else {
            let servers = config
                .dns_servers
                .iter()
                .map(|addr| {
                    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                    for connection in &mut server.connections {
                        connection.port = addr.port();
                    }
                    server
                })
                .collect();
            let resolver = TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
            .build()
            .map_err(|e| format!("relay.dns_servers: cannot set up the DNS resolver: {e}"))?;
            Ok(resolver)
        };
        Ok(Router {
            transports,
            smarthost,
            resolver,
            mx_port: config.mx_port,
            mx_tls: config.tls,
        })
    }

    fn resolver(&self) -> Result<&TokioResolver, RouteError> {
        self.resolver
            .as_ref()
            .map_err(|why| RouteError::Temporary(why.clone()))
    }

    /// The hops for `domain`, best first, at most [`MAX_HOPS`].
    pub async fn route(&self, domain: &str) -> Result<Vec<Hop>, RouteError> {
        let domain = normalise(domain);
        if domain.starts_with('[') {
            return Err(RouteError::Permanent(format!(
                "address literal {domain} is not routed"
            )));
        }
        if domain.is_empty() {
            return Err(RouteError::Permanent("empty domain".into()));
        }
        if let Some(route) = self.configured(&domain) {
            let addrs = match &route.target {
                Target::Ip(ip) => vec![*ip],
                Target::Name(name) => match self.addresses(name).await? {
                    Answer::Found(addrs) => addrs,
                    // A configured relay host that does not resolve is the
                    // postmaster's typo to fix, not a reason to bounce.
                    Answer::NoRecords | Answer::NoDomain => {
                        return Err(RouteError::Temporary(format!(
                            "relay host {name} has no address (A/AAAA)"
                        )))
                    }
                },
            };
            let host = match &route.target {
                Target::Ip(ip) => ip.to_string(),
                Target::Name(name) => name.clone(),
            };
            return Ok(addrs
                .into_iter()
                .take(MAX_HOPS)
                .map(|ip| Hop {
                    host: host.clone(),
                    addr: SocketAddr::new(ip, route.port),
                    tls: route.tls,
                    auth: route.auth.clone(),
                })
                .collect());
        }
        self.mx_route(&domain).await
    }

    /// The transport entry for `domain` (exact, then the closest
    /// `.parent`), else the smarthost.
    fn configured(&self, domain: &str) -> Option<&Route> {
        if let Some(route) = self.transports.get(domain) {
            return Some(route);
        }
        let mut rest = domain;
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(route) = self.transports.get(&format!(".{parent}")) {
                return Some(route);
            }
            rest = parent;
        }
        self.smarthost.as_ref()
    }

    async fn mx_route(&self, domain: &str) -> Result<Vec<Hop>, RouteError> {
        let fqdn = format!("{domain}.");
        let mut exchanges: Vec<(u16, String)> =
            match self.resolver()?.mx_lookup(fqdn.as_str()).await {
                Ok(lookup) => lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                        _ => None,
                    })
                    .collect(),
                Err(e) => match classify::<()>(e, "MX", domain)? {
                    Answer::NoDomain => {
                        return Err(RouteError::Permanent(format!(
                            "domain {domain} does not exist (NXDOMAIN)"
                        )))
                    }
                    _ => Vec::new(),
                },
            };
        if exchanges.is_empty() {
            // RFC 5321 5.1: no MX means the domain itself is the mail host.
            return match self.addresses(domain).await? {
                Answer::Found(addrs) => Ok(self.mx_hops(domain, addrs, MAX_HOPS)),
                Answer::NoRecords | Answer::NoDomain => Err(RouteError::Permanent(format!(
                    "domain {domain} has no MX and no address (A/AAAA) records"
                ))),
            };
        }
        let is_root = |name: &str| name == "." || name.is_empty();
        if exchanges.iter().all(|(_, name)| is_root(name)) {
            return Err(RouteError::Permanent(format!(
                "domain {domain} does not accept mail (null MX, RFC 7505)"
            )));
        }
        // A "." beside real hosts is a misconfiguration; the real hosts win.
        exchanges.retain(|(_, name)| !is_root(name));
        // Stable: equal preferences keep the DNS order.
        exchanges.sort_by_key(|(preference, _)| *preference);

        let mut hops = Vec::new();
        let mut temporary = None;
        for (_, exchange) in exchanges {
            if hops.len() >= MAX_HOPS {
                break;
            }
            let host = normalise(&exchange);
            match self.addresses(&host).await {
                Ok(Answer::Found(addrs)) => {
                    let room = MAX_HOPS - hops.len();
                    hops.extend(self.mx_hops(&host, addrs, room));
                }
                Ok(_) => {
                    tracing::debug!(domain, mx = %host, "MX host has no address");
                }
                Err(e) => temporary = Some(e),
            }
        }
        if !hops.is_empty() {
            return Ok(hops);
        }
        Err(temporary.unwrap_or_else(|| {
            RouteError::Permanent(format!("no MX host of {domain} has an address (A/AAAA)"))
        }))
    }

    fn mx_hops(&self, host: &str, addrs: Vec<IpAddr>, room: usize) -> Vec<Hop> {
        addrs
            .into_iter()
            .take(room)
            .map(|ip| Hop {
                host: host.to_string(),
                addr: SocketAddr::new(ip, self.mx_port),
                tls: self.mx_tls,
                auth: None,
            })
            .collect()
    }

    /// A and AAAA records of `name`, IPv4 first (IPv6 routes are the ones
    /// more often broken). Asked separately so that a failure of one kind
    /// is not mistaken for the absence of both.
    async fn addresses(&self, name: &str) -> Result<Answer<IpAddr>, RouteError> {
        let fqdn = format!("{}.", normalise(name));
        let resolver = self.resolver()?;
        let (v4, v6) = tokio::join!(
            resolver.ipv4_lookup(fqdn.as_str()),
            resolver.ipv6_lookup(fqdn.as_str())
        );
        let mut addrs = Vec::new();
        let mut outcomes = Vec::new();
        for (result, kind) in [(v4, "A"), (v6, "AAAA")] {
            match result {
                Ok(lookup) => {
                    addrs.extend(lookup.answers().iter().filter_map(|r| match &r.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    }));
                    outcomes.push(Ok(Answer::<()>::NoRecords));
                }
                Err(e) => outcomes.push(classify(e, kind, name)),
            }
        }
        if !addrs.is_empty() {
            return Ok(Answer::Found(addrs));
        }
        let mut no_domain = false;
        for outcome in outcomes {
            if let Answer::NoDomain = outcome? {
                no_domain = true;
            }
        }
        Ok(if no_domain {
            Answer::NoDomain
        } else {
            Answer::NoRecords
        })
    }
}

/// Sorts a failed lookup into "no such records", "no such domain" and
/// "try later".
fn classify<T>(e: NetError, kind: &str, name: &str) -> Result<Answer<T>, RouteError> {
    if e.is_nx_domain() {
        Ok(Answer::NoDomain)
    } else if e.is_no_records_found() {
        Ok(Answer::NoRecords)
    } else {
        Err(RouteError::Temporary(format!(
            "DNS lookup of {kind} records for {name} failed: {e}"
        )))
    }
}

#[cfg(test)]
mod tests;
