#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn control_urls_parse_strictly() {
    let u = ControlUrl::parse("http://control.example.com:8080/").unwrap();
    assert_eq!(
        (u.authority.as_str(), u.prefix.as_str(), u.text.as_str()),
        ("control.example.com:8080", "", "http://control.example.com:8080")
    );
    let u = ControlUrl::parse("http://10.0.0.1/dime").unwrap();
    assert_eq!((u.authority.as_str(), u.prefix.as_str()), ("10.0.0.1:80", "/dime"));
    assert_eq!(u.join(wire::ROUTES), "http://10.0.0.1:80/dime/v1/routes");
    assert_eq!(ControlUrl::parse("http://[::1]:9000").unwrap().authority, "[::1]:9000");
    assert_eq!(ControlUrl::parse("http://[::1]").unwrap().authority, "[::1]:80");
    for bad in ["control:8080", "ftp://x", "http://", "http://u:p@x:1", "http://x/?a=1"] {
        assert!(ControlUrl::parse(bad).is_err(), "{bad}");
    }
    let u = ControlUrl::parse("https://control.example.com").unwrap();
    assert_eq!((u.authority.as_str(), u.https), ("control.example.com:443", true));
    assert!(!ControlUrl::parse("http://x:1").unwrap().https);
}

/// A server that answers every request with `status` and a [`Problem`], over plain HTTP.
async fn refusing(status: StatusCode) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || async move {
        (status, serde_json::to_string(&Problem { error: Some("wrong purge token".into()), errors: vec![] }).unwrap())
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn control(url: &str) -> Control {
    Control::new(ControlUrl::parse(url).unwrap(), "t".into(), crate::http(crate::Trust::System).unwrap())
}

#[tokio::test]
async fn a_failed_call_says_what_failed() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let e = control(&format!("http://{closed}")).purges(&FeedQuery::default(), &Report::named("e")).await.unwrap_err();
    assert_eq!(e.reason, Reason::Connect, "{e}");

    let plain = refusing(StatusCode::UNAUTHORIZED).await;
    let e = control(&format!("http://{plain}")).purges(&FeedQuery::default(), &Report::named("e")).await.unwrap_err();
    assert_eq!((e.reason, e.status), (Reason::Unauthorized, Some(StatusCode::UNAUTHORIZED)), "{e}");
    assert!(e.message.contains("wrong purge token"), "control's problem is quoted: {e}");

    // An https URL to a server that speaks plain HTTP: the TLS handshake fails, and says so.
    let e = control(&format!("https://{plain}")).purges(&FeedQuery::default(), &Report::named("e")).await.unwrap_err();
    assert_eq!(e.reason, Reason::Tls, "{e}");

    let busy = refusing(StatusCode::SERVICE_UNAVAILABLE).await;
    let purge = Purge { tags: vec!["t".into()], ..Default::default() };
    let e = control(&format!("http://{busy}")).purge(&purge, Duration::ZERO).await.unwrap_err();
    assert_eq!((e.reason, e.status), (Reason::Status, Some(StatusCode::SERVICE_UNAVAILABLE)), "{e}");
}

#[tokio::test]
async fn a_refusal_is_read_only_as_far_as_its_bound() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let huge = "x".repeat(8 << 20);
    let app = axum::Router::new().fallback(move || {
        let huge = huge.clone();
        async move { (StatusCode::SERVICE_UNAVAILABLE, huge) }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let e = control(&format!("http://{addr}")).purges(&FeedQuery::default(), &Report::named("e")).await.unwrap_err();
    assert_eq!(e.status, Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(e.message.len() < 300 && e.message.contains("over"), "{}", &e.message[..e.message.len().min(300)]);
}
