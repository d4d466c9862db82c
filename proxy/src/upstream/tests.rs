use super::*;
use std::net::SocketAddr;
use std::sync::Mutex as StdMutex;

/// A resolver whose answers the test changes, standing in for DNS records being edited.
#[derive(Debug)]
struct Scripted(StdMutex<Result<Vec<SocketAddr>, String>>);

#[async_trait::async_trait]
impl Resolve for Scripted {
    async fn resolve(&self, authority: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        let answer = self.0.lock().unwrap().clone();
        answer.map_err(|why| ResolveError::Lookup { authority: authority.into(), error: std::io::Error::other(why) })
    }
}

fn pool() -> Pool {
    let table = dime_routes::parse(
        "t.yaml",
        "version: 1\nhttp:\n  upstreams:\n    u: { servers: [{ url: \"http://origin.example:80\" }], dns_refresh: 1s }\n",
    )
    .unwrap();
    Pool::new(table.upstream("u").unwrap().clone())
}

fn addrs(p: &Pool) -> Vec<SocketAddr> {
    p.endpoints().list.iter().map(|e| e.addr).collect()
}

#[tokio::test]
async fn re_resolution_follows_dns_changes_and_keeps_addresses_when_dns_fails() {
    let metrics = Metrics::new().unwrap();
    let p = pool();
    let a: SocketAddr = "192.0.2.1:80".parse().unwrap();
    let b: SocketAddr = "192.0.2.2:80".parse().unwrap();
    let dns = Scripted(StdMutex::new(Ok(vec![a])));
    resolve_pool(&p, &dns, &metrics).await;
    assert_eq!(addrs(&p), vec![a]);

    *dns.0.lock().unwrap() = Ok(vec![b, a]);
    resolve_pool(&p, &dns, &metrics).await;
    assert_eq!(addrs(&p), vec![a, b]);

    *dns.0.lock().unwrap() = Err("SERVFAIL".into());
    resolve_pool(&p, &dns, &metrics).await;
    assert_eq!(addrs(&p), vec![a, b], "a failed lookup never empties a pool");
    assert_eq!(metrics.upstream.dns_failures("u").get(), 1);
}

#[tokio::test(start_paused = true)]
async fn upkeep_re_resolves_on_the_configured_interval() {
    let metrics = Arc::new(Metrics::new().unwrap());
    let p = Arc::new(pool());
    let a: SocketAddr = "192.0.2.1:80".parse().unwrap();
    let b: SocketAddr = "192.0.2.2:80".parse().unwrap();
    let dns = Arc::new(Scripted(StdMutex::new(Ok(vec![a]))));
    let resolver: SharedResolver = dns.clone();
    maintain(&p, &resolver, &metrics);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(addrs(&p), vec![a]);

    *dns.0.lock().unwrap() = Ok(vec![b]);
    maintain(&p, &resolver, &metrics);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(addrs(&p), vec![a], "not due before dns_refresh");

    tokio::time::sleep(Duration::from_secs(1)).await;
    maintain(&p, &resolver, &metrics);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(addrs(&p), vec![b], "due after dns_refresh");
}
