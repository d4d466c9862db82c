use super::*;

fn cm(ns: &str, name: &str, key: &str, text: &str) -> Source {
    Source { namespace: ns.into(), name: name.into(), data: BTreeMap::from([(key.to_owned(), text.to_owned())]) }
}

const VIDEO: &str = include_str!("../../../examples/traefik/video-config.yaml");
const WHOAMI: &str = include_str!("../../../examples/traefik/whoami-config.yaml");

#[test]
fn the_old_fragments_merge_into_one_table() {
    let c = compile(vec![cm("default", "whoami", "w.yaml", WHOAMI), cm("default", "video", "v.yaml", VIDEO)]);
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    assert_eq!(c.table.routes().len(), 2);
    assert_eq!(c.accepted, vec!["default/video", "default/whoami"]);
}

#[test]
fn a_malformed_configmap_is_rejected_alone() {
    let c = compile(vec![
        cm("default", "video", "v.yaml", VIDEO),
        cm("default", "broken", "b.yaml", "http:\n  routers:\n    r: { rule: \"Nope(`x`)\", service: s }\n"),
        cm("default", "whoami", "w.yaml", WHOAMI),
    ]);
    assert_eq!(c.table.routes().len(), 2);
    assert_eq!(c.rejected.len(), 1);
    assert_eq!(c.rejected[0].configmap, "default/broken");
    assert_eq!(c.rejected[0].reason, RejectReason::Invalid);
    assert!(c.rejected[0].errors[0].starts_with("default/broken/b.yaml:3: http.routers.r.rule"), "{:?}", c.rejected);
}

#[test]
fn conflicts_go_to_the_first_configmap_in_namespace_name_order() {
    let c = compile(vec![cm("team-b", "video", "v.yaml", VIDEO), cm("team-a", "video", "v.yaml", VIDEO)]);
    assert_eq!(c.accepted, vec!["team-a/video"]);
    assert_eq!(c.rejected[0].configmap, "team-b/video");
    assert_eq!(c.rejected[0].reason, RejectReason::Conflict);
    assert!(
        c.rejected[0]
            .errors
            .iter()
            .any(|e| e.contains("route `video-router` is also defined by ConfigMap team-a/video")),
        "{:?}",
        c.rejected
    );
}

#[test]
fn the_same_configmaps_give_the_same_version_in_any_order() {
    let a = compile(vec![cm("d", "v", "v.yaml", VIDEO), cm("d", "w", "w.yaml", WHOAMI)]);
    let b = compile(vec![cm("d", "w", "w.yaml", WHOAMI), cm("d", "v", "v.yaml", VIDEO)]);
    assert_eq!(a.table.version(), b.table.version());
}

#[test]
fn the_same_host_and_path_in_two_configmaps_is_a_conflict() {
    let other = VIDEO.replace("video-router", "other-router").replace("video-service", "other-service");
    let c = compile(vec![cm("a", "video", "v.yaml", VIDEO), cm("b", "copy", "v.yaml", &other)]);
    assert_eq!(c.accepted, vec!["a/video"]);
    assert_eq!(c.rejected[0].reason, RejectReason::Conflict);
    assert!(
        c.rejected[0].errors.iter().any(|e| e.contains("route `other-router` matches host `video.edge.mycdndomain.us` with path prefix `/` like route `video-router` of ConfigMap a/video")),
        "{:?}",
        c.rejected
    );
}

#[test]
fn many_configmaps_compile_in_linear_time_to_one_table() {
    let sources: Vec<Source> = (0..200)
        .map(|i| {
            let text = format!(
                "version: 1\nhttp:\n  routes:\n{}  upstreams:\n    u{i}: {{ servers: [{{ url: \"http://10.0.0.1:80\" }}] }}\n",
                (0..5)
                    .map(|j| format!("    - {{ name: r{i}-{j}, match: [{{ hosts: [h{i}.example.com], paths: [{{ prefix: /p{j} }}] }}], upstream: u{i} }}\n"))
                    .collect::<String>()
            );
            cm("ns", &format!("cm{i:03}"), "routes.yaml", &text)
        })
        .collect();
    let c = compile(sources);
    assert!(c.rejected.is_empty(), "{:?}", c.rejected.first());
    assert_eq!(c.table.routes().len(), 1000);
}
