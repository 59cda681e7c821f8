//! Spin's `allowed_outbound_hosts` policy: which destinations a component may reach, checked
//! for outbound HTTP and for PostgreSQL connections alike (Spin's parser and matcher:
//! schemes, `*` hosts and ports, `*.domain`, CIDR, port ranges, default ports, `{{ var }}`
//! templates, service chaining's `*.spin.internal`).

use std::net::IpAddr;

use anyhow::{Context, Result, anyhow, bail};

use crate::interfaces::variables::{AppVariables, Template};

/// The domain of service-chaining host names: `<component>.spin.internal`.
pub const SERVICE_CHAINING_SUFFIX: &str = ".spin.internal";

/// One parsed `allowed_outbound_hosts` entry (Spin's `AllowedHostConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    original: String,
    /// `None` means any scheme (`*://`).
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`, stored as `.example.com`.
    AnySubdomain(String),
    /// `self` / `self.alt`: requests to the app itself (relative URLs).
    ToSelf,
    Literal(url::Host),
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// Inclusive start, exclusive end (Spin's `a..b` is a Rust range).
    Ranges(Vec<(u16, u16)>),
}

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl AllowedHost {
    /// Parses an entry exactly as Spin's `AllowedHostConfig::parse` does.
    pub fn parse(entry: &str) -> Result<AllowedHost> {
        let original = entry.to_string();
        let url = entry.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            match url {
                "*" | ":" | "" | "?" => bail!(
                    "{url:?} is not an allowed outbound host format.\nHosts must be in the form \
                     <scheme>://<host>[:<port>], with '*' wildcards allowed for each.\nIf you \
                     intended to allow all outbound networking, you can use '*://*:*' - this will \
                     obviate all network sandboxing."
                ),
                _ => bail!("{url:?} does not contain a scheme (e.g., 'http://' or '*://')"),
            }
        };
        let (host, port) = match rest.rsplit_once(':') {
            None => (rest, ""),
            Some((h, "")) => (h, ""),
            Some((h, tail)) => {
                if HostPattern::parse(rest).is_ok() {
                    (rest, "")
                } else {
                    let port = match tail.split_once('/') {
                        Some((port, path)) => {
                            if !path.is_empty() {
                                bail!("{url:?} has a path but is not allowed to");
                            }
                            port
                        }
                        None => tail,
                    };
                    (h, port)
                }
            }
        };
        let port = PortPattern::parse(port, scheme)
            .with_context(|| format!("Invalid allowed host port {port:?}"))?;
        let scheme = if scheme == "*" {
            None
        } else if scheme.starts_with('{') {
            bail!("Invalid allowed host scheme {scheme:?}: scheme lists are not supported")
        } else if scheme.chars().any(|c| !c.is_alphabetic()) {
            bail!("Invalid allowed host scheme {scheme:?}: only alphabetic characters are allowed")
        } else {
            Some(scheme.to_string())
        };
        let host =
            HostPattern::parse(host).with_context(|| format!("Invalid allowed host {host:?}"))?;
        Ok(AllowedHost {
            original,
            scheme,
            host,
            port,
        })
    }

    fn allows(&self, url: &OutboundUrl) -> bool {
        self.scheme.as_deref().is_none_or(|s| s == url.scheme)
            && self.host.allows(&url.host)
            && self.port.allows(url.port, &url.scheme)
    }

    fn allows_relative(&self, schemes: &[&str]) -> bool {
        schemes
            .iter()
            .any(|s| self.scheme.as_deref().is_none_or(|x| x == *s))
            && matches!(self.host, HostPattern::Any | HostPattern::ToSelf)
    }
}

impl HostPattern {
    fn parse(host: &str) -> Result<HostPattern> {
        let host = host.trim();
        if host == "*" {
            return Ok(HostPattern::Any);
        }
        if host == "self" || host == "self.alt" {
            return Ok(HostPattern::ToSelf);
        }
        if host.starts_with('{') {
            bail!("host lists are not yet supported");
        }
        if let Some(cidr) = parse_cidr(host) {
            return Ok(cidr);
        }
        let host = host.strip_suffix('/').unwrap_or(host);
        if host.contains('/') {
            bail!("must not include a path");
        }
        if let Some(domain) = host.strip_prefix("*.") {
            if domain.contains('*') {
                bail!("wildcards are allowed only as prefixes");
            }
            let url::Host::Domain(domain) = url::Host::parse(domain)
                .with_context(|| format!("invalid wildcard host \"*.{domain}\""))?
            else {
                bail!("wildcard suffix must be a domain");
            };
            return Ok(HostPattern::AnySubdomain(format!(".{domain}")));
        }
        if host.contains('*') {
            bail!("wildcards are allowed only as subdomains");
        }
        Ok(HostPattern::Literal(url::Host::parse(host)?))
    }

    fn allows(&self, host: &str) -> bool {
        let Ok(host) = url::Host::parse(host) else {
            return false;
        };
        match (self, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::AnySubdomain(suffix), url::Host::Domain(d)) => d.ends_with(suffix),
            (HostPattern::Literal(l), h) => h == *l,
            (HostPattern::Cidr(net, bits), url::Host::Ipv4(ip)) => {
                in_cidr(*net, *bits, IpAddr::V4(ip))
            }
            (HostPattern::Cidr(net, bits), url::Host::Ipv6(ip)) => {
                in_cidr(*net, *bits, IpAddr::V6(ip))
            }
            _ => false,
        }
    }
}

/// `ip/prefix` (no brackets), as `ip_network::IpNetwork::from_str_truncate` accepts it.
fn parse_cidr(s: &str) -> Option<HostPattern> {
    let (ip, bits) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some(HostPattern::Cidr(ip, bits))
}

fn in_cidr(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

impl PortPattern {
    fn parse(port: &str, scheme: &str) -> Result<PortPattern> {
        if port.is_empty() {
            let p = well_known_port(scheme).ok_or_else(|| {
                anyhow!(
                    "no port was provided and the scheme {scheme:?} does not have a known default port number"
                )
            })?;
            return Ok(PortPattern::Ranges(vec![(p, p.saturating_add(1))]));
        }
        if port == "*" {
            return Ok(PortPattern::Any);
        }
        if port.starts_with('{') {
            bail!("port lists are not yet supported");
        }
        if let Some((start, end)) = port.split_once("..") {
            let start: u16 = start
                .parse()
                .with_context(|| format!("port range {port:?} contains non-number"))?;
            let end: u16 = end
                .parse()
                .with_context(|| format!("port range {port:?} contains non-number"))?;
            return Ok(PortPattern::Ranges(vec![(start, end)]));
        }
        let p: u16 = port
            .parse()
            .with_context(|| format!("port {port:?} is not a number"))?;
        Ok(PortPattern::Ranges(vec![(p, p.saturating_add(1))]))
    }

    fn allows(&self, port: Option<u16>, scheme: &str) -> bool {
        match self {
            PortPattern::Any => true,
            PortPattern::Ranges(r) => {
                let Some(port) = port.or_else(|| well_known_port(scheme)) else {
                    return false;
                };
                r.iter()
                    .any(|(s, e)| (*s..*e).contains(&port) || (s == e && *s == port))
            }
        }
    }
}

/// A request target as Spin's `OutboundUrl` sees it.
#[derive(Debug, Clone)]
pub struct OutboundUrl {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl OutboundUrl {
    pub fn parse(url: &str, default_scheme: &str) -> Result<OutboundUrl> {
        let parsed = match url::Url::parse(url) {
            Ok(u) if u.has_host() => u,
            _ => url::Url::parse(&format!("{default_scheme}://{url}"))
                .with_context(|| format!("could not parse {url:?} as a URL"))?,
        };
        Ok(OutboundUrl {
            scheme: parsed.scheme().to_string(),
            host: parsed
                .host_str()
                .with_context(|| format!("{url:?} does not have a host component"))?
                .to_string(),
            port: parsed.port(),
        })
    }

    /// `scheme://host[:port]`: the entry to suggest when a request is denied.
    pub fn pattern(&self) -> String {
        match self.port {
            Some(p) => format!("{}://{}:{p}", self.scheme, self.host),
            None => format!("{}://{}", self.scheme, self.host),
        }
    }
}

