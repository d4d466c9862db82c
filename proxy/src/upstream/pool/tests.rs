use super::*;
use dime_routes::Server;

fn pool(weights: &[u32]) -> Pool {
    let servers =
        weights.iter().enumerate().map(|(i, &weight)| Server { host: format!("s{i}"), port: 80, weight }).collect();
    let spec = Upstream {
        name: "u".into(),
        servers,
        tls: None,
        health_check: None,
        pass_host_header: true,
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        dns_refresh: Duration::from_secs(30),
    };
    let p = Pool::new(spec);
    for i in 0..weights.len() {
        p.set_addresses(i, &[format!("127.0.0.{}:80", i + 1).parse().unwrap()]);
    }
    p
}

fn counts(p: &Pool, n: usize) -> Vec<usize> {
    let mut c = vec![0; p.spec.servers.len()];
    for _ in 0..n {
        c[p.select(&[]).unwrap().server] += 1;
    }
    c
}

#[test]
fn smooth_schedule_spreads_the_heavy_server() {
    assert_eq!(smooth_weighted_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
    assert!(smooth_weighted_schedule(&[0, 0]).is_empty());
}

#[test]
fn selection_follows_weights() {
    assert_eq!(counts(&pool(&[3, 1]), 400), vec![300, 100]);
    assert_eq!(counts(&pool(&[1, 0, 1]), 10), vec![5, 0, 5]);
}

#[test]
fn unhealthy_and_ejected_addresses_leave_rotation() {
    let p = pool(&[1, 1]);
    let first = p.endpoints().list[0].clone();
    first.set_healthy(false);
    assert_eq!(counts(&p, 10), vec![0, 10]);
    first.set_healthy(true);
    let second = p.endpoints().list[1].clone();
    assert!(!second.record_failure(), "one failure is not enough to eject");
    assert!(second.record_failure());
    assert_eq!(counts(&p, 10), vec![10, 0]);
}

#[test]
fn ejected_everywhere_still_serves_but_failing_health_checks_do_not() {
    let p = pool(&[1, 1]);
    for ep in p.endpoints().list.iter() {
        ep.record_failure();
        ep.record_failure();
    }
    assert!(p.select(&[]).is_some(), "passive ejection of every address falls back");
    for ep in p.endpoints().list.iter() {
        ep.set_healthy(false);
    }
    assert!(p.select(&[]).is_none());
}

#[test]
fn retries_skip_addresses_already_tried() {
    let p = pool(&[1, 1]);
    let a = p.select(&[]).unwrap();
    let b = p.select(&[a.addr]).unwrap();
    assert_ne!(a.addr, b.addr);
    assert!(p.select(&[a.addr, b.addr]).is_none());
}

#[test]
fn re_resolution_keeps_state_of_addresses_that_stay() {
    let p = pool(&[1]);
    let old = p.endpoints().list[0].clone();
    old.set_healthy(false);
    let addrs: Vec<SocketAddr> = vec![old.addr, "127.0.0.9:80".parse().unwrap()];
    assert!(p.set_addresses(0, &addrs));
    assert!(!p.set_addresses(0, &addrs), "same answer, no change");
    let list = &p.endpoints().list;
    assert_eq!(list.len(), 2);
    assert!(!list.iter().find(|e| e.addr == old.addr).unwrap().is_healthy());
}
