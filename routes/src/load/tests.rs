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
