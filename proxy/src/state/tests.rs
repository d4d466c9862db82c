use super::*;

fn table(text: &str) -> RouteTable {
    dime_routes::parse("t.yaml", text).unwrap()
}

const ONE_ROUTE: &str = "version: 1\nhttp:\n  routes:\n    - { name: r, match: [{ hosts: [a.test] }], upstream: o }\n  upstreams:\n    o: { servers: [{ url: \"http://127.0.0.1:9\" }] }\n";
const EMPTY: &str = "version: 1\n";

fn active(t: RouteTable) -> Active {
    let prepared = prepare(t, "t.yaml", None, EmptyTable::Refused).unwrap();
    Active {
        table: prepared.table,
        pools: prepared.pools,
        tcp_pools: prepared.tcp_pools,
        source: "t.yaml".into(),
        applied_at: SystemTime::now(),
    }
}

#[test]
fn an_empty_table_replaces_routes_only_where_the_source_allows_it() {
    let serving = active(table(ONE_ROUTE));
    let cases = [
        (EmptyTable::Refused, Some(&serving), false),
        (EmptyTable::Allowed, Some(&serving), true),
        // Nothing to lose: an edge may start empty.
        (EmptyTable::Refused, None, true),
    ];
    for (empty, old, accepted) in cases {
        let got = prepare(table(EMPTY), "t.yaml", old, empty);
        assert_eq!(got.is_ok(), accepted, "{empty:?} over {:?}", old.map(|o| o.table.version()));
        if let Err(e) = got {
            assert!(e.to_string().contains("refusing to drop every route"), "{e}");
        }
    }
}

#[test]
fn unchanged_upstreams_keep_their_pools_and_pool_errors_are_located() {
    let serving = active(table(ONE_ROUTE));
    let again =
        prepare(table(&ONE_ROUTE.replace("a.test", "b.test")), "t.yaml", Some(&serving), EmptyTable::Refused).unwrap();
    assert!(Arc::ptr_eq(&again.pools["o"], &serving.pools["o"]), "same spec, same pool (and health state)");
    let bad_ca = ONE_ROUTE.replace(
        "{ servers: [{ url: \"http://127.0.0.1:9\" }] }",
        "{ servers: [{ url: \"https://127.0.0.1:9\" }], tls: { ca_file: /nonexistent/ca.pem } }",
    );
    let e = prepare(table(&bad_ca), "t.yaml", Some(&serving), EmptyTable::Refused).unwrap_err().to_string();
    assert!(e.starts_with("t.yaml: http.upstreams.o: tls.ca_file /nonexistent/ca.pem"), "{e}");
}

#[test]
fn warnings_name_what_this_edge_cannot_serve() {
    let t = table(concat!(
        "version: 1\nhttp:\n  routes:\n",
        "    - { name: locked, match: [{ hosts: [a.test] }], upstream: o, signed_urls: { keys: [k9] } }\n",
        "  upstreams:\n    o: { servers: [{ url: \"https://127.0.0.1:9\" }], tls: { insecure_skip_verify: true } }\n",
        "tcp:\n  routes:\n    - { name: rtmp, entrypoints: [rtmp], upstream: t }\n",
        "  upstreams:\n    t: { servers: [{ address: \"127.0.0.1:1935\" }] }\n",
    ));
    let none = Holdings::default();
    let said = warnings(&t, &none).join("\n");
    for want in [
        "upstream `o`: TLS to this upstream is NOT verified",
        "entrypoint `rtmp`",
        "keys this edge does not hold (--signing-keys; the route accepts [\"k9\"])",
    ] {
        assert!(said.contains(want), "missing {want:?} in\n{said}");
    }
    let holds = Holdings { tcp_entrypoints: vec!["rtmp".into()], signing_key_ids: vec!["k9".into()], certs: None };
    assert_eq!(warnings(&t, &holds).len(), 1, "only the unverified upstream is left");
}

#[test]
fn a_move_to_another_control_url_is_a_failover_and_the_first_answer_is_not() {
    let mut sync = SyncStatus::default();
    let at = std::time::SystemTime::now();
    sync.answered("http://a:8080", at);
    assert_eq!((sync.control.as_str(), sync.failovers), ("http://a:8080", 0), "the first answer moves from nothing");
    sync.last_error = Some("a: connection refused".into());
    sync.answered("http://a:8080", at);
    assert_eq!((sync.failovers, sync.last_error.clone()), (0, None), "the same URL again");
    sync.answered("http://b:8080", at);
    sync.answered("http://a:8080", at);
    assert_eq!((sync.control.as_str(), sync.failovers), ("http://a:8080", 2));
}