/// A component's resolved `allowed_outbound_hosts`.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    /// `Err` when a `{{ variable }}` template could not be resolved: like Spin, every request
    /// then fails with that error rather than the app failing to start.
    hosts: Result<Vec<AllowedHost>, String>,
}

impl AllowedHosts {
    /// Parses entries, resolving templates against the app's variables and expanding
    /// `*.spin.internal` to every component, as Spin's `AllowedHostsConfig::parse` does.
    pub fn parse(
        entries: &[String],
        vars: &AppVariables,
        component_ids: &[String],
    ) -> Result<AllowedHosts> {
        if entries.len() == 1 && entries[0] == "insecure:allow-all" {
            bail!(
                "'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic'"
            );
        }
        let mut hosts = Vec::new();
        for entry in entries {
            let template =
                Template::parse(entry).map_err(|e| anyhow!("invalid template {entry:?}: {e}"))?;
            let resolved = if template.is_literal() {
                entry.clone()
            } else {
                match vars.render(&template) {
                    Ok(r) => r,
                    Err(e) => {
                        return Ok(AllowedHosts {
                            hosts: Err(e.to_string()),
                        });
                    }
                }
            };
            // An empty variable can make an entry empty: Spin skips those ("optional endpoint").
            if !template.is_literal()
                && (resolved.is_empty() || resolved == "http://" || resolved == "https://")
            {
                continue;
            }
            let host = AllowedHost::parse(&resolved)
                .with_context(|| format!("invalid allowed_outbound_hosts entry {entry:?}"))?;
            match &host.host {
                HostPattern::AnySubdomain(d) if d == SERVICE_CHAINING_SUFFIX => {
                    for id in component_ids {
                        let mut h = host.clone();
                        h.host = HostPattern::Literal(url::Host::Domain(format!(
                            "{id}{SERVICE_CHAINING_SUFFIX}"
                        )));
                        hosts.push(h);
                    }
                }
                _ => hosts.push(host),
            }
        }
        Ok(AllowedHosts { hosts: Ok(hosts) })
    }

