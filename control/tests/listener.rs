//! Control's listener outlives accept errors. Its own test binary, because it lowers this process's limit of
//! open files until `accept` fails with EMFILE (as a busy control replica with a low `ulimit -n` would).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dime_control::serve::{serve, ClientLimits};
use dime_control::state::Shared;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

fn open_files() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

async fn healthz(addr: SocketAddr) -> Option<u16> {
    let resp = reqwest::Client::new().get(format!("http://{addr}/healthz")).send().await.ok()?;
    Some(resp.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_that_fails_for_want_of_descriptors_does_not_stop_the_listener() {
    let shared = Arc::new(Shared::new(vec!["edge-token-0123456789".into()], vec![]).unwrap());
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = tokio::spawn(serve(addr, shared.clone(), None, ClientLimits::default()));
    let mut up = None;
    for _ in 0..100 {
        up = healthz(addr).await;
        if up.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(up, Some(200), "the API never answered on {addr}");

    // Room for a few more descriptors only; then connect until this process (client and server alike) has none
    // left: the last connections wait in the listen backlog, and accepting them fails with EMFILE.
    let before = getrlimit(Resource::Nofile);
    let room = open_files() + 8;
    setrlimit(Resource::Nofile, Rlimit { current: Some(room), maximum: before.maximum }).unwrap();
    let mut clients = Vec::new();
    while clients.len() < 64 {
        match std::net::TcpStream::connect(addr) {
            Ok(c) => clients.push(c),
            Err(_) => break,
        }
    }
    let mut failed = 0;
    for _ in 0..100 {
        failed = shared.metrics.api.accept_errors.get();
        if failed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(clients);
    setrlimit(Resource::Nofile, before).unwrap();
    assert!(failed > 0, "accept never failed: the test did not run out of descriptors");

    assert!(!server.is_finished(), "the listener stopped on an accept error");
    let mut answered = None;
    for _ in 0..100 {
        answered = healthz(addr).await;
        if answered.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answered, Some(200), "the API answers again once descriptors are free");
}
