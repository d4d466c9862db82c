use super::*;

#[test]
fn each_part_gets_its_own_verdict_and_notes() {
    let text = "http:\n  routers:\n    fine: { rule: \"Host(`a.test`)\", service: s }\n    wild:\n      rule: HostRegexp(`.+\\.b\\.test`)\n      service: s\n    hdr: { rule: \"Host(`c.test`) && Headers(`x`, `1`)\", service: s }\n  services:\n    s:\n      loadBalancer:\n        servers: [{ url: \"http://127.0.0.1:1\" }]\n        sticky: { cookie: {} }\n";
    let report = migration_report(&[Fragment { source: "t.yaml", text }]);
    let verdict = |name: &str| report.entries.iter().find(|e| e.name == name).map(|e| e.verdict.clone()).unwrap();
    assert_eq!(verdict("fine"), Verdict::AsIs);
    assert!(matches!(verdict("wild"), Verdict::WithChange(n) if n[0].contains("Host(`*.example.com`)")));
    assert!(matches!(verdict("hdr"), Verdict::NotSupported(n) if n[0].contains("`Headers` (Traefik header matchers)")));
    assert!(
        matches!(verdict("s"), Verdict::NotSupported(n) if n[0].starts_with("line 12: http.services.s.loadBalancer.sticky"))
    );
    assert_eq!(report.counts(), Counts { as_is: 1, with_change: 1, not_supported: 2, to_fix: 0 });
}

#[test]
fn a_kubectl_dump_gives_one_fragment_per_data_key_named_as_control_names_it() {
    let dump = r#"
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata: { name: video-config, namespace: media, labels: { traefik-config-fragment: "true" } }
    data:
      video.yaml: |
        http:
          routers:
            video: { rule: "Host(`v.test`)", service: shared }
  - apiVersion: v1
    kind: ConfigMap
    metadata: { name: shared, namespace: media }
    data:
      s.yaml: |
        http:
          services:
            shared: { loadBalancer: { servers: [{ url: "http://127.0.0.1:1" }] } }
"#;
    let fragments = configmap_fragments(dump).expect("a dump");
    let names: Vec<&str> = fragments.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["media/video-config/video.yaml", "media/shared/s.yaml"]);
    let refs: Vec<Fragment> = fragments.iter().map(|(s, t)| Fragment { source: s, text: t }).collect();
    let report = migration_report(&refs);
    assert_eq!(
        report.counts(),
        Counts { as_is: 2, ..Counts::default() },
        "a router may use another fragment's service: {report:?}"
    );
    assert!(configmap_fragments("http: {}\n").is_none(), "a routes file is not a dump");
}

/// The report of the migration corpus (`examples/traefik/`, every fragment compiled together, as control would)
/// against `examples/traefik/report.txt`; `DIME_BLESS=1` rewrites it after a deliberate change.
#[test]
fn the_corpus_report_is_as_recorded() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/traefik");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .collect();
    files.sort();
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|p| {
            let name = format!("examples/traefik/{}", p.file_name().unwrap().to_str().unwrap());
            (name, std::fs::read_to_string(p).unwrap())
        })
        .collect();
    let fragments: Vec<Fragment> = texts.iter().map(|(s, t)| Fragment { source: s, text: t }).collect();
    let text = migration_report(&fragments).to_text();
    let golden = dir.join("report.txt");
    if std::env::var_os("DIME_BLESS").is_some() {
        std::fs::write(&golden, &text).unwrap();
    }
    assert_eq!(text, std::fs::read_to_string(&golden).unwrap());
}
