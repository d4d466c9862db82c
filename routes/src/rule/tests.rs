use super::*;

#[test]
fn parses_the_old_setups_rules() {
    let e = parse("Host(`video.edge.mycdndomain.us`)").unwrap();
    assert_eq!(e, Expr::Matcher(Matcher::Host("video.edge.mycdndomain.us".into())));
}

#[test]
fn and_binds_tighter_than_or() {
    let alts = alternatives(&parse("Host(`a`) && PathPrefix(`/x`) || Path(`/y`)").unwrap()).unwrap();
    assert_eq!(
        alts,
        vec![
            Conjunction { host: Some("a".into()), path: Some(Matcher::PathPrefix("/x".into())) },
            Conjunction { host: None, path: Some(Matcher::Path("/y".into())) },
        ]
    );
}

#[test]
fn parentheses_distribute() {
    let alts = alternatives(&parse("(Host(`a`) || Host(`b`)) && PathPrefix(`/x`)").unwrap()).unwrap();
    assert_eq!(alts.len(), 2);
    assert!(alts.iter().all(|c| c.path == Some(Matcher::PathPrefix("/x".into()))));
}

#[test]
fn errors_name_the_problem() {
    let cases = [
        ("HostRegexp(`.*`)", "unsupported matcher `HostRegexp`"),
        ("Host(`a`", "expected `)`"),
        ("!Host(`a`)", "negation"),
        ("Host(`a`) &&", "expected a matcher"),
        ("Host(`a`, `b`)", "exactly one argument"),
        ("Host(`a`) Host(`b`)", "unexpected text"),
        ("Host(`a", "unterminated"),
    ];
    for (rule, want) in cases {
        let err = parse(rule).unwrap_err();
        assert!(err.message.contains(want), "{rule}: {err}");
    }
}

#[test]
fn contradictions_are_errors() {
    assert!(alternatives(&parse("Host(`a`) && Host(`b`)").unwrap()).is_err());
    assert!(alternatives(&parse("Path(`/a`) && PathPrefix(`/b`)").unwrap()).is_err());
    assert!(alternatives(&parse("Host(`a`) && Host(`A`)").unwrap()).is_ok());
}

#[test]
fn expansion_is_bounded() {
    let big = ["(Host(`h`) || Host(`H`))"; 10].join(" && ");
    assert!(alternatives(&parse(&big).unwrap()).is_err());
}
