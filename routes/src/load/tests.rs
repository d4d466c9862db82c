use super::*;

#[test]
fn splits_on_document_markers_and_tracks_lines() {
    let docs = split_documents("a: 1\n---\nb: 2\n--- \nc: 3\n");
    let starts: Vec<usize> = docs.iter().map(|d| d.0).collect();
    assert_eq!(starts, vec![1, 3, 5]);
    assert_eq!(docs[1].1, "b: 2\n");
}

#[test]
fn parse_errors_carry_file_relative_lines() {
    let mut errors = Collector::default();
    load("f.yaml", "version: 1\n---\nversion: 1\nhttp:\n  bogus: 1\n", &mut errors);
    assert_eq!(errors.errors.len(), 1, "{:?}", errors.errors);
    let e = &errors.errors[0];
    assert_eq!(e.location.line, Some(5), "{e}");
    assert!(e.message.contains("unknown field `bogus`"), "{e}");
    assert_eq!(e.location.field, "http");
}

fn messages(text: &str) -> Vec<String> {
    let mut errors = Collector::default();
    load("r.yaml", text, &mut errors);
    errors.errors.iter().map(|e| e.to_string()).collect()
}

/// A native document with several structural problems gets all of them in one run, each at its own line, and
/// none twice; an item taken out does not renumber the ones after it.
#[test]
fn every_structural_problem_of_a_native_document_is_reported() {
    let text = "\
version: 1
http:
  routes:
    - name: a
      upstream: o
      colour: blue
    - name: b
      upstream: [o]
    - upstream: o
    - name: d
      upstream: o
      cache: { default_ttl: 5m, size: big }
  upstreams:
    o:
      servers: [{ url: \"http://127.0.0.1:1\" }]
      weight: 3
tcp:
  routez: []
";
    let got = messages(text);
    let want = [
        "r.yaml:6: http.routes[0]: unknown field `colour`",
        "r.yaml:8: http.routes[1].upstream: invalid type: sequence, expected a string",
        "r.yaml:9: http.routes[2]: missing field `name`",
        "r.yaml:12: http.routes[3].cache: unknown field `size`",
        "r.yaml:16: http.upstreams.o: unknown field `weight`",
        "r.yaml:18: tcp: unknown field `routez`",
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (got, want) in got.iter().zip(want) {
        assert!(got.starts_with(want), "{got:?} does not start with {want:?}");
    }
}

/// Once only keys were taken out, the rest is still checked: a bad duration elsewhere is reported in the same run.
#[test]
fn a_document_that_reads_after_unknown_keys_are_dropped_is_checked_further() {
    let text = "version: 1\nhttp:\n  routes:\n    - { name: a, upstream: o, cache: { default_ttl: soon }, colour: blue }\n  upstreams:\n    o: { servers: [{ url: \"http://127.0.0.1:1\" }] }\n";
    let errors = crate::parse("r.yaml", text).unwrap_err().to_string();
    assert!(errors.contains("unknown field `colour`"), "{errors}");
    assert!(errors.contains("soon"), "the duration is checked too: {errors}");
}

/// Found by the fuzz set: libyaml puts the end of the stream on the line after the last, so an unterminated
/// string in a one-line file was reported on line 2, a line the file does not have.
#[test]
fn an_error_at_the_end_of_a_document_is_on_its_last_line() {
    let line_of = |text: &str| {
        let mut errors = Collector::default();
        load("r.yaml", text, &mut errors);
        errors.errors.iter().map(|e| e.location.line).collect::<Vec<_>>()
    };
    assert_eq!(line_of("url: \"http://x/"), [Some(1)]);
    assert_eq!(line_of("url: \"http://x/\n"), [Some(1)]);
    assert_eq!(line_of("version: 1\n---\nurl: 'x\n---\nversion: 1\n"), [Some(3)], "not the marker's line");
}
