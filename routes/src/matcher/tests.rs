use super::*;
use proptest::prelude::*;

fn rule(route: usize, host: Option<&str>, path: Option<PathMatch>, priority: i64) -> Rule {
    Rule { route, host: host.map(|h| HostPattern::parse(h).unwrap()), path, priority }
}

#[test]
fn host_normalization_ignores_case_port_and_trailing_dot() {
    assert_eq!(normalize_host("Video.Example.COM:8080"), "video.example.com");
    assert_eq!(normalize_host("video.example.com."), "video.example.com");
    assert_eq!(normalize_host("[::1]:80"), "[::1]");
    assert_eq!(normalize_host("a.b"), "a.b");
}

#[test]
fn wildcard_matches_subdomains_only() {
    let w = HostPattern::parse("*.Example.com").unwrap();
    assert!(w.matches("a.example.com"));
    assert!(w.matches("a.b.example.com"));
    assert!(!w.matches("example.com"));
    assert!(!w.matches("badexample.com"));
}

#[test]
fn host_pattern_rejects_ports_and_schemes() {
    for bad in ["a.com:80", "http://a.com", "", "*.", "a..b", "a b"] {
        assert!(HostPattern::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn exact_host_beats_nothing_but_priority_decides() {
    // Rules are given in precedence order; the index must keep it across exact and wildcard hosts.
    let rules = vec![
        rule(0, Some("*.example.com"), Some(PathMatch::Prefix("/hls/".into())), 30),
        rule(1, Some("video.example.com"), None, 20),
        rule(2, None, None, 1),
    ];
    let index = Index::new(rules);
    assert_eq!(index.find("video.example.com", "/hls/a.ts"), Some(0));
    assert_eq!(index.find("video.example.com", "/other"), Some(1));
    assert_eq!(index.find("x.example.com", "/other"), Some(2));
    assert_eq!(index.find("elsewhere.org", "/"), Some(2));
}

#[test]
fn no_match_is_none() {
    let index = Index::new(vec![rule(0, Some("a.com"), Some(PathMatch::Exact("/x".into())), 1)]);
    assert_eq!(index.find("a.com", "/xy"), None);
    assert_eq!(index.find("b.com", "/x"), None);
    assert_eq!(index.find("a.com", "/x"), Some(0));
}

fn arb_host() -> impl Strategy<Value = String> {
    prop_oneof![Just("a.com"), Just("b.a.com"), Just("c.b.a.com"), Just("a.org"), Just("x.a.org")]
        .prop_map(String::from)
}

fn arb_pattern() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        arb_host().prop_map(Some),
        prop_oneof![Just("*.a.com"), Just("*.b.a.com"), Just("*.a.org")].prop_map(|s| Some(s.to_string())),
    ]
}

fn arb_path_match() -> impl Strategy<Value = Option<PathMatch>> {
    let p = prop_oneof![Just("/"), Just("/a"), Just("/a/b"), Just("/ab"), Just("/b")].prop_map(String::from);
    prop_oneof![
        Just(None),
        p.clone().prop_map(|s| Some(PathMatch::Prefix(s))),
        p.prop_map(|s| Some(PathMatch::Exact(s)))
    ]
}

proptest! {
    /// The index gives the same answer as scanning every rule in precedence order.
    #[test]
    fn index_agrees_with_linear_scan(
        specs in prop::collection::vec((arb_pattern(), arb_path_match()), 0..12),
        // Also hosts no rule names exactly: only wildcards (several levels deep) and host-less rules can match.
        host in prop_oneof![
            arb_host(),
            Just("q.c.b.a.com".to_owned()),
            Just("b.a.org".to_owned()),
            Just("com".to_owned()),
            Just(".a.com".to_owned()),
        ],
        path in prop_oneof![Just("/"), Just("/a"), Just("/a/b/c"), Just("/ab"), Just("/b"), Just("/c")],
    ) {
        let rules: Vec<Rule> = specs.iter().enumerate()
            .map(|(i, (h, p))| rule(i, h.as_deref(), p.clone(), 0))
            .collect();
        let expected = rules.iter().find(|r| r.matches(&host, path)).map(|r| r.route);
        prop_assert_eq!(Index::new(rules).find(&host, path), expected);
    }

    /// Case, a port and a trailing dot never change which route a request gets.
    #[test]
    fn host_spelling_does_not_change_the_match(
        host in arb_host(), upper in any::<bool>(), port in prop::option::of(1u16..), dot in any::<bool>(),
        specs in prop::collection::vec((arb_pattern(), arb_path_match()), 0..8),
    ) {
        let rules: Vec<Rule> = specs.iter().enumerate().map(|(i, (h, p))| rule(i, h.as_deref(), p.clone(), 0)).collect();
        let index = Index::new(rules);
        let mut spelled = if upper { host.to_ascii_uppercase() } else { host.clone() };
        if dot { spelled.push('.'); }
        if let Some(port) = port { spelled.push_str(&format!(":{port}")); }
        prop_assert_eq!(index.find(&normalize_host(&spelled), "/a"), index.find(&host, "/a"));
    }

    /// Host patterns accept any valid DNS name and never panic on arbitrary input.
    #[test]
    fn host_pattern_parse_never_panics(text in ".{0,40}") {
        let _ = HostPattern::parse(&text);
        let _ = normalize_host(&text);
    }
}