    /// Whether an absolute URL may be requested. Errors mean "denied, and here is why".
    pub fn check_url(&self, url: &str, default_scheme: &str) -> Result<bool> {
        let hosts = self.hosts.as_ref().map_err(|e| anyhow!("{e}"))?;
        let url = OutboundUrl::parse(url, default_scheme)?;
        Ok(hosts.iter().any(|h| h.allows(&url)))
    }

    /// Whether relative ("self") requests are allowed for any of `schemes`.
    pub fn check_relative(&self, schemes: &[&str]) -> Result<bool> {
        let hosts = self.hosts.as_ref().map_err(|e| anyhow!("{e}"))?;
        Ok(hosts.iter().any(|h| h.allows_relative(schemes)))
    }
}

/// `<component>.spin.internal[:port]` -> component id.
pub fn service_chaining_target(host: &str) -> Option<&str> {
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let (first, rest) = host.split_once('.')?;
    (rest == "spin.internal").then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::interfaces::variables::with_defaults as vars;

    fn allowed(entries: &[&str]) -> AllowedHosts {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        AllowedHosts::parse(&entries, &vars(&[]), &["admin".into(), "importer".into()]).unwrap()
    }

    fn ok(a: &AllowedHosts, url: &str) -> bool {
        a.check_url(url, "https").unwrap()
    }

    #[test]
    fn exact_host_and_default_ports() {
        let a = allowed(&["http://example.com", "https://api.example.com:8443"]);
        assert!(ok(&a, "http://example.com/x"));
        assert!(ok(&a, "http://example.com:80/x"));
        assert!(!ok(&a, "http://example.com:8080/x"));
        assert!(!ok(&a, "https://example.com/x"));
        assert!(ok(&a, "https://api.example.com:8443/v1"));
        assert!(!ok(&a, "https://api.example.com/v1"));
        assert!(!ok(&a, "http://other.com/"));
    }

    #[test]
    fn wildcards() {
        let a = allowed(&["*://*.example.com:*", "http://localhost:*", "https://*"]);
        assert!(ok(&a, "http://a.example.com:1234/"));
        assert!(ok(&a, "https://a.b.example.com/"));
        assert!(!ok(&a, "http://example.com/"));
        assert!(ok(&a, "http://localhost:55432/"));
        assert!(ok(&a, "https://anything.org/"));
        assert!(!ok(&a, "http://anything.org/"));
    }

    #[test]
    fn names_are_compared_as_text() {
        let a = allowed(&["http://127.0.0.1:8080"]);
        assert!(ok(&a, "http://127.0.0.1:8080/"));
        assert!(!ok(&a, "http://localhost:8080/"));
    }

    #[test]
    fn templates_resolve_against_variables() {
        let v = vars(&[
            ("db_host", "127.0.0.1"),
            ("db_port", "55432"),
            ("empty", ""),
        ]);
        let entries = vec![
            "postgres://{{ db_host }}:{{ db_port }}".to_string(),
            "{{ empty }}".to_string(),
        ];
        let a = AllowedHosts::parse(&entries, &v, &[]).unwrap();
        assert!(
            a.check_url("postgres://127.0.0.1:55432", "postgres")
                .unwrap()
        );
        assert!(
            !a.check_url("postgres://127.0.0.1:5432", "postgres")
                .unwrap()
        );
        // An undefined variable fails each check (not start-up), as Spin does.
        let a = AllowedHosts::parse(&["http://{{ nope }}".to_string()], &v, &[]).unwrap();
        let e = a.check_url("http://x", "https").unwrap_err().to_string();
        assert!(e.contains("invalid variable name: nope"), "{e}");
    }

    #[test]
    fn service_chaining() {
        let a = allowed(&["http://admin.spin.internal"]);
        assert!(ok(&a, "http://admin.spin.internal/api/v1/images/7"));
        assert!(!ok(&a, "http://importer.spin.internal/"));
        let a = allowed(&["http://*.spin.internal"]);
        assert!(ok(&a, "http://admin.spin.internal/x"));
        assert!(ok(&a, "http://importer.spin.internal/x"));
        assert!(!ok(&a, "http://unknown.spin.internal/x"));
        assert_eq!(
            service_chaining_target("admin.spin.internal"),
            Some("admin")
        );
        assert_eq!(
            service_chaining_target("admin.spin.internal:80"),
            Some("admin")
        );
        assert_eq!(service_chaining_target("a.b.spin.internal"), None);
        assert_eq!(service_chaining_target("example.com"), None);
    }

    #[test]
    fn cidr_and_ranges() {
        let a = allowed(&["*://127.0.0.1/24:63551", "http://10.0.0.1:8000..9000"]);
        assert!(ok(&a, "tcp://127.0.0.9:63551"));
        assert!(!ok(&a, "tcp://127.0.1.9:63551"));
        assert!(ok(&a, "http://10.0.0.1:8500/"));
        assert!(!ok(&a, "http://10.0.0.1:9000/"));
    }

    #[test]
    fn relative_requests_need_self() {
        assert!(
            allowed(&["http://self"])
                .check_relative(&["http", "https"])
                .unwrap()
        );
        assert!(allowed(&["*://*:*"]).check_relative(&["http"]).unwrap());
        assert!(
            !allowed(&["http://example.com"])
                .check_relative(&["http"])
                .unwrap()
        );
    }

    #[test]
    fn invalid_entries_are_rejected() {
        for bad in [
            "example.com",
            "*",
            "http://example.com:notaport",
            "http://*.example.com/p",
            "http://exa*mple.com",
            "http://example.com:8080/p",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad} should be rejected");
        }
        assert!(AllowedHosts::parse(&["insecure:allow-all".into()], &vars(&[]), &[]).is_err());
    }

    #[test]
    fn denied_pattern_names_the_entry() {
        let u = OutboundUrl::parse("http://localhost:1234/path", "https").unwrap();
        assert_eq!(u.pattern(), "http://localhost:1234");
        let u = OutboundUrl::parse("https://example.com/", "https").unwrap();
        assert_eq!(u.pattern(), "https://example.com");
    }
}
