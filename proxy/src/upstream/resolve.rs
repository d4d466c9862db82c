//! Resolving upstream server names. The system resolver (getaddrinfo, so /etc/hosts and the host's DNS settings
//! apply) by default, with operator overrides in the style of curl's `--resolve`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Static answers that take precedence over DNS: `host:port` → addresses. Used to pin an origin, and by tests to
/// point the real (public) names of the old setup at local servers, since public DNS cannot run here.
#[derive(Debug, Clone, Default)]
pub struct Overrides(HashMap<String, Vec<SocketAddr>>);

impl Overrides {
    /// Parses `HOST:PORT=ADDR:PORT[,ADDR:PORT...]`.
    pub fn parse_entry(&mut self, text: &str) -> Result<(), dime_routes::Invalid> {
        let (from, to) =
            text.split_once('=').ok_or_else(|| format!("invalid --resolve `{text}`: expected HOST:PORT=ADDR:PORT"))?;
        let (host, port) = from
            .rsplit_once(':')
            .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            .ok_or_else(|| format!("invalid --resolve `{text}`: `{from}` is not HOST:PORT"))?;
        let addrs = to
            .split(',')
            .map(|a| {
                a.trim()
                    .parse::<SocketAddr>()
                    .map_err(|_| format!("invalid --resolve `{text}`: `{a}` is not ADDR:PORT"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.0.insert(format!("{}:{port}", host.to_ascii_lowercase()), addrs);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a name did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("resolving {0} timed out")]
    TimedOut(String),
    #[error("resolving {authority}: {error}")]
    Lookup { authority: String, error: std::io::Error },
    #[error("resolving {0}: no addresses")]
    NoAddresses(String),
}

/// Something that turns `host:port` into addresses.
#[async_trait::async_trait]
pub trait Resolve: Send + Sync + std::fmt::Debug {
    async fn resolve(&self, authority: &str) -> Result<Vec<SocketAddr>, ResolveError>;
}

/// getaddrinfo through tokio, bounded by a timeout, after the overrides.
#[derive(Debug, Default)]
pub struct SystemResolver {
    pub overrides: Overrides,
}

#[async_trait::async_trait]
impl Resolve for SystemResolver {
    async fn resolve(&self, authority: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        if let Some(addrs) = self.overrides.0.get(authority) {
            return Ok(addrs.clone());
        }
        let lookup = tokio::net::lookup_host(authority.to_owned());
        match tokio::time::timeout(Duration::from_secs(5), lookup).await {
            Err(_) => Err(ResolveError::TimedOut(authority.to_owned())),
            Ok(Err(error)) => Err(ResolveError::Lookup { authority: authority.to_owned(), error }),
            Ok(Ok(addrs)) => {
                let mut list: Vec<SocketAddr> = addrs.collect();
                list.sort();
                list.dedup();
                if list.is_empty() {
                    Err(ResolveError::NoAddresses(authority.to_owned()))
                } else {
                    Ok(list)
                }
            }
        }
    }
}

pub type SharedResolver = Arc<dyn Resolve>;

#[cfg(test)]
mod tests;
